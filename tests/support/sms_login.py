"""Helpers for tests of the two-step login: codes from the outbox, a user ready to log in."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from idp.services.outbox import Outbox

CODE = re.compile(r"\b(\d{6})\b")


def deliver(app) -> int:
    """Be the outbound worker for one pass (the tests' apps run none of their own)."""
    from idp.services import queue

    with app.app_context():
        return queue.work(app)


def outbox(app) -> Outbox:
    """The development outbox, once what was queued has been sent."""
    deliver(app)
    return Outbox(app.extensions["idp.settings"].sms.outbox)


def sms_to(app, number: str = "+32470123456") -> list[str]:
    return [m["text"] for m in outbox(app).read() if m["channel"] == "sms" and m["to"] == number]


def last_code(app, number: str = "+32470123456") -> str:
    texts = sms_to(app, number)
    assert texts, f"no SMS to {number}"
    return CODE.search(texts[-1]).group(1)


def emails_to(app, address: str) -> list[dict]:
    return [m for m in outbox(app).read() if m["channel"] == "email" and m["to"] == address]


def ready(app, sub: str, **changes) -> None:
    """Mark the user as having accepted the current terms (so no required action waits)."""
    from sqlalchemy import select

    from idp.core.storage import Account, db
    from idp.login.actions import terms_version

    with app.test_request_context():
        account = db.session.scalar(select(Account).where(Account.sub == sub))
        account.terms_version = terms_version()
        for k, v in changes.items():
            setattr(account, k, v)
        db.session.commit()


def csrf(html: str) -> str:
    m = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', html
    )
    assert m, "no CSRF token on the page"
    return m.group(1)


def post_password(client, tx_path: str, username: str, password: str):
    page = client.get(tx_path + "/password")
    assert page.status_code == 200, page.data
    return client.post(
        tx_path + "/password",
        data={"csrf_token": csrf(page.get_data(as_text=True)), "username": username, "password": password},
    )


def post_code(client, code_path: str, code: str):
    page = client.get(code_path)
    assert page.status_code == 200, page.data
    return client.post(code_path, data={"csrf_token": csrf(page.get_data(as_text=True)), "code": code})


def login_with_sms(client, app, location: str, username="alice", password=None, number="+32470123456"):
    """Password, then the SMS code from the outbox; returns the response to the code POST."""
    from tests.conftest import PASSWORD

    tx_path = urlsplit(location).path
    resp = post_password(client, tx_path, username, password or PASSWORD)
    assert resp.status_code == 303, resp.get_data(as_text=True)
    assert resp.location.endswith("/code"), resp.location
    return post_code(client, urlsplit(resp.location).path, last_code(app, number))


def login_at_provider(client, app, username="alice", password=None, number="+32470123456"):
    """A full login (password + SMS code) from the account pages, without a relying party."""
    resp = login_with_sms(client, app, "/login/-", username, password, number)
    assert resp.status_code == 303, resp.get_data(as_text=True)
    return resp


@pytest.fixture(name="alice")
def alice_fixture(app, make_user) -> str:
    """``alice``: ``make_user``'s user (password + verified mobile) with the terms accepted, ready to log in.
    Import ``alice_fixture`` into a test module."""
    sub = make_user()
    ready(app, sub)
    return sub
