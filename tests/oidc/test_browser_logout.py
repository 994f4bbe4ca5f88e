"""End to end in Chromium: RP-Initiated Logout asks before a logout nobody proved, ignores
cross-site requests, and reaches every RP of the browser session after a re-login.

The portal and the app are real redirect targets (``tests/support/local_rp.py``);
the pages speak French (the browser's locale is fr-BE).
"""

from __future__ import annotations

import time
from urllib.parse import urlencode

import pytest
import requests

from tests.oidc.test_browser_sso import log_in_with_password_and_sms, portal_login
from tests.support.local_rp import APP_CALLBACK, PORTAL_BCL, PORTAL_LOGGED_OUT, LocalRP, rp_clients

pytestmark = pytest.mark.browser

CONFIRM_TITLE = "Se déconnecter de MyOnlineServices"


@pytest.fixture
def rp():
    with LocalRP() as local:
        yield local


@pytest.fixture
def server(live_server, rp):
    from tests.conftest import PASSWORD, ready

    server = live_server({"clients": rp_clients(rp)})
    with server.app.app_context():
        from idp.accounts.users import create_local_account

        sub = create_local_account(
            "alice", password=PASSWORD, email="alice@example.com", phone="+32470123456", given_name="Alice"
        ).sub
    ready(server.app, sub)
    server.sub = sub
    return server


def still_logged_in(page, server, rp) -> bool:
    """The app's authorization comes straight back with a code (no login page) when logged in."""
    url, _kept = rp.authorization(server.url, "app", rp.url + APP_CALLBACK, prompt="none")
    page.goto(url)
    page.wait_for_url(rp.url + APP_CALLBACK + "?*")
    return "code" in rp.last(APP_CALLBACK)


def test_logout_without_a_hint_shows_the_confirmation(server, rp, page):
    portal_login(page, server, rp)
    query = {"client_id": "portal", "post_logout_redirect_uri": rp.url + PORTAL_LOGGED_OUT, "state": "s1"}
    page.goto(f"{server.url}/logout?{urlencode(query)}")
    assert CONFIRM_TITLE in page.locator("h1").inner_text()
    assert still_logged_in(page, server, rp)  # showing the question ended nothing

    page.goto(f"{server.url}/logout?{urlencode(query)}")
    page.click("button[value=logout]")
    page.wait_for_url(rp.url + PORTAL_LOGGED_OUT + "?*")
    assert rp.last(PORTAL_LOGGED_OUT) == {"state": "s1"}
    assert not still_logged_in(page, server, rp)
    assert not [e for e in page.csp_errors if "Content Security Policy" in e]


def test_a_cross_site_form_post_to_logout_leaves_the_session_alive(server, rp, page):
    portal_login(page, server, rp)
    attacker = "http://attacker.example/"
    html = (
        f'<!doctype html><form id=f method=post action="{server.url}/logout">'
        "<input name=client_id value=portal></form>"
        "<script>document.getElementById('f').submit()</script>"
    )
    page.route(attacker, lambda route: route.fulfill(status=200, content_type="text/html", body=html))
    page.goto(attacker)
    page.wait_for_url(server.url + "/logout")
    page.wait_for_load_state()
    assert still_logged_in(page, server, rp)


def test_logout_from_the_app_after_its_prompt_login_ends_the_portals_grant(server, rp, page):
    portal_tokens, portal = portal_login(page, server, rp)
    time.sleep(1)  # the re-login's auth_time is later
    redirect_uri = rp.url + APP_CALLBACK
    url, kept = rp.authorization(server.url, "app", redirect_uri, prompt="login")
    page.goto(url)
    page.wait_for_url("**/login/**")
    log_in_with_password_and_sms(page, server)
    page.wait_for_url(redirect_uri + "?*")
    app_tokens = rp.redeem(server.url, kept, rp.callback(server.url, APP_CALLBACK, kept))
    app = rp.verify(server.url, app_tokens["id_token"], kept)
    assert app["auth_time"] > portal["auth_time"]
    assert (
        requests.get(
            server.url + "/userinfo",
            headers={"Authorization": "Bearer " + portal_tokens["access_token"]},
            timeout=10,
        ).status_code
        == 200
    )

    # The app's "log out": its ID token is for the current session, so no question.
    page.goto(f"{server.url}/logout?{urlencode({'id_token_hint': app_tokens['id_token']})}")
    assert CONFIRM_TITLE not in page.content()

    resp = requests.get(
        server.url + "/userinfo",
        headers={"Authorization": "Bearer " + portal_tokens["access_token"]},
        timeout=10,
    )
    assert resp.status_code == 401
    [token] = rp.logout_tokens(PORTAL_BCL)
    assert rp.verify(server.url, token)["sid"] == portal["sid"]
