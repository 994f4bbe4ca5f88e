"""The itsme login at the provider: RP -> provider -> itsme (a local fake over HTTP) -> provider -> RP.

The browser is the Flask test client on our side and ``requests`` at the fake
itsme, whose authorization endpoint answers at once with a redirect to our
callback. Every failure gives a page that offers the other methods, an audit
record and no login.
"""

from __future__ import annotations

import json
import shutil
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import func, select

from connectors.itsme import RPKeys
from idp.cli import main as idp_cli
from idp.core.hashing import national_number_hash
from idp.core.storage import Account, AuditEvent, Customer, SsoSession, db
from tests.conftest import PASSWORD, authorize_params, csrf_from, exchange, free_port, query_of
from tests.fakes.itsme_provider import (
    ACR_ADVANCED,
    ACR_BASIC,
    DISCOVERY,
    DROP,
    TOKEN,
    USERINFO,
    FakeItsme,
    TokenForm,
)
from tests.support.oidc import decode

CLIENT_ID = "provider-at-itsme"
SERVICE = "PORTAL_LOGIN"
CALLBACK = "http://localhost/login/itsme/callback"
PASSPHRASE = "itsme RP keys passphrase for tests"
NN = "85073003328"


@pytest.fixture(scope="module")
def keys_template(tmp_path_factory):
    folder = tmp_path_factory.mktemp("itsme-keys") / "keys"
    RPKeys.load_or_create(folder, PASSPHRASE)
    return folder


@pytest.fixture(scope="module")
def fake():
    with FakeItsme(client_id=CLIENT_ID, service_code=SERVICE, redirect_uris=[CALLBACK]) as server:
        yield server


@pytest.fixture
def itsme_config(fake, keys_template, tmp_path, monkeypatch):
    """A function giving the make_app overrides for an itsme-enabled provider."""
    monkeypatch.setenv("ITSME_TEST_KEYS_PASSPHRASE", PASSPHRASE)
    keys_dir = tmp_path / "itsme-keys"
    shutil.copytree(keys_template, keys_dir)
    fake.reset()

    def config(register: bool = True, enabled: bool = True, **connector) -> dict:
        table = {
            "environment": "custom",
            "discovery_url": fake.discovery_url,
            "client_id": CLIENT_ID,
            "service_code": SERVICE,
            "redirect_uri": CALLBACK,
            "keys_dir": str(keys_dir),
            "keys_passphrase": "env:ITSME_TEST_KEYS_PASSPHRASE",
            "timeout": 2,
            "jwks_max_age": 600,
        }
        table.update(connector)
        return {
            "connectors": {"itsme": table},
            "methods": {"itsme": {"enabled": enabled, "register": register}},
        }

    return config


@pytest.fixture
def itsme_app(make_app, itsme_config, fake):
    def build(**kw):
        app = make_app(itsme_config(**kw))
        fake.rp_jwks = app.extensions["idp.itsme.keys"].public_jwks_bytes
        return app

    return build


@pytest.fixture
def app(itsme_app):
    return itsme_app()


def add_known_person(app, national_number: str = NN) -> str:
    """An account with verified contacts whose national register number we know; its sub.

    Its itsme login goes straight back to the relying party (no required actions).
    """
    from idp.accounts.users import create_local_account
    from idp.login.actions import terms_version

    with app.app_context():
        account = create_local_account(
            "marie",
            password=PASSWORD,
            email="marie@example.com",
            phone="+32470123456",
            given_name="Marie",
            family_name="Dupont",
        )
        account.national_number_hash = national_number_hash(national_number)
        account.terms_version = terms_version()
        db.session.commit()
        return account.sub


@pytest.fixture
def person(app) -> str:
    return add_known_person(app)


# ---------------------------------------------------------------------------
# The browser's steps
# ---------------------------------------------------------------------------


def to_login_page(client, **extra) -> tuple[dict, str, str]:
    """The RP's authorization request; (params, verifier, /login/<tx> path)."""
    params, verifier = authorize_params(**extra)
    resp = client.get("/authorize", query_string=params)
    assert resp.status_code == 302 and "/login/" in resp.location, resp.get_data(as_text=True)
    return params, verifier, urlsplit(resp.location).path


def to_itsme(client, tx_path: str, **headers) -> str:
    """Choose itsme; the authorization URL at itsme."""
    resp = client.get(tx_path + "/itsme", headers=headers)
    assert resp.status_code == 303, resp.get_data(as_text=True)
    return resp.location


def at_itsme(url: str) -> str:
    """What the person does at itsme; the redirect back to our callback."""
    resp = requests.get(url, allow_redirects=False, timeout=10)
    assert resp.status_code == 302, resp.text
    return resp.headers["Location"]


def back_from_itsme(client, location: str, **headers):
    parts = urlsplit(location)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == CALLBACK
    return client.get(f"{parts.path}?{parts.query}", headers=headers)


def itsme_login(client, **extra):
    """The whole round trip up to our callback's answer; (params, verifier, tx_path, response)."""
    params, verifier, tx_path = to_login_page(client, **extra)
    resp = back_from_itsme(client, at_itsme(to_itsme(client, tx_path)))
    return params, verifier, tx_path, resp


def finish_at_rp(client, resp, params, verifier) -> dict:
    """From the callback's redirect to the RP's tokens; the ID token's claims."""
    assert resp.status_code == 303, resp.get_data(as_text=True)
    resp = client.get(resp.location)
    assert resp.status_code == 302, resp.get_data(as_text=True)
    result = query_of(resp.location)
    assert result["state"] == params["state"] and "code" in result, result
    tokens = exchange(client, result["code"], verifier)
    assert tokens.status_code == 200, tokens.json
    return decode(client, tokens.json["id_token"])[1]


def failed_logins(app, reason: str) -> list[AuditEvent]:
    with app.app_context():
        rows = db.session.scalars(
            select(AuditEvent).where(AuditEvent.event == "login", AuditEvent.outcome == "failure")
        ).all()
        return [r for r in rows if r.method == "itsme" and (r.detail or {}).get("reason") == reason]


def sso_sessions(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(SsoSession))


def assert_refused(app, client, resp, reason: str, status: int, tx_path: str | None = None) -> str:
    """A clear page, an audit record, and no login."""
    html = resp.get_data(as_text=True)
    assert resp.status_code == status, html
    assert f'data-reason="{reason}"' in html
    assert len(failed_logins(app, reason)) == 1
    assert sso_sessions(app) == 0
    assert client.get("/account/").status_code == 302  # still logged out
    if tx_path is not None:
        assert f'href="{tx_path}/password"' in html  # the other methods of this login
    return html


# ---------------------------------------------------------------------------
# The happy paths
# ---------------------------------------------------------------------------


def test_rp_gets_an_id_token_with_acr_high_and_itsme_amr_when_it_asks_for_high(app, client, person):
    settings = app.extensions["idp.settings"]
    params, verifier, tx_path = to_login_page(client, acr_values=settings.acr_for("high"))
    url = to_itsme(client, tx_path)
    sent = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert sent["acr_values"] == ACR_ADVANCED
    assert sent["scope"].split()[:2] == ["openid", f"service:{SERVICE}"]
    assert sent["redirect_uri"] == CALLBACK and sent["code_challenge_method"] == "S256"

    claims = finish_at_rp(client, back_from_itsme(client, at_itsme(url)), params, verifier)

    assert claims["acr"] == settings.acr_for("high")
    assert claims["amr"] == ["mfa", "hwk", "pin"]
    assert claims["sub"] == person


def test_basic_itsme_confirmation_gives_a_substantial_session(app, client, person):
    settings = app.extensions["idp.settings"]
    params, verifier, tx_path = to_login_page(client)
    url = to_itsme(client, tx_path)
    assert parse_qs(urlsplit(url).query)["acr_values"] == [ACR_BASIC]
    claims = finish_at_rp(client, back_from_itsme(client, at_itsme(url)), params, verifier)
    assert claims["acr"] == settings.acr_for("substantial")
    assert claims["amr"] == ["mfa", "hwk"]


def test_operator_level_for_itsme_caps_the_session_level(itsme_app, make_app, itsme_config, fake):
    config = itsme_config()
    config["methods"]["itsme"]["level"] = "substantial"
    app = make_app(config)
    fake.rp_jwks = app.extensions["idp.itsme.keys"].public_jwks_bytes
    add_known_person(app)
    client = app.test_client()
    fake.next_login(acr=ACR_ADVANCED)
    params, verifier, _tx, resp = itsme_login(client)
    claims = finish_at_rp(client, resp, params, verifier)
    assert claims["acr"] == app.extensions["idp.settings"].acr_for("substantial")


def test_itsme_is_asked_in_the_users_language(client):
    _params, _verifier, tx_path = to_login_page(client)
    url = to_itsme(client, tx_path, **{"Accept-Language": "nl-BE,nl;q=0.9"})
    assert parse_qs(urlsplit(url).query)["ui_locales"] == ["nl"]


@pytest.mark.parametrize(
    "hint, sent",
    [
        ("+32470123456", "+32470123456"),
        ("tel:0470 12 34 56", "+32470123456"),
        ("alice", None),
        ("alice@example.com", None),
    ],
)
def test_only_a_phone_number_login_hint_is_passed_on_to_itsme(client, hint, sent):
    _params, _verifier, tx_path = to_login_page(client, login_hint=hint)
    url = to_itsme(client, tx_path)
    assert parse_qs(urlsplit(url).query).get("login_hint") == ([sent] if sent else None)


def test_second_itsme_login_of_the_same_person_uses_the_same_account(app, client, person):
    params, verifier, _tx, resp = itsme_login(client)
    first = finish_at_rp(client, resp, params, verifier)["sub"]
    other_browser = app.test_client()
    params, verifier, _tx, resp = itsme_login(other_browser, prompt="login")
    assert finish_at_rp(other_browser, resp, params, verifier)["sub"] == first == person


def test_new_person_registers_through_itsme_confirms_the_email_then_reaches_the_rp(app, client, tmp_path):
    """itsme vouches for the phone number but never for the e-mail address: that one is confirmed by link."""
    from idp.services.outbox import Outbox
    from tests.support.sms_login import deliver

    settings = app.extensions["idp.settings"]
    params, verifier, tx_path, resp = itsme_login(client, acr_values=settings.acr_for("high"))
    assert resp.status_code == 303 and urlsplit(resp.location).path == f"{tx_path}/actions"
    assert sso_sessions(app) == 0  # held back until the required actions are done
    email_page = client.get(client.get(resp.location).location)
    assert email_page.status_code == 200 and "marie.dupont@example.be" in email_page.get_data(as_text=True)
    sent = client.post(
        urlsplit(email_page.request.url).path,
        data={
            "csrf_token": csrf_from(email_page.get_data(as_text=True)),
            "email": "marie.dupont@example.be",
            "confirm": "marie.dupont@example.be",
        },
    )
    assert sent.status_code == 303, sent.get_data(as_text=True)

    deliver(app)
    [mail] = [m for m in Outbox(tmp_path / "outbox.jsonl").read() if m["channel"] == "email"]
    link = urlsplit(next(w for w in mail["text"].split() if "/email/confirm/" in w)).path
    confirm_page = client.get(link)
    resp = client.post(link, data={"csrf_token": csrf_from(confirm_page.get_data(as_text=True))})
    assert resp.status_code == 303
    resp = client.get(resp.location)
    if resp.status_code == 303 and resp.location.endswith("/actions/terms"):
        terms = client.get(resp.location)
        resp = client.post(
            resp.location, data={"csrf_token": csrf_from(terms.get_data(as_text=True)), "accept": "y"}
        )
        resp = client.get(resp.location)  # the last required action hands over to the login's end

    claims = finish_at_rp(client, resp, params, verifier)
    assert claims["acr"] == settings.acr_for("high") and claims["amr"] == ["mfa", "hwk", "pin"]
    with app.app_context():
        account = db.session.scalar(select(Account).where(Account.sub == claims["sub"]))
        assert account.national_number_hash == national_number_hash(NN)
        assert (account.given_name, account.family_name, account.birthdate) == (
            "Marie",
            "Dupont",
            "1985-07-30",
        )
        assert account.email_verified and account.phone == "+32470123456" and account.phone_verified


def test_password_customer_and_later_itsme_login_end_in_one_account(app, client, make_user):
    from idp.login.actions import terms_version

    sub = make_user("marie")
    with app.app_context():
        customer = Customer(customer_number="C-1", national_number_hash=national_number_hash(NN))
        db.session.add(customer)
        db.session.flush()
        account = db.session.scalar(select(Account).where(Account.sub == sub))
        account.customer_id = customer.id
        account.terms_version = terms_version()
        db.session.commit()
    params, verifier, _tx, resp = itsme_login(client)
    assert finish_at_rp(client, resp, params, verifier)["sub"] == sub


def test_itsme_login_from_the_account_pages_without_a_relying_party(client, person):
    resp = back_from_itsme(client, at_itsme(to_itsme(client, "/login/-")))
    assert resp.status_code == 303 and resp.location.endswith("/account/")
    assert client.get("/account/").status_code == 200


def test_itsme_is_offered_on_the_login_page(client):
    _params, _verifier, tx_path = to_login_page(client)
    assert f'href="{tx_path}/itsme"' in client.get(tx_path).get_data(as_text=True)


def test_disabled_itsme_method_sends_back_to_the_chooser(itsme_app):
    client = itsme_app(enabled=False).test_client()
    _params, _verifier, tx_path = to_login_page(client)
    resp = client.get(tx_path + "/itsme")
    assert resp.status_code == 303 and urlsplit(resp.location).path == tx_path


# ---------------------------------------------------------------------------
# Failures: each one a clear page, an audit record, never a login
# ---------------------------------------------------------------------------


def test_person_cancelling_at_itsme_gets_a_page_offering_itsme_again_and_the_other_methods(app, client, fake):
    fake.next_login(error="access_denied")
    _params, _verifier, tx_path, resp = itsme_login(client)
    html = assert_refused(app, client, resp, "cancelled", 400, tx_path)
    assert f'href="{tx_path}/itsme"' in html


def test_failure_page_is_in_the_users_language(app, client, fake):
    fake.next_login(error="access_denied")
    _params, _verifier, tx_path = to_login_page(client)
    location = at_itsme(to_itsme(client, tx_path))
    resp = back_from_itsme(client, location, **{"Accept-Language": "de"})
    assert '<html lang="de">' in resp.get_data(as_text=True)


def test_itsme_error_other_than_cancel_is_an_upstream_error(app, client, fake):
    fake.next_login(error="server_error")
    _params, _verifier, tx_path, resp = itsme_login(client)
    assert_refused(app, client, resp, "upstream_error", 502, tx_path)


def test_itsme_down_when_starting_gives_a_page_not_a_500(app, client, fake):
    fake.behaviour.status[DISCOVERY] = 503
    _params, _verifier, tx_path = to_login_page(client)
    resp = client.get(tx_path + "/itsme")
    assert_refused(app, client, resp, "upstream_unavailable", 502, tx_path)


def test_itsme_unreachable_gives_a_page_not_a_500(itsme_app, make_app, itsme_config):
    app = make_app(
        itsme_config(discovery_url=f"http://127.0.0.1:{free_port()}/v2/.well-known/openid-configuration")
    )
    client = app.test_client()
    _params, _verifier, tx_path = to_login_page(client)
    assert_refused(app, client, client.get(tx_path + "/itsme"), "upstream_unavailable", 502, tx_path)


def test_itsme_token_endpoint_too_slow_times_out_quickly(itsme_app, fake):
    app = itsme_app(timeout=1)
    client = app.test_client()
    fake.behaviour.slow = {TOKEN}
    fake.behaviour.slow_seconds = 5
    _params, _verifier, tx_path, resp = itsme_login(client)
    assert_refused(app, client, resp, "upstream_unavailable", 502, tx_path)


@pytest.mark.parametrize("endpoint", [TOKEN, USERINFO])
def test_itsme_failing_after_the_redirect_gives_a_page(app, client, fake, endpoint):
    fake.behaviour.status[endpoint] = 503
    _params, _verifier, tx_path, resp = itsme_login(client)
    assert_refused(app, client, resp, "upstream_unavailable", 502, tx_path)


def test_callback_without_state_is_refused(app, client):
    to_login_page(client)
    resp = client.get("/login/itsme/callback?code=abc")
    assert_refused(app, client, resp, "invalid_state", 400)


def test_callback_with_a_state_this_browser_did_not_send_is_refused(app, client):
    _params, _verifier, tx_path = to_login_page(client)
    to_itsme(client, tx_path)
    resp = client.get("/login/itsme/callback?code=abc&state=forged-state")
    assert_refused(app, client, resp, "invalid_state", 400)


def test_callback_replayed_after_a_login_is_refused_and_logs_no_one_in(app, client, person):
    params, verifier, tx_path = to_login_page(client)
    location = at_itsme(to_itsme(client, tx_path))
    finish_at_rp(client, back_from_itsme(client, location), params, verifier)
    attacker = app.test_client()
    resp = back_from_itsme(attacker, location)
    assert resp.status_code == 400 and 'data-reason="invalid_state"' in resp.get_data(as_text=True)
    again = back_from_itsme(client, location)  # and in the same browser
    assert again.status_code == 400 and 'data-reason="invalid_state"' in again.get_data(as_text=True)
    assert sso_sessions(app) == 1
    assert len(failed_logins(app, "invalid_state")) == 2


def test_callback_in_another_browser_is_refused_and_does_not_spoil_the_real_one(app, client, person):
    params, verifier, tx_path = to_login_page(client)
    location = at_itsme(to_itsme(client, tx_path))
    other = app.test_client()
    resp = back_from_itsme(other, location)
    assert_refused(app, other, resp, "invalid_state", 400)
    finish_at_rp(client, back_from_itsme(client, location), params, verifier)


def test_same_state_arriving_twice_at_once_is_used_only_once(app, client):
    from idp.login.itsme import _used_state_key

    _params, _verifier, tx_path = to_login_page(client)
    location = at_itsme(to_itsme(client, tx_path))
    state = query_of(location)["state"]
    with app.app_context():  # the twin request got there first
        app.extensions["idp.kv"].add(_used_state_key(state), b"1", 60)
    assert_refused(app, client, back_from_itsme(client, location), "invalid_state", 400)


def test_expired_login_transaction_is_not_completed(app, client, monkeypatch):
    _params, _verifier, tx_path = to_login_page(client)
    location = at_itsme(to_itsme(client, tx_path))
    monkeypatch.setattr("idp.login.itsme.load_tx", lambda tx_id: (None, False))
    resp = back_from_itsme(client, location)
    assert resp.status_code == 400
    assert sso_sessions(app) == 0
    assert len(failed_logins(app, "expired")) == 1


TOKEN_FAILURES = {
    "id token not encrypted": ("id_token", TokenForm(encrypted=False)),
    "id token alg none": ("id_token", TokenForm(sign_alg="none")),
    "id token HMAC with the public key": ("id_token", TokenForm(sign_alg="HS256")),
    "id token signed by an unknown key": ("id_token", TokenForm(sign_with_unknown_key=True)),
    "id token encrypted to another key": ("id_token", TokenForm(encrypt_to_unknown_key=True)),
    "id token nonce replaced": ("id_token", TokenForm(claims={"nonce": "someone-elses"})),
    "id token for another client": ("id_token", TokenForm(claims={"aud": "another-client"})),
    "id token from another issuer": ("id_token", TokenForm(claims={"iss": "https://evil.example"})),
    "id token expired": ("id_token", TokenForm(claims={"exp": 1_000_000_000})),
    "id token without sub": ("id_token", TokenForm(claims={"sub": DROP})),
    "userinfo not encrypted": ("userinfo", TokenForm(content_type="application/json", encrypted=False)),
    "userinfo of another person": ("userinfo", TokenForm(claims={"sub": "someone-else"})),
}


@pytest.mark.parametrize("where, form", TOKEN_FAILURES.values(), ids=TOKEN_FAILURES.keys())
def test_token_failing_validation_gives_a_page_and_no_login(app, client, fake, where, form):
    setattr(fake.behaviour, where, form)
    _params, _verifier, tx_path, resp = itsme_login(client)
    assert_refused(app, client, resp, "invalid_token", 502, tx_path)


def test_unexpected_error_in_the_connector_is_a_page_not_a_500(app, client, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(app.extensions["idp.itsme"], "complete", broken)
    _params, _verifier, tx_path, resp = itsme_login(client)
    assert_refused(app, client, resp, "upstream_error", 502, tx_path)


def test_weaker_itsme_confirmation_than_requested_is_refused(app, client, fake):
    fake.next_login(acr=ACR_BASIC)
    settings = app.extensions["idp.settings"]
    _params, _verifier, tx_path, resp = itsme_login(client, acr_values=settings.acr_for("high"))
    html = assert_refused(app, client, resp, "insufficient_level", 400)
    assert f'href="{tx_path}/itsme"' in html  # the password login does not reach "high"


def test_unknown_person_without_registration_gets_a_page(itsme_app):
    app = itsme_app(register=False)
    client = app.test_client()
    _params, _verifier, tx_path, resp = itsme_login(client)
    assert_refused(app, client, resp, "no_account", 400, tx_path)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Account)) == 0


def test_disabled_account_gets_a_page(app, client, person):
    params, verifier, _tx, resp = itsme_login(client)
    sub = finish_at_rp(client, resp, params, verifier)["sub"]
    with app.app_context():
        db.session.scalar(select(Account).where(Account.sub == sub)).status = "disabled"
        db.session.execute(SsoSession.__table__.delete())
        db.session.commit()
    browser = app.test_client()
    _params, _verifier, tx_path, resp = itsme_login(browser)
    assert_refused(app, browser, resp, "account_disabled", 400, tx_path)


# ---------------------------------------------------------------------------
# Our RP keys: the JWKS URL registered with itsme, and rotation
# ---------------------------------------------------------------------------


def test_rp_jwks_is_public_cacheable_and_holds_only_public_rsa_keys(client):
    resp = client.get("/itsme/jwks.json")
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"] == "public, max-age=600"
    assert resp.mimetype == "application/json"
    keys = json.loads(resp.data)["keys"]
    assert sorted(k["use"] for k in keys) == ["enc", "sig"]
    assert all(k["kty"] == "RSA" and k["kid"] and "d" not in k and "p" not in k for k in keys)


def test_rp_jwks_is_absent_without_an_itsme_connector(make_app):
    assert make_app().test_client().get("/itsme/jwks.json").status_code == 404


def test_key_rotation_command_publishes_new_keys_and_logins_keep_working(app, client, person):
    before = {k["use"]: k["kid"] for k in json.loads(client.get("/itsme/jwks.json").data)["keys"]}
    result = app.test_cli_runner().invoke(idp_cli, ["keys", "rotate", "--connector", "itsme"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)  # log lines go to stderr
    assert summary["connector"] == "itsme" and set(summary["retired"]) == set(before.values())

    keys = json.loads(client.get("/itsme/jwks.json").data)["keys"]
    published = {(k["use"], k["kid"]) for k in keys}
    assert ("sig", summary["sig"]) in published and ("enc", summary["enc"]) in published
    assert ("sig", before["sig"]) in published  # assertions already sent still verify
    assert ("enc", before["enc"]) not in published  # itsme must encrypt to the new key

    params, verifier, _tx, resp = itsme_login(client)
    assert finish_at_rp(client, resp, params, verifier)["amr"]
    with app.app_context():
        assert db.session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.event == "keys.rotate")
        )


def test_key_rotation_command_without_itsme_says_so(make_app):
    result = make_app().test_cli_runner().invoke(idp_cli, ["keys", "rotate", "--connector", "itsme"])
    assert result.exit_code != 0 and "not configured" in result.output


def test_wrong_keys_passphrase_is_a_configuration_error(make_app, itsme_config, monkeypatch):
    from connectors.config import ConfigErrors

    config = itsme_config()
    monkeypatch.setenv("ITSME_TEST_KEYS_PASSPHRASE", "not the passphrase")
    with pytest.raises(ConfigErrors) as err:
        make_app(config)
    assert "connectors.itsme.keys_dir" in str(err.value)
