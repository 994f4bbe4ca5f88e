"""Logout reaches every RP of the browser's session, even after a re-login.

A re-authentication on the same browser (``prompt=login``, ``max_age``, a step-up)
keeps the session's ``sid``: only ``auth_time`` (and the level) change. Logout
then names, to each RP, the ``sid`` of the ID token it holds, and revokes every
grant of that browser session except ``offline_access`` ones.
"""

from __future__ import annotations

import time

import pytest

from tests.conftest import authorize_params, exchange
from tests.oidc.test_backchannel_logout import Receiver, provider_with_backchannel
from tests.support.oidc import (
    APP_REDIRECT,
    basic,
    decode,
    get_code,
    refresh,
    userinfo,
)


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def login(client, client_id="portal", redirect_uri="https://portal.example.com/callback", **extra):
    params, verifier = authorize_params(client_id=client_id, redirect_uri=redirect_uri, **extra)
    code = get_code(client, params)["code"]
    if client_id == "portal":
        resp = exchange(client, code, verifier)
    else:
        resp = exchange(client, code, verifier, client_id=client_id, redirect_uri=redirect_uri, auth=None)
    assert resp.status_code == 200, resp.json
    return resp.json


@pytest.mark.parametrize("relogin", [{"prompt": "login"}, {"max_age": "0"}])
def test_portal_grant_ends_and_its_sid_is_named_after_an_app_relogin(
    make_app, make_user, tmp_path, receiver, relogin
):
    make_user()
    app = provider_with_backchannel(make_app, tmp_path, receiver)
    browser = app.test_client()
    portal = login(browser, scope="openid email")  # through the login pages
    time.sleep(1)  # so that the re-login's auth_time is later
    mobile = login(browser, client_id="app", redirect_uri=APP_REDIRECT, scope="openid email", **relogin)
    _, portal_id = decode(browser, portal["id_token"])
    _, app_id = decode(browser, mobile["id_token"])
    assert app_id["auth_time"] > portal_id["auth_time"]  # a fresh authentication...
    assert app_id["sid"] == portal_id["sid"]  # ...in the same browser session

    resp = browser.get("/logout", query_string={"id_token_hint": mobile["id_token"]})
    assert resp.status_code == 200  # the app's hint is for the current session: no question

    [token] = receiver.tokens_for("/portal/bcl")
    assert decode(browser, token)[1]["sid"] == portal_id["sid"]
    assert userinfo(browser, portal["access_token"]).status_code == 401
    assert refresh(browser, portal["refresh_token"], auth=basic()).json["error"] == "invalid_grant"
    assert userinfo(browser, mobile["access_token"]).status_code == 401


def test_offline_access_outlives_the_session_even_after_a_relogin(make_app, make_user, tmp_path, receiver):
    make_user()
    app = provider_with_backchannel(make_app, tmp_path, receiver)
    browser = app.test_client()
    offline = login(browser, scope="openid email offline_access")
    mobile = login(browser, client_id="app", redirect_uri=APP_REDIRECT, scope="openid", prompt="login")
    browser.get("/logout", query_string={"id_token_hint": mobile["id_token"]})
    assert refresh(browser, offline["refresh_token"], auth=basic()).status_code == 200


def test_another_person_logging_in_ends_the_first_ones_session(make_app, make_user, tmp_path, receiver):
    make_user()
    make_user("bob", email="bob@example.com")
    app = provider_with_backchannel(make_app, tmp_path, receiver)
    browser = app.test_client()
    alice = login(browser, scope="openid")
    params, _ = authorize_params(prompt="login", scope="openid")
    get_code(browser, params, username="bob")
    [token] = receiver.tokens_for("/portal/bcl")
    assert decode(browser, token)[1]["sid"] == decode(browser, alice["id_token"])[1]["sid"]
    assert userinfo(browser, alice["access_token"]).status_code == 401
