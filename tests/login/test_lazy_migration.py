"""Lazy migration: the old system (a real HTTP fake on 127.0.0.1) is asked once per unknown username."""

from __future__ import annotations

import logging
import ssl

import pytest
from sqlalchemy import func, select

from connectors.config import ConfigTable
from idp.accounts import legacy_source
from idp.accounts.legacy_source import LegacySettings
from idp.accounts.origins import AccountOrigin
from idp.core.storage import Account, AuditEvent, db
from idp.login import lockout
from tests.fakes.legacy_system import FakeLegacySystem
from tests.support.sms_login import csrf, last_code, post_code, post_password
from tests.support.tls import make_tls_files

OLD_PASSWORD = "Mijn oud wachtwoord!"
TOKEN_ENV = "IDP_TEST_LEGACY_TOKEN"


@pytest.fixture
def old_system():
    with FakeLegacySystem() as old:
        old.add(
            "jpeeters",
            OLD_PASSWORD,
            email="jan@example.com",
            email_verified=True,
            mobile="+32470555111",
            mobile_verified=True,
            given_name="Jan",
            family_name="Peeters",
        )
        yield old


@pytest.fixture
def lazy_app(make_app, old_system, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, old_system.token)
    return make_app(
        {
            "legacy": {
                "enabled": True,
                "url": old_system.url,
                "bearer_token": f"env:{TOKEN_ENV}",
                "timeout": 1,
                "response_time_floor_ms": 50,
                "circuit_breaker": {"failures": 2, "open_for": 60},
            }
        }
    )


def accounts(app) -> list[Account]:
    with app.app_context():
        rows = db.session.scalars(select(Account)).all()
        db.session.expunge_all()
        return rows


def test_first_login_creates_the_account_and_the_second_does_not_ask_the_old_system(lazy_app, old_system):
    client = lazy_app.test_client()
    resp = post_password(client, "/login/-", "JPeeters", OLD_PASSWORD)
    assert resp.status_code == 303 and resp.location.endswith("/code"), resp.get_data(as_text=True)
    [account] = accounts(lazy_app)
    assert account.username == "JPeeters" and account.username_norm == "jpeeters"
    assert account.password_hash.startswith(lazy_app.extensions["idp.passwords"].current_prefix())
    assert (account.email, account.email_verified, account.phone, account.phone_verified) == (
        "jan@example.com",
        True,
        "+32470555111",
        True,
    )
    assert (account.given_name, account.family_name) == ("Jan", "Peeters")
    done = post_code(client, "/login/-/code", last_code(lazy_app, "+32470555111"))
    assert done.status_code == 303
    with lazy_app.app_context():
        origin = db.session.get(AccountOrigin, account.id)
        assert origin.source == "lazy" and origin.first_login_at is not None
    assert old_system.calls_for("jpeeters") == 1
    assert old_system.requests[0]["headers"]["Authorization"] == f"Bearer {old_system.token}"

    # Later logins are checked here only, even with the old system gone.
    old_system.stop()
    again = lazy_app.test_client()
    resp = post_password(again, "/login/-", "jpeeters", OLD_PASSWORD)
    assert resp.status_code == 303 and resp.location.endswith("/code")
    wrong = post_password(lazy_app.test_client(), "/login/-", "jpeeters", "not it")
    assert wrong.status_code == 400
    assert old_system.calls_for("jpeeters") == 1
    assert len(accounts(lazy_app)) == 1


def error_of(resp) -> str:
    html = resp.get_data(as_text=True)
    return html.replace(csrf(html), "")


def test_unknown_and_known_but_wrong_usernames_answer_alike(lazy_app, old_system):
    unknown = post_password(lazy_app.test_client(), "/login/-", "nobody", OLD_PASSWORD)
    wrong = post_password(lazy_app.test_client(), "/login/-", "jpeeters", "wrong password")
    assert unknown.status_code == wrong.status_code == 400
    assert "The username or password is not correct." in unknown.get_data(as_text=True)
    assert error_of(unknown).replace("nobody", "X") == error_of(wrong).replace("jpeeters", "X")
    assert old_system.calls_for("nobody") == old_system.calls_for("jpeeters") == 1
    assert accounts(lazy_app) == []
    with lazy_app.app_context():
        # Both count against the same per-username lockout counters as any wrong password.
        assert lockout.status(lockout.password_key("nobody"), 0)[0] == 1
        assert lockout.status(lockout.password_key("jpeeters"), 0)[0] == 1


def test_failures_lock_the_username_before_the_old_system_is_asked_again(make_app, old_system, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, old_system.token)
    app = make_app(
        {
            "otp": {"password_max_failures": 2},
            "legacy": {
                "enabled": True,
                "url": old_system.url,
                "bearer_token": f"env:{TOKEN_ENV}",
                "response_time_floor_ms": 0,
            },
        }
    )
    for _ in range(2):
        assert post_password(app.test_client(), "/login/-", "jpeeters", "wrong").status_code in (400, 429)
    locked = post_password(app.test_client(), "/login/-", "jpeeters", OLD_PASSWORD)
    assert locked.status_code == 429
    assert old_system.calls_for("jpeeters") == 2
    assert accounts(app) == []


@pytest.mark.parametrize("outage", ["stopped", "503", "bad_token"])
def test_old_system_down_gives_a_clear_message_and_no_account(lazy_app, old_system, outage, caplog):
    caplog.set_level(logging.DEBUG)
    if outage == "stopped":
        old_system.stop()
    elif outage == "503":
        old_system.fail_status = 503
    else:
        old_system.token = "rotated-on-the-other-side"
    resp = post_password(lazy_app.test_client(), "/login/-", "jpeeters", OLD_PASSWORD)
    assert resp.status_code == 503
    assert "We cannot check accounts of our previous system right now" in resp.get_data(as_text=True)
    assert accounts(lazy_app) == []
    assert OLD_PASSWORD not in caplog.text
    with lazy_app.app_context():
        reasons = db.session.scalars(select(AuditEvent.detail).where(AuditEvent.event == "login")).all()
        assert reasons == [{"reason": "legacy_unavailable"}]


def test_the_circuit_breaker_stops_calling_a_failing_old_system(lazy_app, old_system):
    old_system.fail_status = 500
    for _ in range(3):
        resp = post_password(lazy_app.test_client(), "/login/-", "jpeeters", OLD_PASSWORD)
        assert resp.status_code == 503
    assert len(old_system.requests) == 2  # failures = 2: the third login did not call
    with lazy_app.app_context():
        assert db.session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.event == "legacy_source_breaker")
        )


def test_a_mobile_the_old_system_had_not_verified_is_confirmed_by_the_login_code(lazy_app, old_system):
    old_system.add(
        "marie", OLD_PASSWORD, mobile="+32470555222", mobile_verified=False, email="not an address"
    )
    client = lazy_app.test_client()
    resp = post_password(client, "/login/-", "marie", OLD_PASSWORD)
    # The code goes to the number the old system had on record (the password does not choose it).
    assert resp.status_code == 303 and resp.location.endswith("/code")
    [account] = accounts(lazy_app)
    assert (account.phone, account.phone_verified, account.email) == ("+32470555222", False, None)
    assert post_code(client, "/login/-/code", last_code(lazy_app, "+32470555222")).status_code == 303
    [account] = accounts(lazy_app)
    assert account.phone_verified


def test_an_account_from_the_old_system_without_a_mobile_cannot_finish_a_password_login(lazy_app, old_system):
    old_system.add("piet", OLD_PASSWORD)
    resp = post_password(lazy_app.test_client(), "/login/-", "piet", OLD_PASSWORD)
    assert resp.status_code == 403  # itsme/eID, then "add and confirm your mobile"
    assert "no confirmed mobile number" in resp.get_data(as_text=True)
    assert len(accounts(lazy_app)) == 1


def test_known_accounts_never_reach_the_old_system(lazy_app, old_system, make_user):
    make_user("alice")
    assert post_password(lazy_app.test_client(), "/login/-", "alice", "wrong").status_code == 400
    assert old_system.requests == []


def table(data: dict, errors: list) -> ConfigTable:
    return ConfigTable(data, "idp.toml", "legacy", errors=errors)


@pytest.mark.parametrize(
    ("data", "key", "reason"),
    [
        ({"enabled": True, "bearer_token": "env:HOME"}, "url", "is required when enabled"),
        (
            {"enabled": True, "url": "http://old.example.com/check", "bearer_token": "env:HOME"},
            "url",
            "https",
        ),
        ({"enabled": True, "url": "https://old.example.com/check"}, "bearer_token", "client_cert"),
        ({"timeout": 100}, "timeout", "between"),
        ({"circuit_breaker": {"failures": 0}}, "circuit_breaker.failures", "at least 1"),
        ({"enabeld": True}, "enabeld", "unknown key"),
    ],
)
def test_settings_report_bad_values(data, key, reason):
    errors: list = []
    LegacySettings.from_table(table(data, errors))
    assert any(key in str(e) and reason in str(e) for e in errors), errors


def test_mutual_tls_to_the_old_system(make_app, tmp_path):
    files = make_tls_files(tmp_path / "tls")
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(files.ca))
    server_tls.load_cert_chain(files.server_cert, files.server_key)
    server_tls.verify_mode = ssl.CERT_REQUIRED  # no client certificate, no answer
    with FakeLegacySystem(token=None, ssl_context=server_tls) as old:
        old.add("jpeeters", OLD_PASSWORD, mobile="+32470555111", mobile_verified=True)
        legacy = {"enabled": True, "url": old.url, "ca_file": str(files.ca), "response_time_floor_ms": 0}
        app = make_app(
            {"legacy": {**legacy, "client_cert": str(files.client_cert), "client_key": str(files.client_key)}}
        )
        resp = post_password(app.test_client(), "/login/-", "jpeeters", OLD_PASSWORD)
        assert resp.status_code == 303 and resp.location.endswith("/code")
        assert old.calls_for("jpeeters") == 1

        # The old system's certificate must chain to ca_file: the system CAs do not know this one.
        untrusted = make_app(
            {
                "legacy": {
                    **{k: v for k, v in legacy.items() if k != "ca_file"},
                    "client_cert": str(files.client_cert),
                    "client_key": str(files.client_key),
                }
            }
        )
        assert post_password(untrusted.test_client(), "/login/-", "marie", OLD_PASSWORD).status_code == 503
        assert old.calls_for("marie") == 0


def test_every_answer_that_asked_the_old_system_waits_for_the_floor(make_app, old_system, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, old_system.token)
    legacy = {"enabled": True, "url": old_system.url, "bearer_token": f"env:{TOKEN_ENV}"}
    app = make_app({"legacy": {**legacy, "response_time_floor_ms": 30000}})
    waits = []
    monkeypatch.setattr(legacy_source.time, "sleep", waits.append)  # record the padding, do not wait it
    for username, password in (("nobody", OLD_PASSWORD), ("jpeeters", "wrong"), ("x y", "junk")):
        assert post_password(app.test_client(), "/login/-", username, password).status_code == 400
    # Each answer is padded up to the same 30 s floor, whatever the old system's own timing.
    assert len(waits) == 3 and all(25 < w <= 30 for w in waits)
