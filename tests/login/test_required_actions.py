"""Required actions after a login: the login waits until they are done, then goes on to the RP."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.conftest import PASSWORD, authorize_params, query_of
from tests.support.sms_login import (
    csrf,
    emails_to,
    last_code,
    login_with_sms,
    ready,
)


def begin(client):
    params, _ = authorize_params()
    resp = client.get("/authorize", query_string=params)
    return urlsplit(resp.location).path, params


def sso_count(app) -> int:
    from idp.core.storage import SsoSession, db

    with app.app_context():
        return db.session.query(SsoSession).count()


def follow(client, resp):
    while resp.status_code in (302, 303) and "/actions" in urlsplit(resp.location).path:
        resp = client.get(resp.location)
    return resp


def submit(client, path, **data):
    page = client.get(path)
    assert page.status_code == 200, page.get_data(as_text=True)
    return client.post(path, data={"csrf_token": csrf(page.get_data(as_text=True)), **data})


def account_of(app, sub):
    from idp.core.storage import Account, db

    with app.app_context():
        return db.session.query(Account).filter_by(sub=sub).one()


@pytest.mark.parametrize(
    ("changes", "first"),
    [
        ({"must_change_password": True}, "password"),
        ({"email_verified": False}, "email"),
        ({"terms_version": "old"}, "terms"),
    ],
)
def test_login_is_held_until_the_action_is_done(app, client, make_user, changes, first):
    sub = make_user()
    ready(app, sub, **changes)
    tx_path, _params = begin(client)
    resp = login_with_sms(client, app, tx_path)
    assert resp.status_code == 303 and resp.location.endswith(tx_path + "/actions")
    resp = client.get(resp.location)
    assert resp.location.endswith(f"/actions/{first}")
    assert sso_count(app) == 0
    # the authorization cannot go on meanwhile
    again = client.get("/authorize/continue/" + tx_path.rsplit("/", 1)[-1])
    assert again.status_code == 302 and "/login/" in again.location


def test_must_change_password_then_continue_to_the_rp(app, client, make_user):
    sub = make_user()
    ready(app, sub, must_change_password=True)
    tx_path, params = begin(client)
    login_with_sms(client, app, tx_path)
    path = tx_path + "/actions/password"
    bad = submit(client, path, password="password", confirm="password")
    assert bad.status_code == 400 and "too common" in bad.get_data(as_text=True)
    mismatch = submit(client, path, password="a new long passphrase", confirm="another passphrase")
    assert mismatch.status_code == 400
    resp = follow(
        client, submit(client, path, password="a new long passphrase", confirm="a new long passphrase")
    )
    assert resp.status_code == 303 and "/authorize/continue/" in resp.location
    resp = client.get(resp.location)
    assert query_of(resp.location)["state"] == params["state"]
    assert not account_of(app, sub).must_change_password
    assert emails_to(app, "alice@example.com")  # told about the change


def test_missing_email_is_added_and_confirmed_by_link(app, client, make_user):
    sub = make_user(email=None)
    ready(app, sub)
    tx_path, params = begin(client)
    login_with_sms(client, app, tx_path)
    path = tx_path + "/actions/email"
    assert submit(client, path, email="not-an-address", confirm="not-an-address").status_code == 400
    assert submit(client, path, email="a@example.com", confirm="b@example.com").status_code == 400
    resp = submit(client, path, email="alice.new@example.com", confirm="alice.new@example.com")
    assert resp.status_code == 303 and resp.location.endswith("/actions/email/sent")
    # "I have confirmed" before clicking: still waiting
    waiting = submit(client, tx_path + "/actions/email/sent")
    assert "not confirmed yet" in waiting.get_data(as_text=True)
    [mail] = emails_to(app, "alice.new@example.com")
    link = next(w for w in mail["text"].split() if "/account/email/confirm/" in w)
    assert link.startswith("http://localhost/")  # from the issuer
    resp = submit(client, urlsplit(link).path)
    assert resp.status_code == 303
    resp = follow(client, resp)
    assert "/authorize/continue/" in resp.location
    assert query_of(client.get(resp.location).location)["state"] == params["state"]
    account = account_of(app, sub)
    assert account.email == "alice.new@example.com" and account.email_verified


def test_only_the_newest_email_link_works_and_only_once(app, client, make_user):
    sub = make_user(email=None)
    ready(app, sub)
    tx_path, _ = begin(client)
    login_with_sms(client, app, tx_path)
    submit(client, tx_path + "/actions/email", email="x@example.com", confirm="x@example.com")
    submit(client, tx_path + "/actions/email/sent", resend="1")
    first, second = emails_to(app, "x@example.com")
    old = urlsplit(next(w for w in first["text"].split() if "/confirm/" in w)).path
    new = urlsplit(next(w for w in second["text"].split() if "/confirm/" in w)).path
    other = app.test_client()  # opened in another browser
    assert submit(other, old).status_code == 400
    resp = submit(other, new)
    assert resp.status_code == 200 and "is confirmed" in resp.get_data(as_text=True)
    assert submit(other, new).status_code == 400
    # the waiting browser continues
    resp = follow(client, client.get(tx_path + "/actions/email/sent"))
    assert "/authorize/continue/" in resp.location


def test_terms_must_be_accepted(app, client, make_user):
    sub = make_user()
    ready(app, sub, terms_version=None)
    tx_path, _ = begin(client)
    login_with_sms(client, app, tx_path)
    path = tx_path + "/actions/terms"
    assert submit(client, path).status_code == 400
    resp = follow(client, submit(client, path, accept="y"))
    assert "/authorize/continue/" in resp.location
    from idp.login.actions import terms_version

    with app.app_context():
        assert account_of(app, sub).terms_version == terms_version()


def with_authenticator_app(app, sub) -> str:
    """Enrol the authenticator app directly: a second factor for an account without a phone."""
    import pyotp
    from sqlalchemy import select

    from idp.core.storage import Account, db
    from idp.login import totp

    secret = pyotp.random_base32()
    with app.test_request_context():
        account = db.session.scalar(select(Account).where(Account.sub == sub))
        account.totp_secret = totp.seal(secret)
        db.session.commit()
    return secret


def login_with_app(client, tx_path, secret):
    """Password, then the authenticator app's code (two factors); the response to the code POST."""
    import pyotp

    from tests.support.sms_login import post_code, post_password

    resp = post_password(client, tx_path, "alice", PASSWORD)
    assert resp.status_code == 303 and resp.location.endswith("/app"), resp.location
    return post_code(client, tx_path + "/app", pyotp.TOTP(secret).now())


def test_several_actions_in_order(app, client, make_user):
    sub = make_user(email=None, phone=None)
    ready(app, sub, must_change_password=True, terms_version=None)
    secret = with_authenticator_app(app, sub)
    tx_path, _ = begin(client)
    resp = login_with_app(client, tx_path, secret)
    assert client.get(resp.location).location.endswith("/actions/password")
    from idp.login import actions

    with app.app_context():
        assert actions.required(account_of(app, sub)) == ["password", "email", "phone", "terms"]


def test_new_mobile_number_in_the_actions_is_bound_to_the_code(app, client, make_user):
    """After two factors (password + authenticator app) the missing number is added and confirmed."""
    sub = make_user(phone=None)
    ready(app, sub)
    secret = with_authenticator_app(app, sub)
    tx_path, _ = begin(client)
    login_with_app(client, tx_path, secret)
    assert submit(client, tx_path + "/actions/phone", phone="+33 6 12 34 56 78").status_code == 400
    assert submit(client, tx_path + "/actions/phone", phone="02 555 12 34").status_code == 400
    submit(client, tx_path + "/actions/phone", phone="0470 11 11 11")
    code = last_code(app, "+32470111111")
    resp = submit(client, tx_path + "/actions/phone/code", code=code)
    assert resp.status_code == 303
    account = account_of(app, sub)
    assert account.phone == "+32470111111" and account.phone_verified


def test_login_without_relying_party_goes_to_the_account_after_the_actions(app, client, make_user):
    sub = make_user()
    ready(app, sub, terms_version=None)
    resp = login_with_sms(client, app, "/login/-")
    resp = follow(client, submit(client, "/login/-/actions/terms", accept="y"))
    assert resp.location.endswith("/account/")
    assert client.get("/account/").status_code == 200
