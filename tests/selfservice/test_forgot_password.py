"""Forgotten password: a single-use link by e-mail, a new password, no automatic login, SMS still asked."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from idp.core.storage import Account, AuditEvent, SsoSession, db
from idp.selfservice.recovery import PasswordReset
from tests.conftest import PASSWORD, authorize_params
from tests.support.account_flows import (
    FAST,
    all_emails,
    csrf,
    emails_to,
    last_code,
    link_in,
    path_of,
    submit,
)
from tests.support.clock import clock_fixture  # noqa: F401 (the "clock" fixture)
from tests.support.sms_login import alice_fixture, login_with_sms  # noqa: F401 (the "alice" fixture)

NEW_PASSWORD = "seven quiet lanterns over the bay"
ADDRESS = "alice@example.com"


@pytest.fixture
def app(make_app):
    return make_app(FAST)


def ask(client, username="alice", **headers):
    page = client.get("/recover/password", headers=headers)
    return client.post(
        "/recover/password",
        data={"csrf_token": csrf(page.get_data(as_text=True)), "username": username},
        headers=headers,
    )


def reset_to(client, link, password=NEW_PASSWORD):
    resp = client.get(path_of(link))
    assert resp.status_code == 303 and resp.location.endswith("/recover/password/new"), resp.status_code
    return submit(client, "/recover/password/new", {"password": password, "password_repeat": password})


def logged_in(client) -> bool:
    return client.get("/account/").status_code == 200


def log_in(app, client, clock, password=PASSWORD):
    params, _ = authorize_params()
    resp = client.get("/authorize", query_string=params)
    clock.t += 61
    return login_with_sms(client, app, resp.location, password=password)


def test_reset_sets_the_password_without_logging_in_and_the_sms_code_is_still_asked(
    app, client, alice, clock
):
    other = app.test_client()  # the same person, logged in on another device
    assert log_in(app, other, clock).status_code == 303 and logged_in(other)

    resp = ask(client)
    assert resp.status_code == 303 and resp.location.endswith("/recover/password/sent")
    [mail] = emails_to(app, ADDRESS)
    link = link_in(mail)
    assert link.startswith("http://localhost/recover/password/reset/")
    resp = reset_to(client, link)
    assert resp.status_code == 303 and resp.location.endswith("/recover/password/done")
    assert "/login/-/password" in client.get(resp.location).get_data(as_text=True)

    assert not logged_in(client)  # no automatic login
    assert not logged_in(other)  # every other session ended
    with app.app_context():
        assert db.session.scalars(select(SsoSession).where(SsoSession.ended_at.is_(None))).all() == []
        events = {e.event for e in db.session.scalars(select(AuditEvent))}
    assert {"password_reset_requested", "password_reset_completed"} <= events
    notice = emails_to(app, ADDRESS)[-1]
    assert "was changed" in notice["subject"]

    # The normal login: the old password is refused, the new one leads to the SMS code.
    params, _ = authorize_params()
    tx_path = path_of(client.get("/authorize", query_string=params).location)
    assert (
        submit(client, tx_path + "/password", {"username": "alice", "password": PASSWORD}).status_code == 400
    )
    resp = submit(client, tx_path + "/password", {"username": "alice", "password": NEW_PASSWORD})
    assert resp.status_code == 303 and resp.location.endswith("/code")
    assert not logged_in(client)
    clock.t += 61
    resp = submit(client, path_of(resp.location), {"code": last_code(app)})
    assert resp.status_code == 303 and logged_in(client)


def test_unknown_username_gets_the_same_answer_and_no_mail(app, alice, clock):
    known, unknown = app.test_client(), app.test_client()
    a, b = ask(known, "alice"), ask(unknown, "nobody-here")
    assert (a.status_code, a.location) == (b.status_code, b.location)
    pa, pb = known.get(a.location), unknown.get(b.location)
    assert pa.status_code == pb.status_code == 200
    strip = lambda r: r.get_data(as_text=True).replace(csrf(r.get_data(as_text=True)), "")  # noqa: E731
    assert strip(pa) == strip(pb)
    assert [m["to"] for m in all_emails(app)] == [ADDRESS]


def test_answers_take_the_same_minimum_time_whether_or_not_the_user_exists(make_app, make_user):
    app = make_app({"registration": {"recovery": {"response_time_floor_ms": 300}}})
    make_user()
    durations = {}
    for username in ("alice", "nobody-here", "alice", "nobody-here"):
        client = app.test_client()
        page = client.get("/recover/password")
        started = time.monotonic()
        resp = client.post(
            "/recover/password", data={"csrf_token": csrf(page.get_data(as_text=True)), "username": username}
        )
        durations.setdefault(username, []).append(time.monotonic() - started)
        assert resp.status_code == 303
    for values in durations.values():
        assert all(0.3 <= d < 0.6 for d in values), durations
    assert abs(min(durations["alice"]) - min(durations["nobody-here"])) < 0.15


def test_link_is_from_the_issuer_never_the_host_header(app, client, alice, clock):
    assert ask(client, Host="evil.example").status_code == 303
    assert link_in(emails_to(app, ADDRESS)[-1]).startswith("http://localhost/")


def test_token_is_stored_hashed_and_works_once(app, client, alice, clock):
    ask(client)
    link = link_in(emails_to(app, ADDRESS)[-1])
    token = link.rsplit("/", 1)[1]
    with app.app_context():
        [row] = db.session.scalars(select(PasswordReset)).all()
        assert token not in row.token_hash and len(row.token_hash) == 64
    assert reset_to(client, link).status_code == 303
    assert client.get(path_of(link)).status_code == 404
    assert client.get("/recover/password/new").status_code == 404


def test_link_expires_after_30_minutes(app, client, alice, clock):
    ask(client)
    link = link_in(emails_to(app, ADDRESS)[-1])
    clock.t += 1801
    assert client.get(path_of(link)).status_code == 404


def test_a_page_opened_before_expiry_cannot_be_used_after_it(app, client, alice, clock):
    ask(client)
    link = link_in(emails_to(app, ADDRESS)[-1])
    client.get(path_of(link))
    page = client.get("/recover/password/new")
    clock.t += 1801
    resp = client.post(
        "/recover/password/new",
        data={
            "csrf_token": csrf(page.get_data(as_text=True)),
            "password": NEW_PASSWORD,
            "password_repeat": NEW_PASSWORD,
        },
    )
    assert resp.status_code == 404
    with app.app_context():
        account = db.session.scalar(select(Account))
        assert app.extensions["idp.passwords"].verify(account.password_hash, PASSWORD)


def test_a_new_request_keeps_the_older_link_until_one_is_used(app, client, alice, clock):
    """The last mail may be slow or lost: an earlier link keeps working; using one ends the others."""
    ask(client)
    first = link_in(emails_to(app, ADDRESS)[-1])
    ask(client)
    second = link_in(emails_to(app, ADDRESS)[-1])
    assert reset_to(client, first).status_code == 303
    assert client.get(path_of(second)).status_code == 404


@pytest.mark.parametrize(
    ("password", "repeat", "message"),
    [
        ("short", "short", "at least 8 characters"),
        ("password123", "password123", "too common"),
        ("alice in wonderland", "alice in wonderland", "your username"),
        (NEW_PASSWORD, NEW_PASSWORD + "x", "not the same"),
    ],
)
def test_new_password_follows_the_policy(app, client, alice, clock, password, repeat, message):
    ask(client)
    client.get(path_of(link_in(emails_to(app, ADDRESS)[-1])))
    resp = submit(client, "/recover/password/new", {"password": password, "password_repeat": repeat})
    assert resp.status_code == 400 and message in resp.get_data(as_text=True)


def test_reset_mails_per_account_are_limited(app, client, alice, clock):
    for _ in range(7):
        assert ask(client).status_code == 303
    assert len(emails_to(app, ADDRESS)) == 5


def test_new_password_page_uses_new_password_autocomplete(app, client, alice, clock):
    ask(client)
    client.get(path_of(link_in(emails_to(app, ADDRESS)[-1])))
    html = client.get("/recover/password/new").get_data(as_text=True)
    assert html.count('autocomplete="new-password"') == 2
    assert "js/password_policy.js" in html
