"""The password + SMS login with the real HTTP SMS backend against a local gateway
(tests/fakes/sms_gateway.py) that can be slow, fail with 5xx and refuse with 4xx."""

from __future__ import annotations

import re
import threading
from urllib.parse import urlsplit

import pytest

from tests.conftest import PASSWORD, authorize_params
from tests.fakes.sms_gateway import FakeSmsGateway
from tests.login.test_itsme_login import fake, itsme_config, keys_template  # noqa: F401 (itsme as the alternative)
from tests.support.clock import app_clock
from tests.support.sms_login import (
    deliver,
    post_code,
    post_password,
    ready,
)

NUMBER = "+32470123456"


@pytest.fixture
def gateway():
    with FakeSmsGateway(token="sms-test-token") as gw:
        yield gw


@pytest.fixture
def sms_app(make_app, gateway, monkeypatch, itsme_config):  # noqa: F811 (the imported fixture)
    monkeypatch.setenv("IDP_TEST_SMS_AUTH", gateway.auth_value)

    def build(timeout=1.0, retries=2):
        config = itsme_config()
        config["sms"] = {
            "backend": "http",
            "sender": "MyOnline",
            "http": {
                "url": gateway.url,
                "auth_value": "env:IDP_TEST_SMS_AUTH",
                "timeout": timeout,
                "retries": retries,
                "backoff": 0,
            },
        }
        app = make_app(config)
        ready(app, _user(app))
        return app

    return build


def _user(app):
    from idp.accounts.users import create_local_account

    with app.app_context():
        return create_local_account("alice", password=PASSWORD, email="alice@example.com", phone=NUMBER).sub


def code_page(app):
    client = app.test_client()
    params, _ = authorize_params()
    tx_path = urlsplit(client.get("/authorize", query_string=params).location).path
    resp = post_password(client, tx_path, "alice", PASSWORD)
    assert resp.status_code == 303 and resp.location.endswith("/code")
    deliver(app)  # the worker's pass: the request itself only queued the SMS
    page = client.get(resp.location)
    return client, urlsplit(resp.location).path, page


def code_from(gateway) -> str:
    return re.search(r"\b(\d{6})\b", gateway.texts_to(NUMBER)[-1]).group(1)


def test_login_with_the_http_gateway(sms_app, gateway):
    app = sms_app()
    client, path, page = code_page(app)
    assert page.status_code == 200 and "error" not in page.get_data(as_text=True).split("<main", 1)[1][:400]
    assert gateway.messages[-1]["sender"] == "MyOnline"
    assert gateway.requests[-1]["headers"]["Authorization"] == gateway.auth_value
    assert post_code(client, path, code_from(gateway)).status_code == 303


def test_slow_gateway_within_the_timeout_still_works(sms_app, gateway):
    app = sms_app(timeout=2.0)
    gateway.slow_next(1, 0.3)
    client, path, _page = code_page(app)
    assert post_code(client, path, code_from(gateway)).status_code == 303


def test_a_hanging_gateway_keeps_the_code_pending_and_delivers_once_it_is_back(sms_app, gateway):
    app = sms_app(timeout=0.2, retries=0)
    clock = app_clock(app)
    gateway.slow_next(1, 1.0)
    client, path, page = code_page(app)  # the worker's try timed out
    assert "Your SMS is being sent" in page.get_data(as_text=True)
    for _ in range(100):  # the fake answers one request at a time: let the slow one finish
        if gateway.requests:
            break
        threading.Event().wait(0.05)
    clock.t += 60  # past the backoff
    deliver(app)
    keys = {r["headers"].get("Idempotency-Key") for r in gateway.requests}
    assert len(gateway.requests) == 2 and len(keys) == 1 and None not in keys  # one message, one key
    assert "Your SMS has been sent" in client.get(path).get_data(as_text=True)
    assert post_code(client, path, code_from(gateway)).status_code == 303


def test_server_errors_are_retried(sms_app, gateway):
    app = sms_app(retries=2)
    gateway.fail_next(2, 503)
    client, path, _page = code_page(app)
    assert len(gateway.requests) == 3 and len(gateway.messages) == 1
    assert post_code(client, path, code_from(gateway)).status_code == 303


def test_refusal_is_not_retried_and_offers_the_alternatives(sms_app, gateway):
    app = sms_app()
    from idp.core.storage import Account, db
    from idp.login import totp

    with app.app_context():
        account = db.session.query(Account).one()
        account.totp_secret = totp.seal(totp.new_secret())
        db.session.commit()
    gateway.refuse_next(1, 400)
    _client, path, page = code_page(app)
    html = page.get_data(as_text=True)
    assert len(gateway.requests) == 1
    assert "Your code could not be sent" in html
    assert "/itsme" in html and "Use my authenticator app" in html


def test_refused_code_is_audited_without_the_number(sms_app, gateway):
    app = sms_app()
    gateway.refuse_next(1, 400)
    code_page(app)
    from idp.core.storage import AuditEvent, db

    with app.app_context():
        row = db.session.query(AuditEvent).filter_by(event="message_send_failed").one()
        assert row.detail["reason"] == "gateway_refused" and NUMBER not in str(row.detail)


def test_a_message_queued_during_an_outage_is_delivered_once_the_gateway_is_back(sms_app, gateway):
    app = sms_app(retries=0)
    clock = app_clock(app)
    gateway.fail_next(1, 502)
    client, path, page = code_page(app)
    assert gateway.messages == [] and "Your SMS is being sent" in page.get_data(as_text=True)
    clock.t += 60
    deliver(app)
    assert len(gateway.messages) == 1
    assert post_code(client, path, code_from(gateway)).status_code == 303
