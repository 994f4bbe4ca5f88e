"""RP-Initiated Logout 1.0: the end_session_endpoint, its redirect rules, and what logout ends."""

from __future__ import annotations

import time

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.conftest import authorize_params, query_of
from tests.support.oidc import (
    app_tokens,
    basic,
    fill_form,
    inject_sso,
    portal_tokens,
    refresh,
    unverified,
    userinfo,
)

PORTAL_LOGGED_OUT = "https://portal.example.com/logged-out"


@pytest.fixture
def alice(client, user):
    """Alice logged in on the test browser, with the portal's tokens."""
    inject_sso(client.application, client, user)
    return portal_tokens(client)


def logged_in(client) -> bool:
    params, _ = authorize_params(prompt="none")
    return "code" in query_of(client.get("/authorize", query_string=params).location)


def confirm(client, page, decision: str = "logout"):
    """Answer the confirmation page as the person would."""
    assert page.status_code == 200 and "Log out of MyOnlineServices?" in page.get_data(as_text=True)
    return fill_form(client, "/logout/confirm", page, decision=decision)


def logout_confirmed(client, **query):
    return confirm(client, client.get("/logout", query_string=query))


def test_logout_without_parameters_asks_first_and_logs_out_on_yes(client, alice):
    page = client.get("/logout")
    assert page.status_code == 200 and "Location" not in page.headers
    assert page.headers["Cache-Control"] == "no-store"
    assert logged_in(client)  # asking is not logging out
    resp = confirm(client, page)
    assert resp.status_code == 200 and "logged out" in resp.get_data(as_text=True).lower()
    assert not logged_in(client)


def test_no_on_the_confirmation_page_keeps_the_session(client, alice):
    resp = confirm(client, client.get("/logout"), decision="stay")
    assert resp.status_code == 200 and "still logged in" in resp.get_data(as_text=True)
    assert logged_in(client)


def test_the_confirmation_needs_its_csrf_token(client, alice):
    client.get("/logout")
    resp = client.post("/logout/confirm", data={"decision": "logout"})
    assert resp.status_code == 400
    assert logged_in(client)


def test_a_post_without_hint_only_asks(client, alice):
    resp = client.post("/logout", data={"client_id": "portal"})
    assert resp.status_code == 200 and "Log out of" in resp.get_data(as_text=True)
    assert logged_in(client)


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_logout_with_hint_and_registered_uri_redirects_there_with_state(client, alice, method):
    params = {
        "id_token_hint": alice["id_token"],
        "post_logout_redirect_uri": PORTAL_LOGGED_OUT,
        "state": "s-1",
        "client_id": "portal",
    }
    resp = (
        client.post("/logout", data=params)
        if method == "POST"
        else client.get("/logout", query_string=params)
    )
    assert resp.status_code in (302, 303)
    assert resp.location == PORTAL_LOGGED_OUT + "?state=s-1"
    assert not logged_in(client)


def test_logout_redirect_without_state_has_no_state(client, alice):
    resp = client.get(
        "/logout",
        query_string={"id_token_hint": alice["id_token"], "post_logout_redirect_uri": PORTAL_LOGGED_OUT},
    )
    assert resp.location == PORTAL_LOGGED_OUT


def test_native_app_logout_redirects_to_its_private_use_scheme(client, user):
    inject_sso(client.application, client, user)
    tokens = app_tokens(client)
    resp = client.get(
        "/logout",
        query_string={
            "id_token_hint": tokens["id_token"],
            "post_logout_redirect_uri": "be.example.app:/logged-out",
            "state": "z",
        },
    )
    assert resp.location == "be.example.app:/logged-out?state=z"


@pytest.mark.parametrize(
    "uri",
    [
        "https://evil.example.com/logged-out",
        PORTAL_LOGGED_OUT + "/",
        PORTAL_LOGGED_OUT + "?next=https://evil.example.com",
        "http://portal.example.com/logged-out",
        "https://portal.example.com/Logged-out",
        "be.example.app:/logged-out",  # registered, but for another client than the hint's
        "//evil.example.com",
    ],
)
def test_unregistered_or_modified_uri_is_an_error_page_and_keeps_the_session(client, alice, uri):
    resp = client.get(
        "/logout",
        query_string={"id_token_hint": alice["id_token"], "post_logout_redirect_uri": uri, "state": "s"},
    )
    assert resp.status_code == 400
    assert "Location" not in resp.headers
    assert "not registered" in resp.get_data(as_text=True)
    assert logged_in(client)


def test_a_uri_without_any_client_to_check_it_against_is_an_error_page(client, alice):
    resp = client.get("/logout", query_string={"post_logout_redirect_uri": PORTAL_LOGGED_OUT})
    assert resp.status_code == 400 and "Location" not in resp.headers
    assert logged_in(client)


def test_registered_uri_without_a_hint_is_redirected_to_only_after_the_yes(client, alice):
    query = {"client_id": "portal", "post_logout_redirect_uri": PORTAL_LOGGED_OUT, "state": "q"}
    page = client.get("/logout", query_string=query)
    assert "Location" not in page.headers
    resp = confirm(client, page)
    assert resp.status_code == 303 and resp.location == PORTAL_LOGGED_OUT + "?state=q"
    assert not logged_in(client)


def test_a_hint_from_an_earlier_session_asks_first(client, alice, user):
    client.get("/logout", query_string={"id_token_hint": alice["id_token"]})  # that session ends
    inject_sso(client.application, client, user)  # a new one
    page = client.get(
        "/logout",
        query_string={"id_token_hint": alice["id_token"], "post_logout_redirect_uri": PORTAL_LOGGED_OUT},
    )
    assert logged_in(client)
    assert confirm(client, page).location == PORTAL_LOGGED_OUT
    assert not logged_in(client)


def _forged(claims: dict, kid: str) -> str:
    return jwt.encode({"alg": "RS256", "kid": kid, "typ": "JWT"}, claims, RSAKey.generate_key(2048))


@pytest.mark.parametrize("hint", ["forged", "access_token", "client_mismatch", "garbage", "other_issuer"])
def test_bad_hint_is_refused_without_redirect_and_without_logout(client, alice, hint):
    header, claims = unverified(alice["id_token"])
    values = {
        "forged": (_forged(claims, header["kid"]), {}),
        "access_token": (alice["access_token"], {}),
        "client_mismatch": (alice["id_token"], {"client_id": "app"}),
        "garbage": ("not-a-jwt", {}),
        "other_issuer": (None, {}),
    }
    token, extra = values[hint]
    if hint == "other_issuer":
        with client.application.app_context():
            token = client.application.extensions["idp.keys"].sign({**claims, "iss": "https://other.example"})
    resp = client.get(
        "/logout",
        query_string={
            "id_token_hint": token,
            "post_logout_redirect_uri": PORTAL_LOGGED_OUT,
            "state": "s",
            **extra,
        },
    )
    assert resp.status_code == 400
    assert "Location" not in resp.headers
    assert logged_in(client)


def test_hint_of_another_user_does_not_end_this_browsers_session(client, make_user, alice):
    bob_browser = client.application.test_client()
    inject_sso(client.application, bob_browser, make_user("bob"))
    bob = portal_tokens(bob_browser)
    resp = client.get(
        "/logout",
        query_string={"id_token_hint": bob["id_token"], "post_logout_redirect_uri": PORTAL_LOGGED_OUT},
    )
    assert resp.status_code == 200 and "Location" not in resp.headers  # the person is asked
    assert "Log out of" in resp.get_data(as_text=True)
    assert logged_in(client)
    assert logged_in(bob_browser)


def test_expired_hint_is_still_accepted(client, alice):
    _, claims = unverified(alice["id_token"])
    app = client.application
    with app.app_context():
        hint = app.extensions["idp.keys"].sign({**claims, "iat": 1, "exp": 2}, typ="JWT")
    resp = client.get(
        "/logout", query_string={"id_token_hint": hint, "post_logout_redirect_uri": PORTAL_LOGGED_OUT}
    )
    assert resp.location == PORTAL_LOGGED_OUT


def test_hint_after_the_session_already_ended_still_redirects(client, alice):
    logout_confirmed(client)
    resp = client.get(
        "/logout",
        query_string={
            "id_token_hint": alice["id_token"],
            "post_logout_redirect_uri": PORTAL_LOGGED_OUT,
            "state": "again",
        },
    )
    assert resp.location == PORTAL_LOGGED_OUT + "?state=again"


def test_unknown_client_id_is_an_error_page(client, alice):
    resp = client.get(
        "/logout", query_string={"client_id": "nobody", "post_logout_redirect_uri": PORTAL_LOGGED_OUT}
    )
    assert resp.status_code == 400 and "Location" not in resp.headers


def test_logout_ends_the_sessions_tokens_except_offline_access(client, user):
    inject_sso(client.application, client, user)
    online = portal_tokens(client, scope="openid email")
    offline = portal_tokens(client, scope="openid email offline_access")
    logout_confirmed(client)
    assert userinfo(client, online["access_token"]).status_code == 401
    assert refresh(client, online["refresh_token"], auth=basic()).json["error"] == "invalid_grant"
    assert refresh(client, offline["refresh_token"], auth=basic()).status_code == 200


def test_after_logout_the_next_authorization_needs_a_login(client, alice):
    logout_confirmed(client)
    params, _ = authorize_params()
    resp = client.get("/authorize", query_string=params)
    assert "/login/" in resp.location


def test_ended_sso_session_is_marked_ended(client, alice):
    from idp.core.storage import SsoSession, db

    sid = unverified(alice["id_token"])[1]["sid"]
    client.get("/logout", query_string={"id_token_hint": alice["id_token"]})
    with client.application.app_context():
        assert db.session.get(SsoSession, sid).ended_at <= int(time.time())
