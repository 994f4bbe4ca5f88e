"""No user enumeration on the password login: unknown user, wrong password and a disabled
account get the same status, the same page and a similar cost (NIST SP 800-63B, ASVS V2.2)."""

from __future__ import annotations

import re
import statistics
import time
from urllib.parse import urlsplit

import pytest

from tests.conftest import authorize_params
from tests.support.sms_login import (
    csrf,
    ready,
    sms_to,
)


@pytest.fixture
def users(app, make_user):
    ready(app, make_user("alice"))
    ready(app, make_user("carol", phone="+32470000002"))
    from idp.accounts.users import disable_account, find_by_username

    with app.test_request_context():
        disable_account(find_by_username("carol"))


def attempt(app, username: str, password: str):
    client = app.test_client()
    params, _ = authorize_params()
    tx_path = urlsplit(client.get("/authorize", query_string=params).location).path
    page = client.get(tx_path + "/password").get_data(as_text=True)
    started = time.perf_counter()
    resp = client.post(
        tx_path + "/password", data={"csrf_token": csrf(page), "username": username, "password": password}
    )
    return resp, time.perf_counter() - started, tx_path


def normalised(resp, username: str, tx_path: str) -> str:
    html = resp.get_data(as_text=True)
    html = re.sub(r'name="csrf_token"[^>]*value="[^"]+"', "CSRF", html)
    # The page's links carry the login transaction (?tx=...), which differs per attempt.
    return html.replace(username, "USERNAME").replace(tx_path, "TX").replace(tx_path.rsplit("/", 1)[1], "TX")


def test_unknown_user_wrong_password_and_disabled_account_look_the_same(app, users):
    answers = {}
    for username in ("alice", "nobody", "carol"):
        resp, _t, tx_path = attempt(app, username, "not the password")
        answers[username] = (
            resp.status_code,
            normalised(resp, username, tx_path),
            resp.headers.get("Location"),
        )
    assert answers["alice"] == answers["nobody"] == answers["carol"]
    assert answers["alice"][0] == 400
    assert sms_to(app) == [] and sms_to(app, "+32470000002") == []


def test_unknown_user_costs_as_much_as_a_wrong_password(app, users):
    known, unknown = [], []
    for i in range(6):
        known.append(attempt(app, "alice", f"wrong password {i}")[1])
        unknown.append(attempt(app, f"nobody{i}", f"wrong password {i}")[1])
    ratio = statistics.median(unknown) / statistics.median(known)
    assert 0.5 < ratio < 2.0, (known, unknown)


def test_lockout_looks_the_same_for_unknown_users(app, users):
    pages = {}
    for username in ("alice", "nobody"):
        for _ in range(10):
            resp, _t, tx_path = attempt(app, username, "not the password")
        pages[username] = (resp.status_code, normalised(resp, username, tx_path))
    assert pages["alice"] == pages["nobody"]
    assert pages["alice"][0] == 429
