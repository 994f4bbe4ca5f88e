"""Export (GDPR art. 15/20) and erasure (art. 17) of an account, walking every table."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from idp.selfservice.personal_data import ERASED_EVENT
from tests.conftest import base_config
from tests.oidc.test_backchannel_logout import Receiver
from tests.support.oidc import (
    BACKCHANNEL_EVENT,
    app_tokens,
    decode,
    inject_sso,
    portal_tokens,
    refresh,
    userinfo,
)
from tests.support.tables import rows_naming_account

ALICE = {"username": "alice", "email": "alice@example.com", "phone": "+32470123456"}
BOB = {
    "username": "bobby",
    "email": "bob@example.org",
    "phone": "+32470990011",
    "given_name": "Robert",
    "family_name": "Peeters",
}


def cli(app, *args):
    from flask.cli import ScriptInfo

    from idp.cli import main

    return app.test_cli_runner().invoke(main, list(args), obj=ScriptInfo(create_app=lambda: app))


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def world(make_app, tmp_path, receiver):
    """Alice and Bob, each with sessions at the portal and the app, tokens, a linked itsme
    identity, a consent, a reset link, a failure counter and audit events."""
    from tests.conftest import make_user_in

    clients = base_config("http://localhost", "sqlite://", tmp_path)["clients"]
    clients[0] = {**clients[0], "backchannel_logout_uri": receiver.url("/portal/bcl")}
    clients[1] = {**clients[1], "backchannel_logout_uri": receiver.url("/app/bcl")}
    app = make_app({"clients": clients})
    people = {}
    for name, fields in (("alice", ALICE), ("bob", BOB)):
        extra = {k: v for k, v in fields.items() if k != "username"}
        sub = make_user_in(app, fields["username"], **extra)
        client = app.test_client()
        inject_sso(app, client, sub)
        tokens = {"portal": portal_tokens(client), "app": app_tokens(client, scope="openid offline_access")}
        people[name] = {"sub": sub, "client": client, "tokens": tokens, **fields}
        _extras(app, sub, name, fields)
    return app, people


def _extras(app, sub, name, fields):
    from idp.core import audit
    from idp.core.storage import Account, Consent, FederatedIdentity, db
    from idp.login.password import check_password
    from idp.selfservice.recovery import PasswordReset
    from idp.selfservice.registration import PendingRegistration

    with app.test_request_context(environ_base={"REMOTE_ADDR": "192.0.2.7"}):
        account = db.session.scalar(sa.select(Account).where(Account.sub == sub))
        db.session.add(
            FederatedIdentity(
                account_id=account.id, method="itsme", issuer="https://itsme", subject=f"it-{name}"
            )
        )
        db.session.add(Consent(account_id=account.id, client_id="partner", scope="openid profile"))
        db.session.add(
            PasswordReset(token_hash=f"{name:0<64}", account_id=account.id, created_at=1, expires_at=2)
        )
        db.session.add(  # a second registration started with the same address, never confirmed
            PendingRegistration(
                owner=f"phone:{fields['phone']}",
                token_hash=f"{name:1<64}",
                username=f"{name}2",
                username_norm=f"{name}2",
                password_hash="x",
                email=fields["email"].upper(),
                phone=fields["phone"],
                terms_version="1",
                created_at=1,
                expires_at=2,
            )
        )
        db.session.commit()
        check_password(account.username, "a wrong password", None)  # a failure counter
        audit.record("password_change", account_id=account.id, reason="test")


def account_id(app, sub):
    from idp.core.storage import Account, db

    with app.app_context():
        return db.session.scalar(sa.select(Account.id).where(Account.sub == sub))


def needles(person) -> list[str]:
    return [person["sub"], person["username"], person["email"], person["phone"]] + (
        [person["family_name"]] if "family_name" in person else []
    )


def test_export_has_every_row_of_the_account_in_every_table_and_nothing_of_another(world):
    from idp.core.storage import db
    from idp.selfservice.personal_data import owned_tables

    app, people = world
    result = cli(app, "users", "export", "alice")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["format"] == "idp-export/1"
    assert document["account"]["sub"] == people["alice"]["sub"]
    assert document["account"]["password_hash"] == {"set": True}
    text = json.dumps(document)
    for needle in needles(people["bob"]):
        assert needle not in text
    for secret in (
        people["alice"]["tokens"]["app"]["refresh_token"],
        people["alice"]["tokens"]["portal"]["access_token"],
    ):
        assert secret not in text
    alice_id = document["account"]["id"]
    with app.app_context():
        tables = {t.name: t for t in owned_tables()}
        assert {
            "federated_identities",
            "sso_sessions",
            "session_clients",
            "grants",
            "refresh_tokens",
            "consents",
            "password_resets",
        } <= set(tables)
        for name in ("federated_identities", "sso_sessions", "grants", "consents", "password_resets"):
            table = tables[name]
            expected = db.session.execute(
                sa.select(sa.func.count()).select_from(table).where(table.c.account_id == alice_id)
            ).scalar()
            assert expected > 0 and len(document["tables"][name]) == expected, name
        assert len(document["tables"]["refresh_tokens"]) >= 1
        assert {r["client_id"] for r in document["tables"]["session_clients"]} == {"portal", "app"}
    assert [r["username"] for r in document["tables"]["pending_registrations"]] == ["alice2"]
    assert set(document["applications"]) == {"portal", "app", "partner"}
    assert {e["event"] for e in document["audit_events"]} >= {"password_change"}
    assert all(e["account_id"] == alice_id for e in document["audit_events"])


def test_export_of_an_unknown_user_says_so(world):
    app, _ = world
    result = cli(app, "users", "export", "nobody")
    assert result.exit_code == 1 and "no such user" in result.output


def test_erase_leaves_no_row_that_names_the_account(world):
    app, people = world
    alice_id = account_id(app, people["alice"]["sub"])
    assert rows_naming_account(app, alice_id, needles(people["alice"]))  # the walk finds them before
    refused = cli(app, "users", "erase", "alice")
    assert refused.exit_code == 1 and account_id(app, people["alice"]["sub"]) == alice_id
    result = cli(app, "users", "erase", "alice", "--yes")
    assert result.exit_code == 0, result.output
    assert rows_naming_account(app, alice_id, needles(people["alice"])) == []
    from idp.login import lockout

    with app.app_context():
        assert lockout.status(lockout.password_key("alice"), 0) == (0, 0)  # her counter went too
    # Bob is untouched, and the audit trail keeps the events without the person.
    bob_id = account_id(app, people["bob"]["sub"])
    assert rows_naming_account(app, bob_id, needles(people["bob"]))
    from idp.core.storage import AuditEvent, db

    with app.app_context():
        events = db.session.scalars(sa.select(AuditEvent.event).where(AuditEvent.account_id.is_(None))).all()
        assert "password_change" in events and "account_erased" in events


def test_erase_revokes_every_token(world):
    app, people = world
    alice = people["alice"]
    assert cli(app, "users", "erase", "alice", "--yes").exit_code == 0
    client = app.test_client()
    assert refresh(client, alice["tokens"]["app"]["refresh_token"]).status_code == 400
    for tokens in alice["tokens"].values():
        assert userinfo(client, tokens["access_token"]).status_code == 401
    bob = people["bob"]
    assert userinfo(client, bob["tokens"]["portal"]["access_token"]).status_code == 200
    assert refresh(client, bob["tokens"]["app"]["refresh_token"]).status_code == 200


def test_erase_sends_a_logout_token_to_every_relying_party_of_the_account(world, receiver):
    app, people = world
    assert cli(app, "users", "erase", "alice", "--yes").exit_code == 0
    client = app.test_client()
    for path in ("/portal/bcl", "/app/bcl"):
        tokens = receiver.tokens_for(path)
        assert tokens, receiver.requests
        subs = {decode(client, t)[1]["sub"] for t in tokens}
        assert subs == {people["alice"]["sub"]}
        for t in tokens:
            assert decode(client, t)[1]["events"] == {BACKCHANNEL_EVENT: {}, ERASED_EVENT: {}}


def test_erase_keeps_the_operators_customer_record_unlinked(world):
    from idp.core.storage import Account, Customer, db

    app, people = world
    with app.app_context():
        customer = Customer(customer_number="C-77", given_name="Alice")
        db.session.add(customer)
        db.session.flush()
        account = db.session.scalar(sa.select(Account).where(Account.sub == people["alice"]["sub"]))
        account.customer_id = customer.id
        db.session.commit()
    export = json.loads(cli(app, "users", "export", "alice").stdout)
    assert export["tables"]["customers"][0]["customer_number"] == "C-77"
    assert cli(app, "users", "erase", "alice", "--yes").exit_code == 0
    with app.app_context():
        assert db.session.scalar(sa.select(Customer.customer_number)) == "C-77"
        assert db.session.scalar(sa.select(Account.id).where(Account.customer_id.is_not(None))) is None


def test_erase_tells_rps_whose_grant_outlived_its_session(world, receiver):
    from idp.core.storage import SsoSession, db

    app, people = world
    alice_id = account_id(app, people["alice"]["sub"])
    with app.app_context():
        db.session.query(SsoSession).filter_by(account_id=alice_id).delete()  # purged long ago
        db.session.commit()
    assert cli(app, "users", "erase", "alice", "--yes").exit_code == 0
    client = app.test_client()
    for path in ("/portal/bcl", "/app/bcl"):
        (token,) = receiver.tokens_for(path)
        claims = decode(client, token)[1]
        assert claims["sub"] == people["alice"]["sub"] and ERASED_EVENT in claims["events"]


def test_export_shows_an_eid_card_link_without_its_card_hash(app, make_user):
    from idp.core.hashing import card_number_hash
    from idp.core.storage import Account, FederatedIdentity, db
    from idp.selfservice.personal_data import export_account

    sub = make_user()
    with app.test_request_context():
        account = db.session.scalar(sa.select(Account).where(Account.sub == sub))
        card_hash = card_number_hash("592000111222")
        db.session.add(
            FederatedIdentity(
                account_id=account.id,
                method="eid",
                issuer="urn:be:fedict:eid",
                subject="card-hmac:" + card_hash,
            )
        )
        db.session.commit()
        document = export_account(account)
    (link,) = document["tables"]["federated_identities"]
    assert link["method"] == "eid" and link["created_at"]
    assert card_hash not in json.dumps(document, default=str)
