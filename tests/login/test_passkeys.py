"""Passkeys through the real endpoints, with a software authenticator, on SQLite and PostgreSQL.

Registration after a full login, sign-in through a relying party without an
SMS, the origin / RP id / user verification / single-use challenge checks,
the clone signal (refused or flagged), removal, erasure with the account,
and the per-client assurance rules. The browser tests are in
test_browser_passkeys.py.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from sqlalchemy import delete, select

from idp.accounts.passkeys import Passkey
from idp.core.storage import Account, AuditEvent, db
from tests.conftest import authorize_params, csrf_from, exchange, query_of
from tests.support.oidc import decode
from tests.support.sms_login import emails_to, last_code, login_at_provider, post_code, sms_to
from tests.support.webauthn_authenticator import SoftAuthenticator

ORIGIN, RP_ID = "http://localhost", "localhost"
GOOGLE = bytes.fromhex("ea9b8d664d011d213ce4b6b48cb575d4")


def _csrf(client, path: str) -> dict:
    page = client.get(path)
    assert page.status_code == 200, page.get_data(as_text=True)
    return {"X-CSRFToken": csrf_from(page.get_data(as_text=True))}


def register(client, auth: SoftAuthenticator, **create):
    headers = _csrf(client, "/account/passkeys/")
    opts = client.post("/account/passkeys/register/options", json={}, headers=headers)
    assert opts.status_code == 200, opts.get_json()
    credential = auth.create(opts.get_json()["options"], **create)
    return client.post("/account/passkeys/register/verify", json={"credential": credential}, headers=headers)


def enrol(app, **authenticator) -> SoftAuthenticator:
    """alice logs in with password + SMS and adds a passkey from the account page."""
    client = app.test_client()
    login_at_provider(client, app)
    auth = SoftAuthenticator(ORIGIN, RP_ID, **authenticator)
    resp = register(client, auth)
    assert resp.status_code == 200, resp.get_json()
    return auth


def start_login(client, params: dict) -> str:
    resp = client.get("/authorize", query_string=params)
    assert resp.status_code == 302 and "/login/" in resp.location, resp.location
    return urlsplit(resp.location).path


def passkey_verify(client, tx_path: str, auth: SoftAuthenticator, **get):
    headers = _csrf(client, tx_path + "/passkey")
    opts = client.post(tx_path + "/passkey/options", json={}, headers=headers)
    assert opts.status_code == 200, opts.get_json()
    credential = auth.get(opts.get_json()["options"], **get)
    return client.post(tx_path + "/passkey/verify", json={"credential": credential}, headers=headers)


def login(client, auth: SoftAuthenticator, **get):
    """A passkey login for the portal in this browser; the verify response."""
    return passkey_verify(client, start_login(client, authorize_params()[0]), auth, **get)


def tokens_after(client, resp, params, verifier, client_id="portal", redirect_uri=None, auth=None):
    assert resp.status_code == 200, resp.get_json()
    onward = client.get(resp.get_json()["redirect"])
    assert onward.status_code == 302, onward.get_data(as_text=True)
    code = query_of(onward.location)["code"]
    kwargs = {"client_id": client_id}
    if redirect_uri:
        kwargs.update(redirect_uri=redirect_uri, auth=auth)
    token = exchange(client, code, verifier, **kwargs)
    assert token.status_code == 200, token.get_json()
    return decode(client, token.get_json()["id_token"])[1]


def events(app, name: str) -> list[AuditEvent]:
    with app.app_context():
        return list(db.session.scalars(select(AuditEvent).where(AuditEvent.event == name)))


def passkeys_of(app) -> list[Passkey]:
    with app.app_context():
        return list(db.session.scalars(select(Passkey)))


# ---------------------------------------------------------------------------
# Registration
# ---------------------------------------------------------------------------


def test_a_passkey_is_added_after_a_full_login_named_from_its_aaguid_audited_and_notified(app, user):
    enrol(app, aaguid=GOOGLE)
    (row,) = passkeys_of(app)
    assert row.name == "Google Password Manager"
    assert row.sign_count == 0 and row.last_used_at is None
    assert [e.outcome for e in events(app, "passkey_added")] == ["success"]
    mails = emails_to(app, "alice@example.com")
    assert any("passkey" in m["subject"].lower() for m in mails), [m["subject"] for m in mails]


def test_several_passkeys_each_listed_with_its_name(app, user):
    client = app.test_client()
    login_at_provider(client, app)
    for aaguid in (GOOGLE, bytes(16)):
        assert register(client, SoftAuthenticator(ORIGIN, RP_ID, aaguid=aaguid)).status_code == 200
    page = client.get("/account/passkeys/").get_data(as_text=True)
    assert "Google Password Manager" in page and "Passkey" in page
    rows = passkeys_of(app)
    assert len(rows) == 2 and rows[0].user_handle == rows[1].user_handle


def test_adding_a_passkey_needs_a_login(app, user):
    client = app.test_client()
    headers = {"X-CSRFToken": csrf_from(client.get("/login/-/password").get_data(as_text=True))}
    resp = client.post("/account/passkeys/register/options", json={}, headers=headers)
    assert resp.status_code == 401
    assert passkeys_of(app) == []


def test_a_registration_challenge_is_single_use(app, user):
    client = app.test_client()
    login_at_provider(client, app)
    headers = _csrf(client, "/account/passkeys/")
    opts = client.post("/account/passkeys/register/options", json={}, headers=headers).get_json()["options"]
    credential = SoftAuthenticator(ORIGIN, RP_ID).create(opts)
    first = client.post("/account/passkeys/register/verify", json={"credential": credential}, headers=headers)
    again = client.post("/account/passkeys/register/verify", json={"credential": credential}, headers=headers)
    assert first.status_code == 200 and again.status_code == 400
    assert len(passkeys_of(app)) == 1


def test_a_registration_made_for_another_origin_is_refused(app, user):
    client = app.test_client()
    login_at_provider(client, app)
    resp = register(client, SoftAuthenticator(ORIGIN, RP_ID), origin="https://evil.example")
    assert resp.status_code == 400 and "error" in resp.get_json()
    assert passkeys_of(app) == []


def test_a_registration_without_user_verification_is_refused(app, user):
    client = app.test_client()
    login_at_provider(client, app)
    assert register(client, SoftAuthenticator(ORIGIN, RP_ID), uv=False).status_code == 400
    assert passkeys_of(app) == []


def test_registration_options_ask_for_a_discoverable_credential_with_user_verification(app, user):
    client = app.test_client()
    login_at_provider(client, app)
    headers = _csrf(client, "/account/passkeys/")
    opts = client.post("/account/passkeys/register/options", json={}, headers=headers).get_json()["options"]
    assert opts["rp"]["id"] == RP_ID
    assert opts["authenticatorSelection"]["residentKey"] == "required"
    assert opts["authenticatorSelection"]["userVerification"] == "required"
    assert opts["attestation"] == "none"


# ---------------------------------------------------------------------------
# Sign-in
# ---------------------------------------------------------------------------


def test_a_passkey_login_through_the_relying_party_sends_no_sms(app, user):
    auth = enrol(app)
    sent = len(sms_to(app))
    client = app.test_client()
    params, verifier = authorize_params()
    claims = tokens_after(client, passkey_verify(client, start_login(client, params), auth), params, verifier)
    assert claims["amr"] == ["hwk", "user", "mfa"]
    assert claims["acr"] == "urn:idp:acr:substantial"
    assert len(sms_to(app)) == sent
    (row,) = passkeys_of(app)
    assert row.sign_count == 1 and row.last_used_at is not None


def test_a_synced_passkey_counts_as_a_software_key(app, user):
    auth = enrol(app, backed_up=True)
    client = app.test_client()
    params, verifier = authorize_params()
    claims = tokens_after(client, passkey_verify(client, start_login(client, params), auth), params, verifier)
    assert claims["amr"] == ["swk", "user", "mfa"]


@pytest.mark.parametrize(
    "bad",
    [
        {"origin": "https://evil.example"},
        {"origin": "http://localhost:8080"},
        {"rp_id": "evil.example"},
        {"uv": False},
    ],
    ids=["other-origin", "other-port", "other-rp-id", "no-user-verification"],
)
def test_an_assertion_that_fails_a_check_is_refused(app, user, bad):
    auth = enrol(app)
    client = app.test_client()
    params, _verifier = authorize_params()
    resp = passkey_verify(client, start_login(client, params), auth, **bad)
    assert resp.status_code == 400 and "redirect" not in resp.get_json()
    assert events(app, "login")[-1].outcome == "failure"


def test_a_login_challenge_is_single_use(app, user):
    auth = enrol(app)
    client = app.test_client()
    tx_path = start_login(client, authorize_params()[0])
    headers = _csrf(client, tx_path + "/passkey")
    opts = client.post(tx_path + "/passkey/options", json={}, headers=headers).get_json()["options"]
    credential = auth.get(opts)
    other = app.test_client()  # another browser cannot use this session's challenge
    other_path = start_login(other, authorize_params()[0])
    other_headers = _csrf(other, other_path + "/passkey")
    body = {"credential": credential}
    stolen = other.post(other_path + "/passkey/verify", json=body, headers=other_headers)
    assert stolen.status_code == 400
    first = client.post(tx_path + "/passkey/verify", json={"credential": credential}, headers=headers)
    assert first.status_code == 200, first.get_json()
    replay = client.post(tx_path + "/passkey/verify", json={"credential": credential}, headers=headers)
    assert replay.status_code == 400


def test_an_unknown_passkey_gets_the_same_answer_as_a_bad_one(app, user):
    enrol(app)
    client = app.test_client()
    tx_path = start_login(client, authorize_params()[0])
    unknown = passkey_verify(client, tx_path, SoftAuthenticator(ORIGIN, RP_ID, user_handle="AAAA"))
    tx_path = start_login(client, authorize_params()[0])
    bad = passkey_verify(client, tx_path, SoftAuthenticator(ORIGIN, RP_ID), uv=False)
    assert unknown.status_code == bad.status_code == 400
    assert unknown.get_json() == bad.get_json()


def test_a_cloned_authenticator_whose_counter_goes_back_is_refused(app, user):
    auth = enrol(app)
    client = app.test_client()
    assert login(client, auth, sign_count=5).status_code == 200
    clone = app.test_client()
    resp = login(clone, auth, sign_count=3)
    assert resp.status_code == 400
    (signal,) = events(app, "passkey_clone_signal")
    assert signal.outcome == "failure" and signal.detail["policy"] == "refuse"
    (row,) = passkeys_of(app)
    assert row.sign_count == 5 and row.clone_warning_at is not None


def test_a_cloned_authenticator_is_let_in_but_flagged_when_so_configured(make_app, make_user):
    app = make_app({"passkeys": {"clone_policy": "flag"}})
    make_user()
    auth = enrol(app)
    client = app.test_client()
    assert login(client, auth, sign_count=5).status_code == 200
    clone = app.test_client()
    resp = login(clone, auth, sign_count=5)
    assert resp.status_code == 200
    (signal,) = events(app, "passkey_clone_signal")
    assert signal.outcome == "success" and signal.detail["policy"] == "flag"
    (row,) = passkeys_of(app)
    assert row.clone_warning_at is not None
    login_at_provider(clone, app)
    assert "may have been copied" in clone.get("/account/passkeys/").get_data(as_text=True)


def test_a_counterless_passkey_is_not_taken_for_a_clone(app, user):
    auth = enrol(app)
    for _ in range(2):
        client = app.test_client()
        assert login(client, auth, sign_count=0).status_code == 200
    assert events(app, "passkey_clone_signal") == []


# ---------------------------------------------------------------------------
# Removal, erasure, the offer
# ---------------------------------------------------------------------------


def test_a_removed_passkey_no_longer_works_and_the_removal_is_notified(app, user):
    auth = enrol(app)
    client = app.test_client()
    login_at_provider(client, app)
    (row,) = passkeys_of(app)
    headers = _csrf(client, "/account/passkeys/")
    resp = client.post(f"/account/passkeys/{row.id}/remove", data={"csrf_token": headers["X-CSRFToken"]})
    assert resp.status_code == 303
    assert passkeys_of(app) == []
    assert [e.outcome for e in events(app, "passkey_removed")] == ["success"]
    assert sum("removed" in m["subject"] for m in emails_to(app, "alice@example.com")) == 1
    other = app.test_client()
    assert passkey_verify(other, start_login(other, authorize_params()[0]), auth).status_code == 400
    # The other ways to log in stay.
    assert login_at_provider(app.test_client(), app).status_code == 303


def test_another_accounts_passkey_cannot_be_removed(app, make_user):
    make_user()
    enrol(app)
    make_user("bob", email="bob@example.com", phone="+32470999999")
    client = app.test_client()
    login_at_provider(client, app, username="bob", number="+32470999999")
    (row,) = passkeys_of(app)
    headers = _csrf(client, "/account/passkeys/")
    resp = client.post(f"/account/passkeys/{row.id}/remove", data={"csrf_token": headers["X-CSRFToken"]})
    assert resp.status_code == 404
    assert len(passkeys_of(app)) == 1


def test_erasing_the_account_erases_its_passkeys(app, user):
    enrol(app)
    with app.app_context():
        db.session.execute(delete(Account).where(Account.sub == user))
        db.session.commit()
    assert passkeys_of(app) == []


def test_a_passkey_is_offered_once_after_a_password_and_sms_login_on_a_capable_device(app, user):
    from tests.support.sms_login import csrf, last_code, post_code

    def login(capable: bool):
        client = app.test_client()
        page = client.get("/login/-/password")
        resp = client.post(
            "/login/-/password",
            data={
                "csrf_token": csrf(page.get_data(as_text=True)),
                "username": "alice",
                "password": "correct horse battery staple",
                "passkey_capable": "1" if capable else "",
            },
        )
        return client, post_code(client, urlsplit(resp.location).path, last_code(app))

    _client, resp = login(capable=False)
    assert resp.location.endswith("/account/")
    client, resp = login(capable=True)
    assert resp.location.endswith("/login/passkey/offer")
    page = client.get(resp.location).get_data(as_text=True)
    assert "fingerprint or face" in page
    skip = client.post("/login/passkey/offer/skip", data={"csrf_token": csrf(page)})
    assert skip.location.endswith("/account/")
    _client, resp = login(capable=True)
    assert resp.location.endswith("/account/")  # offered once


def test_the_password_page_lets_the_browser_offer_passkeys(app, user):
    client = app.test_client()
    tx_path = start_login(client, authorize_params()[0])
    page = client.get(tx_path + "/password").get_data(as_text=True)
    assert 'autocomplete="username webauthn"' in page
    assert "js/passkey_login.js" in page and "<script>" not in page
    assert "Passkey" in client.get(tx_path).get_data(as_text=True)


# ---------------------------------------------------------------------------
# Assurance per client
# ---------------------------------------------------------------------------


def test_a_client_that_keeps_the_sms_gets_the_code_after_the_passkey(make_app, make_user):
    strict = make_app({"clients": [_portal(passkey_satisfies_sms=False)]})
    make_user()
    auth = enrol(strict)
    client = strict.test_client()
    sent = len(sms_to(strict))
    params, verifier = authorize_params()
    resp = passkey_verify(client, start_login(client, params), auth)
    assert resp.status_code == 200 and resp.get_json()["redirect"].endswith("/code")
    assert len(sms_to(strict)) == sent + 1
    done = post_code(client, urlsplit(resp.get_json()["redirect"]).path, last_code(strict))
    onward = client.get(done.location)
    token = exchange(client, query_of(onward.location)["code"], verifier)
    claims = decode(client, token.get_json()["id_token"])[1]
    assert claims["amr"] == ["hwk", "user", "sms", "mfa"]


def test_a_client_that_keeps_the_sms_refuses_a_passkey_account_without_a_number(make_app, make_user):
    strict = make_app({"clients": [_portal(passkey_satisfies_sms=False)]})
    make_user()
    auth = enrol(strict)
    with strict.app_context():
        account = db.session.scalar(select(Account))
        account.phone, account.phone_verified = None, False
        db.session.commit()
    client = strict.test_client()
    resp = passkey_verify(client, start_login(client, authorize_params()[0]), auth)
    assert resp.status_code == 403 and "mobile number" in resp.get_json()["error"]


def test_a_passkey_reaches_high_only_at_clients_that_allow_it(make_app, make_user):
    app = make_app(
        {
            "methods": {"passkey": {"level": "high"}},
            "clients": [_portal(), _portal(client_id="bank", passkey_high=True)],
        }
    )
    make_user()
    auth = enrol(app)
    client = app.test_client()
    params, verifier = authorize_params()
    claims = tokens_after(client, passkey_verify(client, start_login(client, params), auth), params, verifier)
    assert claims["acr"] == "urn:idp:acr:substantial"
    client = app.test_client()
    params, verifier = authorize_params(client_id="bank", acr_values="urn:idp:acr:high")
    resp = passkey_verify(client, start_login(client, params), auth)
    claims = tokens_after(
        client,
        resp,
        params,
        verifier,
        client_id="bank",
        redirect_uri="https://portal.example.com/callback",
        auth=("bank", "portal-" + "s" * 40),
    )
    assert claims["acr"] == "urn:idp:acr:high"


def test_a_passkey_session_counts_at_each_client_only_as_that_client_allows(make_app, make_user):
    app = make_app(
        {
            "methods": {"passkey": {"level": "high"}},
            "clients": [
                _portal(),
                _portal(client_id="bank", passkey_high=True),
                _portal(client_id="strict", passkey_satisfies_sms=False),
            ],
        }
    )
    make_user()
    auth = enrol(app)
    client = app.test_client()
    params, _verifier = authorize_params(client_id="bank", acr_values="urn:idp:acr:high")
    assert passkey_verify(client, start_login(client, params), auth).status_code == 200
    # Single sign-on at the portal: the same session, but a passkey is "substantial" there.
    params, verifier = authorize_params()
    resp = client.get("/authorize", query_string=params)
    assert resp.status_code == 302 and "code=" in resp.location, resp.location
    token = exchange(client, query_of(resp.location)["code"], verifier)
    assert decode(client, token.get_json()["id_token"])[1]["acr"] == "urn:idp:acr:substantial"
    # The strict client keeps the SMS code: the passkey-only session does not do there.
    params, _verifier = authorize_params(client_id="strict")
    resp = client.get("/authorize", query_string=params)
    assert resp.status_code == 302 and "/login/" in resp.location


def test_a_client_that_needs_high_does_not_offer_a_passkey_by_default(make_app, make_user):
    app = make_app({"methods": {"passkey": {"level": "high"}}, "clients": [_portal(min_level="high")]})
    make_user()
    client = app.test_client()
    params, _verifier = authorize_params()
    resp = client.get("/authorize", query_string=params)
    # A passkey does not reach "high" for this client, and no other offered method does either:
    # the relying party is told so at once (no chooser that would offer the passkey).
    assert resp.location.startswith("https://portal.example.com/callback?")
    assert "error=unmet_authentication_requirements" in resp.location


def _portal(client_id: str = "portal", **extra) -> dict:
    return {
        "client_id": client_id,
        "name": "Customer portal",
        "type": "confidential",
        "client_secret": "env:IDP_TEST_PORTAL_SECRET",
        "redirect_uris": ["https://portal.example.com/callback"],
        "first_party": True,
        **extra,
    }


def test_an_ip_address_issuer_has_no_passkeys_and_enabling_them_is_a_config_error():
    from connectors.config import ConfigErrors
    from idp.config import load as load_settings

    env = {"K": "k" * 48}
    base = {"provider": {"issuer": "http://127.0.0.1:5000", "secret_key": "env:K"}}
    assert (
        load_settings(overrides=base, environ=env, instance_dir="/tmp/idp-17").methods["passkey"].enabled
        is False
    )
    with pytest.raises(ConfigErrors) as raised:
        load_settings(
            overrides={**base, "methods": {"passkey": {"enabled": True}}},
            environ=env,
            instance_dir="/tmp/idp-17",
        )
    assert "host name" in str(raised.value)
    named = {"provider": {"issuer": "https://login.example.com", "secret_key": "env:K"}}
    assert load_settings(overrides=named, environ=env, instance_dir="/tmp/idp-17").methods["passkey"].enabled


@pytest.mark.parametrize(
    "table, error",
    [
        ({"clone_policy": "ignore"}, "clone_policy"),
        ({"challenge_ttl": 5}, "challenge_ttl"),
        ({"max_per_account": 0}, "max_per_account"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_passkey_settings_are_reported(table, error):
    from connectors.config import ConfigErrors
    from idp.config import load as load_settings

    with pytest.raises(ConfigErrors) as raised:
        load_settings(overrides={"passkeys": table}, environ={}, instance_dir="/tmp/idp-17")
    assert error in str(raised.value)


@pytest.mark.redis
def test_a_challenge_in_redis_is_shared_by_the_workers_and_used_once(make_app, make_user):
    import os
    import secrets

    redis = pytest.importorskip("redis")
    url = "redis://127.0.0.1:6379/15"
    try:
        redis.Redis.from_url(url).ping()
    except redis.ConnectionError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but no Redis on 127.0.0.1:6379", pytrace=False)
        pytest.skip("no Redis on 127.0.0.1:6379")
    shared = {"storage": {"kv_url": url, "kv_prefix": f"test-{secrets.token_hex(6)}:"}}
    worker_a, worker_b = make_app(shared), make_app(shared)
    make_user()
    auth = enrol(worker_a)
    browser_a = worker_a.test_client()
    tx_path = start_login(browser_a, authorize_params()[0])
    headers = _csrf(browser_a, tx_path + "/passkey")
    opts = browser_a.post(tx_path + "/passkey/options", json={}, headers=headers).get_json()["options"]
    credential = auth.get(opts)
    # The same browser (same session cookie) reaches the other worker.
    browser_b = worker_b.test_client()
    browser_b.set_cookie("idp_session", browser_a.get_cookie("idp_session").value)
    done = browser_b.post(tx_path + "/passkey/verify", json={"credential": credential}, headers=headers)
    assert done.status_code == 200, done.get_json()
    replay = browser_b.post(tx_path + "/passkey/verify", json={"credential": credential}, headers=headers)
    assert replay.status_code == 400 and "redirect" not in replay.get_json()


def test_customer_service_lists_and_removes_a_lost_passkey(app, user):
    enrol(app, aaguid=GOOGLE)

    def idp(*args):
        from flask.cli import ScriptInfo

        from idp.cli import main

        return app.test_cli_runner().invoke(main, list(args), obj=ScriptInfo(create_app=lambda: app))

    listed = idp("users", "passkeys", "alice")
    assert listed.exit_code == 0, listed.output
    assert '"name": "Google Password Manager"' in listed.output
    (row,) = passkeys_of(app)
    assert idp("users", "passkeys", "alice", "--remove", str(row.id + 1)).exit_code == 1
    removed = idp("users", "passkeys", "alice", "--remove", str(row.id))
    assert removed.exit_code == 0, removed.output
    assert passkeys_of(app) == []
    assert events(app, "passkey_removed")[-1].detail["actor"] == "support"
    told = emails_to(app, "alice@example.com")[-1]  # in the account's language: French by default
    assert "supprimée" in told["subject"] and "Google Password Manager" in told["text"]


@pytest.mark.parametrize(
    "body",
    [
        None,
        {},
        {"credential": "not an object"},
        {"credential": {}},
        {"credential": {"id": "!!", "rawId": "!!", "type": "public-key", "response": {}}},
        {
            "credential": {
                "id": "AAAA",
                "rawId": "AAAA",
                "type": "public-key",
                "response": {"clientDataJSON": "e30"},
            }
        },
    ],
    ids=["no-json", "empty", "string", "empty-credential", "bad-base64", "truncated"],
)
def test_garbage_gets_a_clear_answer_and_changes_nothing(app, user, body):
    enrol(app)
    client = app.test_client()
    tx_path = start_login(client, authorize_params()[0])
    headers = _csrf(client, tx_path + "/passkey")
    client.post(tx_path + "/passkey/options", json={}, headers=headers)
    kwargs = {"json": body} if body is not None else {"data": "x", "content_type": "text/plain"}
    login = client.post(tx_path + "/passkey/verify", headers=headers, **kwargs)
    assert login.status_code == 400 and login.get_json()["error"]
    login_at_provider(client, app)
    headers = _csrf(client, "/account/passkeys/")
    client.post("/account/passkeys/register/options", json={}, headers=headers)
    added = client.post("/account/passkeys/register/verify", headers=headers, **kwargs)
    assert added.status_code == 400 and added.get_json()["error"]
    assert len(passkeys_of(app)) == 1
