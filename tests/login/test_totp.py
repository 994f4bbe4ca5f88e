"""The authenticator app (TOTP): enrolment in the account pages, login with it, replay, removal."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pyotp
import pytest

from tests.conftest import PASSWORD, authorize_params
from tests.support.clock import app_clock
from tests.support.sms_login import (
    alice_fixture,  # noqa: F401 (the "alice" fixture)
    csrf,
    login_at_provider,
    post_code,
    post_password,
    sms_to,
)


@pytest.fixture
def clock(app):
    return app_clock(app, 1_900_000_005.0)


def enrol(client, app, clock) -> str:
    login_at_provider(client, app)
    page = client.get("/account/app")
    assert page.status_code == 200
    resp = client.post("/account/app", data={"csrf_token": csrf(page.get_data(as_text=True)), "start": "1"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert 'src="data:image/svg+xml;base64,' in html
    secret = re.search(r'<code class="secret">([A-Z2-7]+)</code>', html).group(1)
    code = pyotp.TOTP(secret).at(clock.t)
    resp = client.post("/account/app", data={"csrf_token": csrf(html), "code": code})
    assert resp.status_code == 303, resp.get_data(as_text=True)
    return secret


def test_enrolment_stores_the_secret_encrypted_and_never_shows_it_again(app, client, alice, clock):
    secret = enrol(client, app, clock)
    from idp.core.storage import Account, db

    with app.app_context():
        stored = db.session.query(Account).one().totp_secret
    assert stored and secret not in stored and stored.startswith("f1:")
    html = client.get("/account/app").get_data(as_text=True)
    assert secret not in html and "data:image" not in html
    assert "Remove the authenticator app" in html


def test_wrong_first_code_does_not_enrol(app, client, alice, clock):
    login_at_provider(client, app)
    page = client.get("/account/app").get_data(as_text=True)
    html = client.post("/account/app", data={"csrf_token": csrf(page), "start": "1"}).get_data(as_text=True)
    resp = client.post("/account/app", data={"csrf_token": csrf(html), "code": "000000"})
    assert resp.status_code == 400
    from idp.core.storage import Account, db

    with app.app_context():
        assert db.session.query(Account).one().totp_secret is None


def login_to_code_page(app):
    client = app.test_client()
    params, _ = authorize_params()
    tx_path = urlsplit(client.get("/authorize", query_string=params).location).path
    resp = post_password(client, tx_path, "alice", PASSWORD)
    assert resp.status_code == 303
    return client, tx_path


def test_login_with_the_app_instead_of_sms(app, client, alice, clock):
    secret = enrol(client, app, clock)
    clock.t += 30
    other, tx_path = login_to_code_page(app)
    html = other.get(tx_path + "/code").get_data(as_text=True)
    assert f'href="{tx_path}/app"' in html and "Use my authenticator app" in html
    resp = post_code(other, tx_path + "/app", pyotp.TOTP(secret).at(clock.t))
    assert resp.status_code == 303
    assert other.get(resp.location).status_code == 302


def test_a_code_from_the_app_cannot_be_replayed(app, client, alice, clock):
    secret = enrol(client, app, clock)
    clock.t += 30
    code = pyotp.TOTP(secret).at(clock.t)
    first, tx1 = login_to_code_page(app)
    assert post_code(first, tx1 + "/app", code).status_code == 303
    second, tx2 = login_to_code_page(app)
    assert post_code(second, tx2 + "/app", code).status_code == 400


def test_the_enrolment_code_cannot_be_used_to_log_in(app, client, alice, clock):
    secret = enrol(client, app, clock)
    other, tx_path = login_to_code_page(app)
    assert post_code(other, tx_path + "/app", pyotp.TOTP(secret).at(clock.t)).status_code == 400


def test_app_codes_share_the_failure_counter_with_sms_codes(app, client, alice, clock):
    secret = enrol(client, app, clock)
    other, tx_path = login_to_code_page(app)
    statuses = [post_code(other, tx_path + "/app", "000000").status_code for _ in range(3)]
    statuses += [post_code(other, tx_path + "/code", "000000").status_code for _ in range(2)]
    assert statuses == [400, 400, 400, 400, 429]
    clock.t += 30
    assert post_code(other, tx_path + "/app", pyotp.TOTP(secret).at(clock.t)).status_code == 429


def test_account_without_phone_but_with_the_app_logs_in_with_the_app(app, client, alice, clock):
    secret = enrol(client, app, clock)
    from idp.core.storage import Account, db

    with app.app_context():
        account = db.session.query(Account).one()
        account.phone_verified = False
        db.session.commit()
    before = len(sms_to(app))
    other = app.test_client()
    params, _ = authorize_params()
    tx_path = urlsplit(other.get("/authorize", query_string=params).location).path
    resp = post_password(other, tx_path, "alice", PASSWORD)
    assert resp.location.endswith(tx_path + "/app")
    assert len(sms_to(app)) == before
    clock.t += 30
    assert post_code(other, tx_path + "/app", pyotp.TOTP(secret).at(clock.t)).status_code == 303


def test_removing_the_app(app, client, alice, clock):
    enrol(client, app, clock)
    page = client.get("/account/app").get_data(as_text=True)
    resp = client.post("/account/app", data={"csrf_token": csrf(page), "remove": "1"})
    assert resp.status_code == 303
    from idp.core.storage import Account, AuditEvent, db

    with app.app_context():
        assert db.session.query(Account).one().totp_secret is None
        events = [e.event for e in db.session.query(AuditEvent).all()]
    assert "totp_enrolled" in events and "totp_removed" in events


def test_enrolment_needs_a_recent_full_login(app, client, alice, clock):
    login_at_provider(client, app)
    from idp.core.storage import SsoSession, db

    with app.app_context():
        row = db.session.query(SsoSession).one()
        row.auth_time -= 3600
        db.session.commit()
    resp = client.get("/account/app")
    assert resp.status_code == 302 and resp.location.endswith("/login/-")
