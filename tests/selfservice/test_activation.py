"""First registration by letter (contract number + activation code, then SMS) and the contract login."""

from __future__ import annotations

import csv
import os
import re
import stat

import pytest
from sqlalchemy import select

from idp.core.storage import Account, AuditEvent, SsoSession, db
from idp.selfservice.activation import ActivationCode, issue_codes
from tests.conftest import authorize_params
from tests.support.account_flows import (
    CARD_2,
    MOBILE,
    MOBILE_2,
    all_sms,
    csrf,
    customer_line,
    last_code,
    load_customers,
    path_of,
    submit,
    without_csrf,
)
from tests.support.clock import clock_fixture  # noqa: F401 (the "clock" fixture)
from tests.support.sms_login import ready

CONFIG = {
    "methods": {"contract": {"enabled": True}},
    "registration": {
        "letter": {"enabled": True, "max_attempts": 3},
        "recovery": {"response_time_floor_ms": 0},
    },
}
OFF_MESSAGE = (
    "Cette option n’est plus disponible. Connectez-vous facilement et de manière sécurisée via itsme® ou eID."
)


@pytest.fixture
def app(make_app):
    return make_app(CONFIG)


@pytest.fixture
def letters(app, clock):
    """Two customers and their letters: {contract: code}."""
    load_customers(
        app,
        customer_line(),
        customer_line("C-2", card=CARD_2, contracts="CT-2", mobile="", email="", national=""),
    )
    with app.app_context():
        return {
            r["contract_number"]: r["activation_code"]
            for r in issue_codes("contract_number\nCT-1001\nct-2\n")
        }


def activate(client, contract="CT-1001", code=None):
    return submit(client, "/activate", {"contract_number": contract, "activation_code": code})


def accounts(app):
    with app.app_context():
        rows = db.session.scalars(select(Account)).all()
        db.session.expunge_all()
        return rows


def test_cli_issues_hashed_codes_and_writes_the_letters_file(app, tmp_path, clock):
    load_customers(app, customer_line())
    src = tmp_path / "contracts.csv"
    src.write_text("contract_number,branch\nCT-1001,Namur\n", encoding="utf-8")
    out = tmp_path / "letters.csv"
    result = app.test_cli_runner().invoke(args=["activation", "issue", str(src), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    [row] = list(csv.DictReader(out.open(encoding="utf-8")))
    assert row["contract_number"] == "CT-1001" and row["customer_number"] == "C-1001"
    assert (row["given_name"], row["family_name"]) == ("Jeanne", "Dupont")
    assert len(row["activation_code"]) == 14 and row["expires_on"]
    with app.app_context():
        stored = db.session.scalar(select(ActivationCode))
        assert row["activation_code"] not in stored.code_hash
        assert row["activation_code"].replace("-", "") not in stored.code_hash
    # The file is never overwritten.
    again = app.test_cli_runner().invoke(args=["activation", "issue", str(src), "--out", str(out)])
    assert again.exit_code == 1


def test_cli_refuses_unknown_and_repeated_contracts_and_issues_nothing(app, tmp_path, clock):
    load_customers(app, customer_line())
    src = tmp_path / "contracts.csv"
    src.write_text("contract_number\nCT-1001\nCT-404\nct-1001\n", encoding="utf-8")
    out = tmp_path / "letters.csv"
    result = app.test_cli_runner().invoke(args=["activation", "issue", str(src), "--out", str(out)])
    assert result.exit_code == 1
    assert f"{src}:3: contract number CT-404" in result.output and f"{src}:4:" in result.output
    assert not out.exists()
    with app.app_context():
        assert db.session.scalars(select(ActivationCode)).all() == []


def test_letter_then_sms_activates_and_the_contract_login_works(app, client, letters, clock):
    resp = activate(client, " ct-1001", letters["CT-1001"].lower())
    assert resp.status_code == 303 and resp.location.endswith("/activate/code"), without_csrf(resp)
    assert "+32 ******456" in client.get("/activate/code").get_data(as_text=True)
    resp = submit(client, "/activate/code", {"code": last_code(app)})
    assert resp.status_code == 303 and resp.location.endswith("/activate/done")
    [account] = accounts(app)
    assert account.username is None and account.password_hash is None
    assert account.phone == MOBILE and account.phone_verified
    assert account.email == "jeanne@example.org" and not account.email_verified  # confirmed later, by link
    ready(app, account.sub, email_verified=True)

    params, _ = authorize_params()
    tx_path = path_of(client.get("/authorize", query_string=params).location)
    assert "/contract" in client.get(tx_path).get_data(as_text=True)
    resp = submit(client, tx_path + "/contract", {"identifier": "CT-1001"})
    assert resp.status_code == 303 and resp.location.endswith(tx_path + "/contract/code")
    clock.t += 61
    resp = submit(client, tx_path + "/contract/code", {"code": last_code(app)})
    assert resp.status_code == 303, without_csrf(resp)
    with app.app_context():
        [sso] = db.session.scalars(select(SsoSession)).all()
        assert (sso.level, sso.methods, sso.amr) == ("low", ["contract", "sms"], ["sms"])
        events = {(e.event, e.outcome) for e in db.session.scalars(select(AuditEvent))}
    assert ("activation", "success") in events and ("login", "success") in events


def test_an_activation_code_works_once(app, letters, clock):
    first = app.test_client()
    activate(first, code=letters["CT-1001"])
    submit(first, "/activate/code", {"code": last_code(app)})
    second = app.test_client()
    resp = activate(second, code=letters["CT-1001"])
    assert resp.status_code == 400
    assert len(accounts(app)) == 1


def test_wrong_code_unknown_contract_and_expired_code_get_the_same_answer(app, letters, clock):
    answers = [
        activate(app.test_client(), "CT-1001", "AAAA-BBBB-CCCC"),
        activate(app.test_client(), "CT-999", letters["CT-1001"]),
    ]
    clock.t += 61 * 86400
    answers.append(activate(app.test_client(), "CT-1001", letters["CT-1001"]))
    assert {a.status_code for a in answers} == {400}
    assert len({re.sub(r'value="CT-\d+"', "", without_csrf(a)) for a in answers}) == 1  # but the typed number
    assert all_sms(app) == []


def test_attempts_per_contract_are_limited_even_for_the_right_code(app, letters, clock):
    for _ in range(3):
        assert activate(app.test_client(), "CT-1001", "AAAA-BBBB-CCCC").status_code == 400
    resp = activate(app.test_client(), "CT-1001", letters["CT-1001"])
    assert resp.status_code == 400 and "Too many attempts" in resp.get_data(as_text=True)


def test_issuing_again_replaces_the_earlier_code(app, letters, clock):
    with app.app_context():
        [row] = issue_codes("contract_number\nCT-1001\n")
    assert activate(app.test_client(), "CT-1001", letters["CT-1001"]).status_code == 400
    assert activate(app.test_client(), "CT-1001", row["activation_code"]).status_code == 303


def test_a_customer_without_a_mobile_gives_one_and_confirms_it(app, client, letters, clock):
    resp = activate(client, "CT-2", letters["CT-2"])
    assert resp.status_code == 303 and resp.location.endswith("/activate/mobile")
    assert submit(client, "/activate/mobile", {"mobile": "02 123 45 67"}).status_code == 400
    assert submit(client, "/activate/mobile", {"mobile": "0470 99 98 88"}).status_code == 303
    assert submit(client, "/activate/code", {"code": last_code(app, MOBILE_2)}).status_code == 303
    [account] = accounts(app)
    assert account.phone == MOBILE_2 and account.phone_verified


def test_a_customer_with_an_account_keeps_it_and_its_number(app, client, letters, make_user, clock):
    make_user("jeanne", phone=MOBILE_2)
    with app.app_context():
        account = db.session.scalar(select(Account))
        account.customer_id = db.session.scalar(
            select(db.text("id FROM customers WHERE customer_number='C-1001'"))
        )
        db.session.commit()
    activate(client, "CT-1001", letters["CT-1001"])
    assert sms_count(app, MOBILE) == 0
    submit(client, "/activate/code", {"code": last_code(app, MOBILE_2)})
    [account] = accounts(app)
    assert account.username == "jeanne" and account.phone == MOBILE_2


def sms_count(app, number):
    return len([m for m in all_sms(app) if m["to"] == number])


def test_contract_login_answers_the_same_for_unknown_identifiers(app, letters, clock):
    client = app.test_client()
    activate(client, "CT-1001", letters["CT-1001"])
    submit(client, "/activate/code", {"code": last_code(app)})
    sent = len(all_sms(app))
    pages = []
    for identifier in ("CT-1001", "CT-404", "nobody"):
        c = app.test_client()
        tx_path = path_of(c.get("/authorize", query_string=authorize_params()[0]).location)
        resp = submit(c, tx_path + "/contract", {"identifier": identifier})
        assert resp.status_code == 303
        pages.append(without_csrf(c.get(resp.location)).replace(tx_path, "TX"))
        clock.t += 61
    assert len(set(pages)) == 1
    assert len(all_sms(app)) == sent + 1


def test_switched_off_contract_login_shows_the_operator_message(make_app):
    app = make_app({"methods": {"contract": {"enabled": False, "disabled_message": {"fr": OFF_MESSAGE}}}})
    client = app.test_client()
    tx_path = path_of(client.get("/authorize", query_string=authorize_params()[0]).location)
    assert OFF_MESSAGE in client.get(tx_path, headers={"Accept-Language": "fr"}).get_data(as_text=True)
    resp = client.get(tx_path + "/contract", headers={"Accept-Language": "fr"})
    assert resp.status_code == 403 and OFF_MESSAGE in resp.get_data(as_text=True)


def test_switched_off_letter_path_shows_the_operator_message(make_app):
    message = "Cette étape n’est plus d’actualité. Veuillez vous inscrire via itsme® ou eID."
    app = make_app({"registration": {"letter": {"enabled": False, "disabled_message": {"fr": message}}}})
    resp = app.test_client().get("/activate", headers={"Accept-Language": "fr"})
    assert resp.status_code == 403 and message in resp.get_data(as_text=True)


def test_parallel_submissions_of_the_right_code_get_no_more_than_the_allowed_tries(app, letters, clock):
    """Every try counts, the right one too: 50 parallel submissions, at most max_attempts pass."""
    from concurrent.futures import ThreadPoolExecutor

    clients = [app.test_client() for _ in range(50)]
    tokens = [csrf(c.get("/activate").get_data(as_text=True)) for c in clients]

    def post(i):
        data = {"csrf_token": tokens[i], "contract_number": "CT-1001", "activation_code": letters["CT-1001"]}
        return clients[i].post("/activate", data=data).status_code

    with ThreadPoolExecutor(10) as pool:
        statuses = list(pool.map(post, range(50)))
    assert statuses.count(303) <= 3
    assert statuses.count(303) + statuses.count(400) == 50
