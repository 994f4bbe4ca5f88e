"""Security headers and redirect rules (OWASP ASVS V14, RFC 9700 sections 4.11 and 4.16)."""

from __future__ import annotations

import re

import pytest

from tests.conftest import authorize_params
from tests.support.oidc import basic

PAGES = ["/authorize?client_id=nobody", "/logout", "/login/-", "/account/"]


def directives(csp: str) -> dict[str, str]:
    return {
        d.strip().split(" ", 1)[0]: (d.strip().split(" ", 1) + [""])[1] for d in csp.split(";") if d.strip()
    }


@pytest.mark.parametrize("path", PAGES)
def test_pages_have_a_strict_content_security_policy(client, path):
    resp = client.get(path)
    csp = directives(resp.headers["Content-Security-Policy"])
    assert "unsafe-inline" not in resp.headers["Content-Security-Policy"]
    assert "unsafe-eval" not in resp.headers["Content-Security-Policy"]
    assert csp["default-src"] == "'none'"
    assert csp["script-src"] == "'self'"
    assert csp["frame-ancestors"] == "'none'"
    assert csp["object-src"] == "'none'"
    assert csp["base-uri"] == "'none'"
    # 'self' and the registered redirect targets: Chromium checks form-action on the redirects after a POST.
    assert csp["form-action"].split()[0] == "'self'"
    assert set(csp["form-action"].split()[1:]) == {
        "https://portal.example.com",
        "http://127.0.0.1:*",
        "be.example.app:",
        "https://app.example.com",
        "https://partner.example.net",
        "http://localhost",  # the built-in demo client, on the provider itself
    }


@pytest.mark.parametrize("path", PAGES + ["/.well-known/openid-configuration", "/jwks.json", "/userinfo"])
def test_every_response_has_nosniff_and_no_framing(client, path):
    resp = client.get(path)
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize("path", PAGES)
def test_pages_send_no_referrer_and_keep_their_window_to_themselves(client, path):
    resp = client.get(path)
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert resp.headers["Cross-Origin-Opener-Policy"] == "same-origin"


def test_a_token_response_carries_the_owasp_api_headers_and_nothing_meant_for_documents(client):
    """RFC 6749 section 5.1 (no-store, no-cache) and the OWASP REST set."""
    resp = client.post("/token", data={"grant_type": "authorization_code", "code": "x"})
    assert resp.status_code in (400, 401) and resp.mimetype == "application/json"
    assert resp.headers["Cache-Control"] == "no-store" and resp.headers["Pragma"] == "no-cache"
    assert resp.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert "Referrer-Policy" not in resp.headers and "Cross-Origin-Opener-Policy" not in resp.headers


@pytest.mark.parametrize("path", ["/.well-known/openid-configuration", "/jwks.json", "/userinfo"])
def test_json_responses_have_a_policy_that_allows_nothing(client, path):
    resp = client.get(path)
    assert resp.mimetype.endswith("json")
    assert directives(resp.headers["Content-Security-Policy"]) == {
        "default-src": "'none'",
        "frame-ancestors": "'none'",
    }


@pytest.mark.parametrize("path", PAGES)
def test_pages_are_not_stored(client, path):
    assert client.get(path).headers["Cache-Control"] == "no-store"


def test_pages_carry_no_inline_script(client):
    params, _ = authorize_params()
    resp = client.get("/authorize", query_string=params)
    for path in (resp.location, resp.location + "/password"):
        html = client.get(path).get_data(as_text=True)
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
        assert not re.search(r"\son[a-z]+\s*=", html)
        assert not re.search(r"\sstyle\s*=", html)


def test_no_hsts_over_plain_http_in_development(client):
    assert "Strict-Transport-Security" not in client.get("/logout").headers


@pytest.mark.parametrize("method", ["GET", "OPTIONS", "POST"])
def test_no_cors_on_the_authorization_endpoint(client, method):
    params, _ = authorize_params()
    headers = {"Origin": "https://evil.example.com", "Access-Control-Request-Method": "GET"}
    if method == "POST":
        resp = client.post("/authorize", data=params, headers=headers)
    else:
        resp = client.open("/authorize", method=method, query_string=params, headers=headers)
    assert "Access-Control-Allow-Origin" not in resp.headers
    assert "Access-Control-Allow-Credentials" not in resp.headers


def test_token_endpoint_grants_no_credentialed_cors(client):
    resp = client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": "x"},
        headers={**basic(), "Origin": "https://evil.example.com"},
    )
    assert resp.headers.get("Access-Control-Allow-Origin") in (None, "*")
    assert "Access-Control-Allow-Credentials" not in resp.headers


@pytest.mark.parametrize(
    "next_url",
    ["//evil.example.com/", "https://evil.example.com/", "/\\evil.example.com", "javascript:alert(1)"],
)
def test_language_picker_is_not_an_open_redirect(client, next_url):
    from tests.conftest import csrf_from

    page = client.get("/logout").get_data(as_text=True)
    resp = client.post("/lang/en", data={"csrf_token": csrf_from(page), "next": next_url})
    assert resp.status_code == 303
    assert resp.location in ("/", "http://localhost/")


@pytest.mark.parametrize(
    "path",
    [
        "/authorize?client_id=portal&redirect_uri=https://evil.example.com/&response_type=code&scope=openid",
        "/logout?post_logout_redirect_uri=https://evil.example.com/",
        "/logout?client_id=portal&post_logout_redirect_uri=https://evil.example.com/",
        "/authorize/continue/nope",
        "/consent/nope",
        "/login/nope",
    ],
)
def test_nothing_redirects_to_an_unregistered_place(client, path):
    resp = client.get(path)
    assert not (resp.location or "").startswith(("https://evil", "//"))
