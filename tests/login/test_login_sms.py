"""The two-step password login: password, then the SMS code (NIST SP 800-63B §5.1.3)."""

from __future__ import annotations

import base64
import json
import threading
import time
from urllib.parse import urlsplit

import pytest

from tests.conftest import PASSWORD, authorize_params, exchange, query_of
from tests.support.clock import clock_fixture  # noqa: F401 (the "clock" fixture)
from tests.support.sms_login import (
    alice_fixture,  # noqa: F401 (the "alice" fixture)
    csrf,
    last_code,
    login_with_sms,
    post_code,
    post_password,
    ready,
    sms_to,
)


def start(client):
    params, verifier = authorize_params()
    resp = client.get("/authorize", query_string=params)
    assert resp.status_code == 302 and "/login/" in resp.location
    return urlsplit(resp.location).path, params, verifier


def to_code_page(client, tx_path, username="alice", password=PASSWORD):
    resp = post_password(client, tx_path, username, password)
    assert resp.status_code == 303, resp.get_data(as_text=True)
    assert resp.location.endswith(tx_path + "/code")
    return urlsplit(resp.location).path


def test_password_then_sms_code_reaches_the_portal_with_two_factors(app, client, alice, clock):
    tx_path, params, verifier = start(client)
    resp = login_with_sms(client, app, tx_path)
    assert resp.status_code == 303
    resp = client.get(resp.location)
    assert resp.status_code == 302
    q = query_of(resp.location)
    assert q["state"] == params["state"]
    token = exchange(client, q["code"], verifier)
    assert token.status_code == 200
    payload = token.json["id_token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert set(claims["amr"]) >= {"pwd", "sms", "mfa"}


def test_code_is_sent_only_after_the_password_and_only_to_the_verified_number(app, client, alice, clock):
    tx_path, _, _ = start(client)
    resp = post_password(client, tx_path, "alice", "wrong password here")
    assert resp.status_code == 400
    assert sms_to(app) == []
    to_code_page(client, tx_path)
    texts = sms_to(app)
    assert len(texts) == 1
    assert "MyOnlineServices" in texts[0] and "log in" in texts[0]


def test_code_page_shows_masked_number_timing_and_alternatives(app, client, alice, clock):
    tx_path, _, _ = start(client)
    code_path = to_code_page(client, tx_path)
    html = client.get(code_path).get_data(as_text=True)
    assert "+32 ******456" in html and "+32470123456" not in html
    assert 'autocomplete="one-time-code"' in html and 'inputmode="numeric"' in html
    assert "60 seconds" in html
    assert "Send a new code" in html


def test_resend_invalidates_the_previous_code(app, client, alice, clock):
    tx_path, _, _ = start(client)
    code_path = to_code_page(client, tx_path)
    first = last_code(app)
    page = client.get(code_path).get_data(as_text=True)
    # too soon: refused, the first code stays valid
    client.post(code_path + "/resend", data={"csrf_token": csrf(page)})
    assert len(sms_to(app)) == 1
    clock.t += 61
    client.post(code_path + "/resend", data={"csrf_token": csrf(page)})
    assert len(sms_to(app)) == 2
    second = last_code(app)
    if second == first:  # one chance in a million
        pytest.skip("the same code twice")
    resp = post_code(client, code_path, first)
    assert resp.status_code == 400
    resp = post_code(client, code_path, second)
    assert resp.status_code == 303


def test_resends_are_limited(app, client, alice, clock):
    tx_path, _, _ = start(client)
    code_path = to_code_page(client, tx_path)
    page = client.get(code_path).get_data(as_text=True)
    for _ in range(6):
        clock.t += 61
        client.post(code_path + "/resend", data={"csrf_token": csrf(page)})
    assert len(sms_to(app)) == 1 + 3  # max_resends = 3


def test_wrong_and_expired_codes_get_the_same_answer(app, client, alice, clock):
    tx_path, _, _ = start(client)
    code_path = to_code_page(client, tx_path)
    good = last_code(app)
    wrong = "000000" if good != "000000" else "111111"
    r1 = post_code(client, code_path, wrong)
    clock.t += 301
    r2 = post_code(client, code_path, good)
    assert r1.status_code == r2.status_code == 400

    def message(r):
        html = r.get_data(as_text=True)
        return html[html.index('class="error"') :].split("</p>")[0]

    assert message(r1) == message(r2)


def test_a_code_works_once(app, client, alice, clock):
    tx_path, _, _ = start(client)
    code_path = to_code_page(client, tx_path)
    code = last_code(app)
    page = client.get(code_path).get_data(as_text=True)
    assert client.post(code_path, data={"csrf_token": csrf(page), "code": code}).status_code == 303
    again = client.post(code_path, data={"csrf_token": csrf(page), "code": code})
    assert again.status_code == 400  # the pending login is gone: the sign-in has expired


def test_wrong_codes_lock_the_account_across_new_logins(app, make_app, alice, clock):
    wrong_answers = []
    for _ in range(3):  # each a new browser (new transaction, new session)
        client = app.test_client()
        tx_path, _, _ = start(client)
        code_path = to_code_page(client, tx_path)
        good = last_code(app)
        for _ in range(2):
            wrong = "000000" if good != "000000" else "111111"
            wrong_answers.append(post_code(client, code_path, wrong).status_code)
    # max_failures = 5: the fifth wrong code locks, the sixth try is refused as locked
    assert wrong_answers[:4] == [400] * 4
    assert wrong_answers[4:] == [429, 429]
    client = app.test_client()
    tx_path, _, _ = start(client)
    code_path = to_code_page(client, tx_path)
    resp = post_code(client, code_path, last_code(app))
    assert resp.status_code == 429  # even the right code, while locked
    assert "Too many failed attempts" in resp.get_data(as_text=True)
    clock.t += 3600
    resp = post_code(client, code_path, last_code(app))
    assert resp.status_code == 400  # expired by now, but no longer locked
    clock.t += 61
    page = client.get(code_path).get_data(as_text=True)
    client.post(code_path + "/resend", data={"csrf_token": csrf(page)})
    assert post_code(client, code_path, last_code(app)).status_code == 303


def test_lockout_delays_grow(app, alice, clock):
    from idp.core.storage import Account, db
    from idp.login import otp

    with app.test_request_context():
        account = db.session.query(Account).one()
        delays = []
        for _ in range(3):
            for _ in range(5):
                try:
                    otp.check_code(purpose="login", binding="b", code="123456", account_id=account.id)
                except otp.OtpError as exc:
                    last = exc
            delays.append(last.retry_after)
            clock.t += last.retry_after
    assert delays == [60, 120, 240]


def test_wrong_passwords_lock_with_the_same_answer_for_unknown_users(app, alice, clock):
    statuses = {}
    for username in ("alice", "nobody"):
        client = app.test_client()
        tx_path, _, _ = start(client)
        statuses[username] = [
            post_password(client, tx_path, username, "wrong password!").status_code for _ in range(11)
        ]
    assert statuses["alice"] == statuses["nobody"] == [400] * 9 + [429, 429]
    client = app.test_client()
    tx_path, _, _ = start(client)
    assert post_password(client, tx_path, "alice", PASSWORD).status_code == 429
    clock.t += 61
    assert post_password(client, tx_path, "alice", PASSWORD).status_code == 303


def test_parallel_wrong_passwords_never_get_more_tries_than_allowed(app, alice, clock):
    app.config["WTF_CSRF_ENABLED"] = False
    client0 = app.test_client()
    tx_path, _, _ = start(client0)
    results: list[int] = []
    lock = threading.Lock()

    def guess(i):
        client = app.test_client()
        tx, _, _ = start(client)
        r = client.post(tx + "/password", data={"username": "alice", "password": f"wrong guess {i:03d}"})
        with lock:
            results.append(r.status_code)

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 50
    # 10 tries allowed (password_max_failures); the try that reaches the limit answers 429 as well
    assert results.count(400) <= 9
    assert results.count(400) + results.count(429) == 50
    from idp.core.storage import AuditEvent, db

    with app.app_context():
        checked = db.session.query(AuditEvent).filter_by(event="login", outcome="failure").all()
        assert sum(1 for e in checked if (e.detail or {}).get("reason") == "password") <= 10


def test_password_alone_never_binds_a_first_mobile_number(app, client, make_user, clock):
    """Without a verified number or an authenticator app the password login stops: whoever has
    the password must not be able to choose the second factor. itsme / eID are offered."""
    sub = make_user("bob", phone=None)
    ready(app, sub)
    tx_path, params, _ = start(client)
    sessions_before = sso_sessions(app)
    resp = post_password(client, tx_path, "bob", PASSWORD)
    assert resp.status_code == 403
    page = resp.get_data(as_text=True)
    assert "no confirmed mobile number" in page
    assert "/actions/phone" not in page
    assert sso_sessions(app) == sessions_before
    assert client.get(tx_path + "/actions/phone").status_code in (302, 303, 400, 404)
    resp = client.get("/authorize/continue/" + tx_path.rsplit("/", 1)[-1])
    assert resp.status_code == 302 and "/login/" in resp.location  # no code for the RP
    with app.app_context():
        from sqlalchemy import select

        from idp.core.storage import AuditEvent, db

        reasons = [e.detail.get("reason") for e in db.session.scalars(select(AuditEvent)) if e.detail]
    assert "no_second_factor" in reasons


def sso_sessions(app) -> int:
    from idp.core.storage import SsoSession, db

    with app.app_context():
        return db.session.query(SsoSession).count()


def test_session_id_changes_at_each_step(app, client, alice, clock):
    tx_path, _, _ = start(client)
    first = client.get_cookie("idp_session").value
    code_path = to_code_page(client, tx_path)
    second = client.get_cookie("idp_session").value
    assert first != second
    post_code(client, code_path, last_code(app))
    assert client.get_cookie("idp_session").value not in (first, second)


def test_login_posts_are_throttled_per_ip(make_app):
    app = make_app({"otp": {"login_per_ip_per_minute": 3}})
    # The window is a clock minute: a fixed clock keeps the five tries in one (no roll-over mid-test).
    minute_start = (int(time.time()) // 60) * 60
    app.extensions["idp.clock"] = lambda: minute_start + 1
    client = app.test_client()
    tx_path, _, _ = start(client)
    codes = [post_password(client, tx_path, "someone", "wrong password!").status_code for _ in range(5)]
    assert codes == [400, 400, 400, 429, 429]
