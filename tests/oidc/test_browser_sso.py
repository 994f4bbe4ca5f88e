"""End to end in Chromium: one login at the portal is a login at the app, and one logout ends both.

The portal and the app are real redirect targets (``tests/support/local_rp.py``,
an HTTP server on a free port); they redeem their codes at the live provider
with ``requests`` and PKCE, as real relying parties do. Registration and the
recovery flows in the browser are in ``test_browser_account_flows.py``.
"""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from tests.conftest import PASSWORD, PORTAL_SECRET, ready
from tests.support.local_rp import (
    APP_BCL,
    APP_CALLBACK,
    PORTAL_BCL,
    PORTAL_CALLBACK,
    PORTAL_LOGGED_OUT,
    LocalRP,
    rp_clients,
)
from tests.support.sms_login import last_code

pytestmark = pytest.mark.browser

MOBILE = "+32470123456"
BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"


@pytest.fixture
def rp():
    with LocalRP() as local:
        yield local


@pytest.fixture
def server(live_server, rp):
    server = live_server({"clients": rp_clients(rp)})
    with server.app.app_context():
        from idp.accounts.users import create_local_account

        sub = create_local_account(
            "alice", password=PASSWORD, email="alice@example.com", phone=MOBILE, given_name="Alice"
        ).sub
    ready(server.app, sub)
    server.sub = sub
    return server


def navigations(page) -> list[str]:
    """Every URL the tab is sent to from now on, redirect hops included."""
    urls: list[str] = []
    page.on("request", lambda req: urls.append(req.url) if req.is_navigation_request() else None)
    return urls


def log_in_with_password_and_sms(page, server) -> None:
    page.click("a[href$='/password']")
    page.fill("#username", "alice")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit].primary")
    page.wait_for_url("**/code")
    page.fill("input[name=code]", last_code(server.app, MOBILE))
    page.click("button[type=submit].primary")


def portal_login(page, server, rp) -> tuple[dict, dict]:
    """The person logs in at the portal with password + SMS code; (portal tokens, ID token claims)."""
    url, kept = rp.authorization(server.url, "portal", rp.url + PORTAL_CALLBACK)
    page.goto(url)
    page.wait_for_url("**/login/**")
    log_in_with_password_and_sms(page, server)
    page.wait_for_url(rp.url + PORTAL_CALLBACK + "?*")
    tokens = rp.redeem(server.url, kept, rp.callback(server.url, PORTAL_CALLBACK, kept), PORTAL_SECRET)
    return tokens, rp.verify(server.url, tokens["id_token"], kept)


def app_authorization(page, server, rp) -> tuple[dict, list[str]]:
    """The app's authorization in the same browser; (kept request data, the tab's navigations)."""
    redirect_uri = rp.url + APP_CALLBACK  # loopback: any port for the public native client
    url, kept = rp.authorization(server.url, "app", redirect_uri)
    seen = navigations(page)
    page.goto(url)
    return kept, seen


def test_login_at_the_portal_then_the_app_gets_a_code_without_a_new_login(server, rp, page):
    _portal_tokens, portal = portal_login(page, server, rp)
    assert portal["sub"] == server.sub and "sid" in portal

    kept, seen = app_authorization(page, server, rp)
    page.wait_for_url(rp.url + APP_CALLBACK + "?*")
    assert not [u for u in seen if "/login/" in u], seen  # no login page, straight back with a code
    assert len(seen) == 2, seen  # the authorization request and its redirect to the app

    tokens = rp.redeem(server.url, kept, rp.callback(server.url, APP_CALLBACK, kept))
    app = rp.verify(server.url, tokens["id_token"], kept)
    assert app["sub"] == portal["sub"] == server.sub  # the same identifier for the portal and the app
    assert app["sid"] == portal["sid"] and app["auth_time"] == portal["auth_time"]
    assert app["acr"] == portal["acr"] and app["amr"] == portal["amr"]
    assert not [e for e in page.csp_errors if "Content Security Policy" in e]


def test_logout_at_the_provider_ends_the_session_for_the_portal_and_the_app(server, rp, page):
    portal_tokens, portal = portal_login(page, server, rp)
    kept, _seen = app_authorization(page, server, rp)
    page.wait_for_url(rp.url + APP_CALLBACK + "?*")
    app_tokens = rp.redeem(server.url, kept, rp.callback(server.url, APP_CALLBACK, kept))

    # The portal's "log out" button: RP-initiated logout at the provider, in the browser.
    logout = {
        "id_token_hint": portal_tokens["id_token"],
        "post_logout_redirect_uri": rp.url + PORTAL_LOGGED_OUT,
        "client_id": "portal",
        "state": "bye",
    }
    page.goto(f"{server.url}/logout?{urlencode(logout)}")
    page.wait_for_url(rp.url + PORTAL_LOGGED_OUT + "?*")
    assert rp.last(PORTAL_LOGGED_OUT) == {"state": "bye"}

    # Both relying parties were told over the back channel, each with a logout token for this session.
    for path, client_id in ((PORTAL_BCL, "portal"), (APP_BCL, "app")):
        [token] = rp.logout_tokens(path)
        claims = rp.verify(server.url, token)
        assert claims["aud"] in (client_id, [client_id])
        assert claims["sub"] == server.sub and claims["sid"] == portal["sid"]
        assert BACKCHANNEL_EVENT in claims["events"] and "nonce" not in claims

    # Their refresh tokens (no offline_access) stopped working.
    for client_id, tokens, secret in (("portal", portal_tokens, PORTAL_SECRET), ("app", app_tokens, None)):
        if "refresh_token" in tokens:
            resp = rp.refresh(server.url, client_id, tokens["refresh_token"], secret)
            assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant", resp.text

    # The browser is logged out: the app's next authorization shows the login page.
    app_authorization(page, server, rp)
    page.wait_for_url("**/login/**")
    assert page.locator("a[href$='/password']").count() == 1
    assert not [e for e in page.csp_errors if "Content Security Policy" in e]
