"""The authorization endpoint: OpenID Connect Core 3.1.2, RFC 6749 4.1, RFC 9207, RFC 8252, Form Post.

Basic OP / Form Post OP checks: redirect URI rules, PKCE, prompt, max_age,
id_token_hint, login_hint, ui_locales, claims, acr_values, request objects,
unknown parameters, POSTed requests, and ``iss`` in every response.
"""

from __future__ import annotations

import json
import re
import time
from urllib.parse import urlsplit

import pytest

from tests.conftest import authorize_params, exchange, query_of
from tests.support.oidc import (
    APP_REDIRECT,
    PARTNER_REDIRECT,
    decode,
    get_code,
    inject_sso,
    login_pages,
    portal_tokens,
    userinfo,
)

ISSUER = "http://localhost"


def authorize(client, method="GET", **extra):
    params, verifier = authorize_params(**extra)
    if method == "POST":
        return client.post("/authorize", data=params), params, verifier
    return client.get("/authorize", query_string=params), params, verifier


def assert_error_page(resp):
    assert resp.status_code == 400
    assert "Location" not in resp.headers
    assert resp.mimetype == "text/html"


# ---------------------------------------------------------------------------
# Client and redirect URI: never a redirect to something unverified
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://evil.example.com/callback",
        "https://portal.example.com/callback/",
        "https://portal.example.com/callback?x=1",
        "https://portal.example.com/Callback",
        "https://portal.example.com/callback#frag",
        "http://portal.example.com/callback",
        "https://portal.example.com.evil.example/callback",
        "http://127.0.0.1:9999/callback",  # the portal is not a native app: its port is exact
        "",
    ],
)
def test_unregistered_redirect_uri_gets_an_error_page_and_no_redirect(client, redirect_uri):
    resp, _, _ = authorize(client, redirect_uri=redirect_uri)
    assert_error_page(resp)


@pytest.mark.parametrize("client_id", ["nobody", "", None, "portal ", "PORTAL"])
def test_unknown_or_missing_client_gets_an_error_page_and_no_redirect(client, client_id):
    params, _ = authorize_params()
    if client_id is None:
        params.pop("client_id")
    else:
        params["client_id"] = client_id
    assert_error_page(client.get("/authorize", query_string=params))


def test_duplicated_redirect_uri_gets_an_error_page(client):
    params, _ = authorize_params()
    query = "&".join(f"{k}={v}" for k, v in params.items()) + "&redirect_uri=https://evil.example.com/"
    assert_error_page(client.get("/authorize?" + query))


def test_native_app_loopback_redirect_accepts_any_port(client, user):
    redirect_uri = "http://127.0.0.1:54321/callback"
    params, verifier = authorize_params(client_id="app", redirect_uri=redirect_uri)
    result = get_code(client, params)
    assert result["iss"] == ISSUER
    resp = exchange(client, result["code"], verifier, client_id="app", redirect_uri=redirect_uri, auth=None)
    assert resp.status_code == 200, resp.json


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "http://127.0.0.1:54321/other",
        "http://localhost:54321/callback",
        "http://127.0.0.1:54321/callback?x=1",
        "http://user@127.0.0.1:54321/callback",
        "https://127.0.0.1:54321/callback",
    ],
)
def test_native_app_loopback_allows_only_the_port_to_vary(client, redirect_uri):
    resp, _, _ = authorize(client, client_id="app", redirect_uri=redirect_uri)
    assert_error_page(resp)


def test_native_app_private_use_scheme_redirect_gets_the_code(client, user):
    params, verifier = authorize_params(client_id="app", redirect_uri=APP_REDIRECT)
    resp = client.get("/authorize", query_string=params)
    resp = client.get(login_pages(client, resp.location).location)
    assert resp.status_code == 302
    assert resp.location.startswith(APP_REDIRECT + "?")
    result = query_of(resp.location)
    assert result["state"] == params["state"] and result["iss"] == ISSUER
    token = exchange(client, result["code"], verifier, client_id="app", redirect_uri=APP_REDIRECT, auth=None)
    assert token.status_code == 200


# ---------------------------------------------------------------------------
# Errors go back to the client with state and iss (RFC 9207)
# ---------------------------------------------------------------------------


ERROR_CASES = [
    ({"code_challenge": None, "code_challenge_method": None}, "invalid_request"),
    ({"code_challenge_method": "plain"}, "invalid_request"),
    ({"code_challenge_method": None}, "invalid_request"),
    ({"code_challenge_method": "S512"}, "invalid_request"),
    ({"code_challenge": "short"}, "invalid_request"),
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"response_type": "id_token"}, "unsupported_response_type"),
    ({"response_type": "code id_token"}, "unsupported_response_type"),
    ({"response_type": None}, "invalid_request"),
    ({"scope": "profile email"}, "invalid_scope"),
    ({"scope": None}, "invalid_scope"),
    ({"prompt": "none login"}, "invalid_request"),
    ({"prompt": "sideways"}, "invalid_request"),
    ({"max_age": "abc"}, "invalid_request"),
    ({"max_age": "-1"}, "invalid_request"),
    ({"claims": "{not json"}, "invalid_request"),
    ({"claims": "[1, 2]"}, "invalid_request"),
    ({"claims": '{"id_token": 3}'}, "invalid_request"),
    ({"id_token_hint": "not.a.token"}, "invalid_request"),
    ({"request": "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0."}, "request_not_supported"),
    ({"request_uri": "https://portal.example.com/req.jwt"}, "request_uri_not_supported"),
    ({"response_mode": "fragment"}, "invalid_request"),
]


@pytest.mark.parametrize("extra, error", ERROR_CASES)
def test_bad_requests_are_answered_at_the_redirect_uri_with_state_and_iss(client, extra, error):
    resp, params, _ = authorize(client, **extra)
    assert resp.status_code == 302, resp.get_data(as_text=True)
    assert resp.location.startswith("https://portal.example.com/callback?")
    result = query_of(resp.location)
    assert result["error"] == error
    assert result["state"] == params["state"]
    assert result["iss"] == ISSUER
    assert "code" not in result


@pytest.mark.parametrize("extra, error", ERROR_CASES[:3])
def test_pkce_is_required_even_for_public_clients_and_s256_only(client, extra, error):
    resp, _, _ = authorize(client, client_id="app", redirect_uri=APP_REDIRECT, **extra)
    assert query_of(resp.location)["error"] == error


def test_duplicated_parameter_is_an_invalid_request(client):
    params, _ = authorize_params()
    query = "&".join(f"{k}={v}" for k, v in params.items()) + "&scope=openid+email"
    assert query_of(client.get("/authorize?" + query).location)["error"] == "invalid_request"


def test_success_is_a_302_to_the_client_with_code_state_and_iss(client, user):
    params, _ = authorize_params()
    resp = client.get("/authorize", query_string=params)
    resp = login_pages(client, resp.location)
    assert resp.status_code == 303  # after a credentials POST: 303, never 307
    resp = client.get(resp.location)
    assert resp.status_code == 302
    assert urlsplit(resp.location)._replace(query="").geturl() == params["redirect_uri"]
    result = query_of(resp.location)
    assert set(result) == {"code", "state", "iss"}
    assert result["state"] == params["state"] and result["iss"] == ISSUER
    assert len(result["code"]) >= 32


def test_a_request_without_state_gets_a_response_without_state(client, user):
    result = get_code(client, authorize_params(state=None)[0])
    assert "state" not in result and "code" in result


# ---------------------------------------------------------------------------
# Request forms: POST, order, unknown parameters, display, claims_locales
# ---------------------------------------------------------------------------


def test_posted_authorization_request_works_like_get(client, user):
    params, verifier = authorize_params()
    resp = client.post("/authorize", data=params)
    assert resp.status_code == 302 and "/login/" in resp.location
    resp = client.get(login_pages(client, resp.location).location)
    result = query_of(resp.location)
    assert result["state"] == params["state"]
    assert exchange(client, result["code"], verifier).status_code == 200


def test_unknown_parameters_are_ignored_and_order_does_not_matter(client, user):
    params, verifier = authorize_params(
        foo="bar", x_custom="1", display="page", claims_locales="fr nl", vtr="Cl.Cm"
    )
    query = "&".join(f"{k}={v}" for k, v in reversed(list(params.items())))
    resp = client.get("/authorize?" + query)
    resp = client.get(login_pages(client, resp.location).location)
    assert exchange(client, query_of(resp.location)["code"], verifier).status_code == 200


@pytest.mark.parametrize("display", ["page", "popup", "touch", "wap"])
def test_display_values_are_accepted(client, user, display):
    inject_sso(client.application, client, user)
    result = get_code(client, authorize_params(display=display)[0])
    assert "code" in result


def test_scopes_the_client_may_not_use_are_dropped(make_app, make_user):
    make_user()
    app = make_app(
        {
            "clients": [
                {
                    "client_id": "portal",
                    "type": "confidential",
                    "client_secret": "env:IDP_TEST_PORTAL_SECRET",
                    "first_party": True,
                    "redirect_uris": ["https://portal.example.com/callback"],
                    "scopes": ["openid", "email"],
                }
            ]
        }
    )
    tokens = portal_tokens(app.test_client())
    assert set(tokens["scope"].split()) == {"openid", "email"}


# ---------------------------------------------------------------------------
# prompt, max_age, id_token_hint, login_hint
# ---------------------------------------------------------------------------


def test_prompt_none_without_a_session_is_login_required(client):
    resp, params, _ = authorize(client, prompt="none")
    result = query_of(resp.location)
    assert (
        result["error"] == "login_required" and result["state"] == params["state"] and result["iss"] == ISSUER
    )


def test_prompt_none_with_a_session_returns_a_code_without_any_page(client, user):
    get_code(client, authorize_params()[0])
    resp, _, _ = authorize(client, prompt="none")
    assert resp.status_code == 302 and "code" in query_of(resp.location)


def test_prompt_login_forces_a_new_login_and_a_later_auth_time(client, user):
    inject_sso(client.application, client, user, auth_time=int(time.time()) - 300)
    first = portal_tokens(client)
    _, first_claims = decode(client, first["id_token"])
    resp, params, verifier = authorize(client, prompt="login")
    assert resp.status_code == 302 and "/login/" in resp.location
    resp = client.get(login_pages(client, resp.location).location)
    tokens = exchange(client, query_of(resp.location)["code"], verifier).json
    _, claims = decode(client, tokens["id_token"])
    assert claims["auth_time"] > first_claims["auth_time"]


def test_max_age_older_than_the_login_forces_a_new_login(client, user):
    inject_sso(client.application, client, user, auth_time=int(time.time()) - 600)
    resp, _, verifier = authorize(client, max_age="300")
    assert "/login/" in resp.location
    before = int(time.time())
    resp = client.get(login_pages(client, resp.location).location)
    tokens = exchange(client, query_of(resp.location)["code"], verifier).json
    _, claims = decode(client, tokens["id_token"])
    assert claims["auth_time"] >= before


def test_max_age_within_the_login_keeps_the_session_and_reports_auth_time(client, user):
    login_at = int(time.time()) - 60
    inject_sso(client.application, client, user, auth_time=login_at)
    tokens = portal_tokens(client, max_age="300")
    _, claims = decode(client, tokens["id_token"])
    assert claims["auth_time"] == login_at


def test_max_age_with_prompt_none_and_an_old_login_is_login_required(client, user):
    inject_sso(client.application, client, user, auth_time=int(time.time()) - 600)
    resp, _, _ = authorize(client, max_age="60", prompt="none")
    assert query_of(resp.location)["error"] == "login_required"


def test_id_token_hint_of_the_logged_in_user_with_prompt_none_gives_a_code(client, user):
    tokens = portal_tokens(client)
    resp, _, _ = authorize(client, prompt="none", id_token_hint=tokens["id_token"])
    assert "code" in query_of(resp.location)


def test_id_token_hint_of_another_user_is_not_silently_honoured(client, make_user, user):
    make_user("bob")
    tokens = portal_tokens(client)  # alice
    bob_client = client.application.test_client()
    get_code(bob_client, authorize_params()[0], username="bob")
    resp, _, _ = authorize(bob_client, prompt="none", id_token_hint=tokens["id_token"])
    assert query_of(resp.location)["error"] == "login_required"
    resp, _, _ = authorize(bob_client, id_token_hint=tokens["id_token"])
    assert "/login/" in resp.location


def test_expired_id_token_hint_is_still_accepted(client, user):
    """OpenID Connect Core 3.1.2.1: the hint is used even when it has expired."""

    app = client.application
    inject_sso(app, client, user)
    with app.app_context():
        hint = app.extensions["idp.keys"].sign(
            {"iss": ISSUER, "sub": user, "aud": "portal", "iat": 1, "exp": 2}, typ="JWT"
        )
    resp, _, _ = authorize(client, prompt="none", id_token_hint=hint)
    assert "code" in query_of(resp.location)


def test_access_token_is_not_accepted_as_id_token_hint(client, user):
    tokens = portal_tokens(client)
    resp, _, _ = authorize(client, id_token_hint=tokens["access_token"])
    assert query_of(resp.location)["error"] == "invalid_request"


def test_login_hint_prefills_the_username(client):
    resp, _, _ = authorize(client, login_hint="alice.martin")
    page = client.get(urlsplit(resp.location).path + "/password").get_data(as_text=True)
    assert re.search(r'name="username"[^>]*value="alice.martin"', page)


def test_login_hint_is_escaped_on_the_page(client):
    resp, _, _ = authorize(client, login_hint='"><script>alert(1)</script>')
    page = client.get(urlsplit(resp.location).path + "/password").get_data(as_text=True)
    assert "<script>alert(1)" not in page


@pytest.mark.parametrize(
    "ui_locales, lang", [("nl-BE fr", "nl"), ("de", "de"), ("xx en", "en"), ("fr-CA", "fr")]
)
def test_ui_locales_sets_the_language_of_the_login_pages(client, ui_locales, lang):
    resp, _, _ = authorize(client, ui_locales=ui_locales)
    tx_path = urlsplit(resp.location).path
    assert f'<html lang="{lang}"' in client.get(tx_path).get_data(as_text=True)
    assert f'<html lang="{lang}"' in client.get(tx_path + "/password").get_data(as_text=True)


# ---------------------------------------------------------------------------
# claims and acr_values
# ---------------------------------------------------------------------------


def test_essential_claims_requested_for_the_id_token_are_in_it(client, user):
    claims = {
        "id_token": {"email": {"essential": True}, "name": None, "auth_time": {"essential": True}},
        "userinfo": {"phone_number": {"essential": True}},
    }
    tokens = portal_tokens(client, scope="openid", claims=json.dumps(claims))
    _, id_claims = decode(client, tokens["id_token"])
    assert id_claims["email"] == "alice@example.com"
    assert id_claims["name"] == "Alice Martin"
    assert "auth_time" in id_claims
    info = userinfo(client, tokens["access_token"]).json
    assert info["phone_number"] == "+32470123456"
    # claims asked for by name widen the grant to the scopes that release them (within the client's)
    assert set(tokens["scope"].split()) == {"openid", "email", "profile", "phone"}


def test_unknown_requested_claims_are_ignored(client, user):
    claims = {"id_token": {"favourite_colour": {"essential": True}}, "userinfo": {"password_hash": None}}
    tokens = portal_tokens(client, claims=json.dumps(claims))
    _, id_claims = decode(client, tokens["id_token"])
    assert "favourite_colour" not in id_claims
    assert "password_hash" not in userinfo(client, tokens["access_token"]).json


@pytest.mark.parametrize(
    "acr_values", ["urn:idp:acr:low", "urn:idp:acr:low urn:idp:acr:substantial", "unknown"]
)
def test_acr_values_request_gets_an_acr_claim(client, user, acr_values):
    tokens = portal_tokens(client, acr_values=acr_values)
    _, claims = decode(client, tokens["id_token"])
    assert claims["acr"] in ("urn:idp:acr:low", "urn:idp:acr:substantial", "urn:idp:acr:high")
    assert "pwd" in claims["amr"]


# ---------------------------------------------------------------------------
# response_mode=form_post (Form Post OP)
# ---------------------------------------------------------------------------


def _form_fields(html: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))


def test_form_post_delivers_code_state_and_iss_in_an_auto_submitted_form(client, user):
    inject_sso(client.application, client, user)
    params, verifier = authorize_params(response_mode="form_post")
    resp = client.get("/authorize", query_string=params)
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert re.search(r'<form method="post" action="https://portal.example.com/callback"', html)
    fields = _form_fields(html)
    assert fields["state"] == params["state"] and fields["iss"] == ISSUER
    assert exchange(client, fields["code"], verifier).status_code == 200
    # no inline script: every script is a file, allowed by CSP; the form may post to the client
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert not re.search(r"\son[a-z]+=", html)
    csp = resp.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in csp
    form_action = re.search(r"form-action ([^;]+)", csp).group(1).split()
    assert form_action[0] == "'self'" and "https://portal.example.com" in form_action
    assert resp.headers["Cache-Control"] == "no-store"


def test_form_post_also_carries_errors(client):
    params, _ = authorize_params(response_mode="form_post", prompt="none")
    resp = client.get("/authorize", query_string=params)
    assert resp.status_code == 200
    fields = _form_fields(resp.get_data(as_text=True))
    assert (
        fields["error"] == "login_required" and fields["state"] == params["state"] and fields["iss"] == ISSUER
    )


def test_form_post_escapes_values(client):
    params, _ = authorize_params(response_mode="form_post", prompt="none", state='"><b>x</b>')
    html = client.get("/authorize", query_string=params).get_data(as_text=True)
    assert "<b>x</b>" not in html


# ---------------------------------------------------------------------------
# Robustness: never a 500
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        {"state": "x" * 5000},
        {"nonce": "\x00\xff"},
        {"claims": json.dumps({"id_token": {"acr": {"values": [1, None, {"a": 2}]}}})},
        {"claims": json.dumps({"id_token": {"acr": {"value": 7}}})},
        {"claims": json.dumps({"userinfo": {"email": "yes"}})},
        {"max_age": "99999999999999999999"},
        {"acr_values": "x" * 3000},
        {"ui_locales": "!!! ??"},
        {"id_token_hint": "a.b.c"},
        {"id_token_hint": "e30.e30.e30"},
        {"code_challenge": "€" * 50},
    ],
)
def test_odd_input_never_causes_a_server_error(client, extra):
    resp, _, _ = authorize(client, **extra)
    assert resp.status_code < 500
    resp, _, _ = authorize(client, method="POST", **extra)
    assert resp.status_code < 500


def test_partner_without_consent_and_prompt_none_is_consent_required(client, user):
    inject_sso(client.application, client, user)
    resp, _, _ = authorize(client, client_id="partner", redirect_uri=PARTNER_REDIRECT, prompt="none")
    result = query_of(resp.location)
    assert result["error"] == "consent_required" and result["iss"] == ISSUER


def test_form_post_to_a_private_use_scheme_is_refused_by_query(client, user):
    from tests.conftest import authorize_params, query_of

    params, _ = authorize_params(
        client_id="app", redirect_uri="be.example.app:/callback", response_mode="form_post"
    )
    resp = client.get("/authorize", query_string=params)
    assert resp.status_code == 302
    assert resp.location.startswith("be.example.app:/callback?")
    assert query_of(resp.location)["error"] == "invalid_request"
