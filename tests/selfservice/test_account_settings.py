"""Account settings at the provider: password, username, mobile number, e-mail, sessions."""

from __future__ import annotations

import contextlib
import re
from urllib.parse import urlsplit

import pytest

from tests.conftest import PASSWORD
from tests.support.sms_login import (
    alice_fixture,  # noqa: F401 (the "alice" fixture)
    csrf,
    emails_to,
    last_code,
    login_at_provider,
    sms_to,
)

NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture
def logged_in(app, client, alice):
    login_at_provider(client, app)
    return client


def submit(client, path, **data):
    page = client.get(path)
    assert page.status_code == 200, page.get_data(as_text=True)
    return client.post(path, data={"csrf_token": csrf(page.get_data(as_text=True)), **data})


def account(app):
    from idp.core.storage import Account, db

    with app.app_context():
        return (
            db.session.query(Account).filter_by(email_verified=True).first()
            or db.session.query(Account).one()
        )


def events(app) -> list[str]:
    from idp.core.storage import AuditEvent, db

    with app.app_context():
        return [e.event for e in db.session.query(AuditEvent).order_by(AuditEvent.id)]


def age_login(app, seconds=3600):
    from idp.core.storage import SsoSession, db

    with app.app_context():
        for row in db.session.query(SsoSession):
            row.auth_time -= seconds
        db.session.commit()


def test_pages_need_a_login(client):
    resp = client.get("/account/password")
    assert resp.status_code == 302 and resp.location.endswith("/login/-")


@pytest.mark.parametrize(
    "path", ["/account/password", "/account/username", "/account/phone", "/account/email", "/account/app"]
)
def test_changes_need_a_recent_full_login_and_come_back_after_it(app, logged_in, path):
    age_login(app)
    resp = logged_in.get(path)
    assert resp.status_code == 302 and resp.location.endswith("/login/-")
    assert "log in again" in logged_in.get(resp.location).get_data(as_text=True)
    resp = login_at_provider(logged_in, app)
    assert resp.location.endswith(path)
    assert logged_in.get(path).status_code == 200


@pytest.mark.parametrize(
    ("current", "new", "confirm", "message"),
    [
        ("wrong password!", NEW_PASSWORD, NEW_PASSWORD, "current password is not correct"),
        (PASSWORD, "short", "short", "at least 8 characters"),
        (PASSWORD, "password1", "password1", "too common"),
        (PASSWORD, "alice-is-my-name", "alice-is-my-name", "your username"),
        (PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "x", "not the same"),
    ],
)
def test_password_change_refuses_bad_input(app, logged_in, current, new, confirm, message):
    resp = submit(logged_in, "/account/password", current=current, password=new, confirm=confirm)
    assert resp.status_code == 400 and message in resp.get_data(as_text=True)


def test_password_change_ends_other_sessions_and_tells_the_user(app, logged_in):
    other = app.test_client()
    login_at_provider(other, app)
    resp = submit(
        logged_in,
        "/account/password",
        current=PASSWORD,
        password=NEW_PASSWORD,
        confirm=NEW_PASSWORD,
        end_others="y",
    )
    assert resp.status_code == 303
    assert "other sessions were ended" in logged_in.get("/account/").get_data(as_text=True)
    assert other.get("/account/").status_code == 302  # logged out there
    assert any("password" in m["subject"].lower() for m in emails_to(app, "alice@example.com"))
    assert "password_changed" in events(app)
    from idp.core.storage import Account, db

    with app.app_context():
        acc = db.session.query(Account).one()
        assert app.extensions["idp.passwords"].verify(acc.password_hash, NEW_PASSWORD)


def test_username_change_is_unique_without_regard_to_case(app, logged_in, make_user):
    make_user("Bob", phone="+32470000001")
    assert submit(logged_in, "/account/username", username="bob").status_code == 400
    assert submit(logged_in, "/account/username", username="has space").status_code == 400
    resp = submit(logged_in, "/account/username", username="Alice.M")
    assert resp.status_code == 303
    from idp.accounts.users import find_by_username

    with app.app_context():
        assert find_by_username("alice.m").username == "Alice.M"
    assert "username_changed" in events(app)


def test_mobile_change_confirms_the_new_number_and_tells_the_old_one(app, logged_in):
    resp = submit(logged_in, "/account/phone", phone="0470 55 66 77")
    assert resp.status_code == 303 and resp.location.endswith("/account/phone/code")
    assert account(app).phone == "+32470123456"  # not before the code
    wrong = submit(
        logged_in,
        "/account/phone/code",
        code="000000" if last_code(app, "+32470556677") != "000000" else "111111",
    )
    assert wrong.status_code == 400
    resp = submit(logged_in, "/account/phone/code", code=last_code(app, "+32470556677"))
    assert resp.status_code == 303
    acc = account(app)
    assert acc.phone == "+32470556677" and acc.phone_verified
    assert "changed" in sms_to(app, "+32470123456")[-1]  # notice to the old number
    assert any("mobile number" in m["subject"].lower() for m in emails_to(app, "alice@example.com"))
    assert "phone_changed" in events(app)


@pytest.mark.parametrize("number", ["+33 6 12 34 56 78", "02 555 12 34", "12"])
def test_mobile_change_refuses_bad_numbers(app, logged_in, number):
    assert submit(logged_in, "/account/phone", phone=number).status_code == 400


def test_email_change_by_link_to_the_new_address_and_notice_to_the_old(app, logged_in):
    resp = submit(logged_in, "/account/email", email="alice@new.example", confirm="alice@new.example")
    assert resp.status_code == 303
    assert account(app).email == "alice@example.com"
    [mail] = emails_to(app, "alice@new.example")
    link = urlsplit(next(w for w in mail["text"].split() if "/confirm/" in w)).path
    resp = submit(logged_in, link)
    assert resp.status_code == 200
    acc = account(app)
    assert acc.email == "alice@new.example" and acc.email_verified
    assert any("e-mail" in m["subject"].lower() for m in emails_to(app, "alice@example.com"))
    assert "email_changed" in events(app)


def test_email_link_opened_by_a_scanner_changes_nothing(app, logged_in):
    submit(logged_in, "/account/email", email="alice@new.example", confirm="alice@new.example")
    [mail] = emails_to(app, "alice@new.example")
    link = urlsplit(next(w for w in mail["text"].split() if "/confirm/" in w)).path
    assert app.test_client().get(link).status_code == 200
    assert account(app).email == "alice@example.com"


def test_end_my_other_sessions(app, logged_in):
    other = app.test_client()
    login_at_provider(other, app)
    home = logged_in.get("/account/").get_data(as_text=True)
    assert "End my other sessions" in home
    resp = logged_in.post("/account/sessions/end-others", data={"csrf_token": csrf(home)})
    assert resp.status_code == 303
    assert other.get("/account/").status_code == 302
    assert logged_in.get("/account/").status_code == 200


def test_forms_need_the_csrf_token(app, logged_in):
    resp = logged_in.post("/account/username", data={"username": "mallory"})
    assert resp.status_code == 400
    from idp.accounts.users import find_by_username

    with app.app_context():
        assert find_by_username("mallory") is None


# ---------------------------------------------------------------------------
# Support CLI: "tell us by phone or by post"
# ---------------------------------------------------------------------------


def cli(app, *args):
    from flask.cli import ScriptInfo

    from idp.cli import main

    return app.test_cli_runner().invoke(main, list(args), obj=ScriptInfo(create_app=lambda: app))


def test_cli_set_phone_verifies_and_tells_the_old_number(app, alice):
    result = cli(app, "users", "set-phone", "alice", "0470 99 00 11")
    assert result.exit_code == 0, result.output
    assert "+32 ******011" in result.output
    acc = account(app)
    assert acc.phone == "+32470990011" and acc.phone_verified
    assert sms_to(app, "+32470123456")  # the notice
    assert cli(app, "users", "set-phone", "alice", "+33 6 12 34 56 78").exit_code == 1
    assert cli(app, "users", "set-phone", "nobody", "0470 99 00 11").exit_code == 1


def test_cli_set_email_sends_a_link_or_sets_it_verified(app, alice):
    result = cli(app, "users", "set-email", "alice", "alice@post.example")
    assert result.exit_code == 0, result.output
    [mail] = emails_to(app, "alice@post.example")
    assert "http://localhost/account/email/confirm/" in mail["text"]
    assert account(app).email == "alice@example.com"
    result = cli(app, "users", "set-email", "alice", "alice@phone.example", "--verified")
    assert result.exit_code == 0, result.output
    acc = account(app)
    assert acc.email == "alice@phone.example" and acc.email_verified
    assert emails_to(app, "alice@example.com")  # the old address is told
    assert cli(app, "users", "set-email", "alice", "not an address").exit_code == 1


def test_cli_unlock_clears_the_lockouts(app, client, alice):
    from idp.login import otp

    with app.test_request_context():
        for _ in range(5):
            with contextlib.suppress(otp.OtpError):
                otp.check_code(purpose="login", binding="b", code="000000", account_id=account(app).id)
    shown = cli(app, "users", "show", "alice")
    assert re.search(r'"codes": (5\d|60)', shown.output)
    result = cli(app, "users", "unlock", "alice")
    assert result.exit_code == 0 and "1 counter(s) cleared" in result.output
    assert '"codes": 0' in cli(app, "users", "show", "alice").output
    assert "unlocked" in events(app)
