"""The OpenID Foundation's Basic OP plan, module by module, with requests shaped as the
conformance suite sends them: discovery-driven, the portal set up as the suite's client
(``require_pkce = false``: the suite sends no PKCE except in its PKCE module, and
sometimes no nonce), ``client_secret_basic`` (and ``client_secret_post``).

Each test is named after the suite's module it reproduces.
"""

from __future__ import annotations

import base64
import json
import secrets
import time

import pytest

from tests.conftest import PORTAL_SECRET, pkce_pair, query_of
from tests.support.oidc import (
    basic,
    clients_with,
    decode,
    get_code,
    inject_sso,
    login_pages,
    set_auth_time,
)

REDIRECT = "https://portal.example.com/callback"


@pytest.fixture
def op(make_app, tmp_path, user):
    """The provider with the suite's client; ``op.user`` is the test account's sub."""
    app = make_app(clients_with({"require_pkce": False, "first_party": True}, tmp_path=tmp_path))
    client = app.test_client()
    client.user = user
    client.doc = client.get("/.well-known/openid-configuration").json
    return client


def request(**extra) -> dict:
    """An authorization request as the suite builds it: no PKCE."""
    params = {
        "client_id": "portal",
        "redirect_uri": REDIRECT,
        "scope": "openid",
        "state": secrets.token_urlsafe(8),
        "nonce": secrets.token_urlsafe(8),
        "response_type": "code",
    }
    params.update(extra)
    return {k: v for k, v in params.items() if v is not None}


def token(op, code: str, auth: str = "basic", **extra):
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, **extra}
    if auth == "post":
        data.update(client_id="portal", client_secret=PORTAL_SECRET)
        return op.post("/token", data=data)
    return op.post("/token", data=data, headers=basic())


def login_flow(op, **extra) -> tuple[dict, dict, dict]:
    """Authorization (logging in when asked), token; (params, token response, ID token claims)."""
    params = request(**extra)
    result = get_code(op, params)
    assert result["state"] == params["state"] and result["iss"] == op.doc["issuer"], result
    resp = token(op, result["code"])
    assert resp.status_code == 200, resp.json
    assert resp.headers["Cache-Control"] == "no-store"
    header, claims = decode(op, resp.json["id_token"])
    return params, resp.json, claims


def test_oidcc_server(op):
    params, tokens, claims = login_flow(op)
    assert tokens["token_type"] == "Bearer"
    for name in ("iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "sub"):
        assert name in claims, name
    assert claims["nonce"] == params["nonce"] and claims["aud"] == "portal"
    assert claims["iss"] == op.doc["issuer"]


def test_oidcc_response_type_missing(op):
    result = query_of(op.get("/authorize", query_string=request(response_type=None)).location)
    assert result["error"] in ("invalid_request", "unsupported_response_type")


@pytest.mark.parametrize("how", ["get", "post-header", "post-body"])
def test_oidcc_userinfo(op, how):
    _, tokens, claims = login_flow(op)
    access = tokens["access_token"]
    if how == "get":
        resp = op.get("/userinfo", headers={"Authorization": "Bearer " + access})
    elif how == "post-header":
        resp = op.post("/userinfo", headers={"Authorization": "Bearer " + access})
    else:
        resp = op.post("/userinfo", data={"access_token": access})
    assert resp.status_code == 200 and resp.json["sub"] == claims["sub"]


def test_oidcc_ensure_request_without_nonce_succeeds_for_code_flow(op):
    _, _, claims = login_flow(op, nonce=None)
    assert "nonce" not in claims


@pytest.mark.parametrize(
    "scope, claim",
    [("profile", "family_name"), ("email", "email"), ("phone", "phone_number"), ("address", None)],
)
def test_oidcc_scope(op, scope, claim):
    _, tokens, _ = login_flow(op, scope=f"openid {scope}")
    info = op.get("/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]}).json
    if claim:
        assert claim in info, info


def test_oidcc_ensure_other_scope_order_succeeds(op):
    login_flow(op, scope="email openid")


@pytest.mark.parametrize("display", ["page", "popup"])
def test_oidcc_display(op, display):
    login_flow(op, display=display)


def test_oidcc_prompt_login(op):
    _, _, first = login_flow(op)
    time.sleep(1)
    params = request(prompt="login")
    resp = op.get("/authorize", query_string=params)
    assert "/login/" in resp.location  # logged in, and asked to log in again
    resp = op.get(login_pages(op, resp.location).location)
    second = decode(op, token(op, query_of(resp.location)["code"]).json["id_token"])[1]
    assert second["auth_time"] > first["auth_time"]


def test_oidcc_prompt_none_not_logged_in(op):
    params = request(prompt="none")
    result = query_of(op.get("/authorize", query_string=params).location)
    assert result["error"] == "login_required" and result["state"] == params["state"]


def test_oidcc_prompt_none_logged_in(op):
    login_flow(op)
    result = query_of(op.get("/authorize", query_string=request(prompt="none")).location)
    assert "code" in result and token(op, result["code"]).status_code == 200


def test_oidcc_max_age_1(op):
    _, _, first = login_flow(op)
    from tests.support.oidc import current_sid

    set_auth_time(op.application, current_sid(op.application, op), first["auth_time"] - 5)
    resp = op.get("/authorize", query_string=request(max_age="1"))
    assert "/login/" in resp.location
    resp = op.get(login_pages(op, resp.location).location)
    second = decode(op, token(op, query_of(resp.location)["code"]).json["id_token"])[1]
    assert second["auth_time"] >= first["auth_time"] and "auth_time" in second


def test_oidcc_max_age_10000(op):
    _, _, first = login_flow(op)
    result = query_of(op.get("/authorize", query_string=request(max_age="10000")).location)
    second = decode(op, token(op, result["code"]).json["id_token"])[1]
    assert second["auth_time"] == first["auth_time"]


def test_oidcc_ensure_request_with_unknown_parameter_succeeds(op):
    login_flow(op, extra_unknown_parameter="x")


def test_oidcc_id_token_hint(op):
    _, tokens, first = login_flow(op)
    params = request(prompt="none", id_token_hint=tokens["id_token"])
    result = query_of(op.get("/authorize", query_string=params).location)
    claims = decode(op, token(op, result["code"]).json["id_token"])[1]
    assert claims["sub"] == first["sub"]


def test_oidcc_login_hint(op):
    resp = op.get("/authorize", query_string=request(login_hint="alice"))
    assert "/login/" in resp.location
    login_flow(op, login_hint="alice")


@pytest.mark.parametrize("name", ["ui_locales", "claims_locales"])
def test_oidcc_locales(op, name):
    login_flow(op, **{name: "se"})


def test_oidcc_ensure_request_with_acr_values_succeeds(op):
    _, _, claims = login_flow(op, acr_values="1 2")
    assert claims["acr"]


def test_oidcc_codereuse(op):
    params = request()
    code = get_code(op, params)["code"]
    first = token(op, code)
    assert first.status_code == 200
    again = token(op, code)
    assert again.status_code == 400 and again.json["error"] == "invalid_grant"
    # the suite's 30-second variant also checks the first access token stopped working
    resp = op.get("/userinfo", headers={"Authorization": "Bearer " + first.json["access_token"]})
    assert resp.status_code == 401


def test_oidcc_ensure_registered_redirect_uri(op):
    resp = op.get("/authorize", query_string=request(redirect_uri="https://portal.example.com/evil"))
    assert resp.status_code == 400 and "Location" not in resp.headers


def test_oidcc_server_client_secret_post(make_app, tmp_path, user):
    """The suite runs this module with a client registered for ``client_secret_post``."""
    changes = {"require_pkce": False, "token_endpoint_auth_method": "client_secret_post"}
    op = make_app(clients_with(changes, tmp_path=tmp_path)).test_client()
    code = get_code(op, request())["code"]
    assert token(op, code, auth="post").status_code == 200
    code = get_code(op, request())["code"]
    assert token(op, code).status_code == 401  # and only that way


def test_oidcc_unsigned_request_object_supported_correctly_or_rejected_as_unsupported(op):
    def b64(d):
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    params = request()
    obj = b64({"alg": "none"}) + "." + b64(params) + "."
    result = query_of(op.get("/authorize", query_string={**params, "request": obj}).location)
    assert result["error"] == "request_not_supported" and result["state"] == params["state"]


def test_oidcc_claims_essential(op):
    claims = json.dumps({"userinfo": {"name": {"essential": True}}})
    _, tokens, _ = login_flow(op, claims=claims)
    info = op.get("/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]}).json
    assert "name" in info


def test_oidcc_refresh_token(op):
    _, tokens, first = login_flow(op, scope="openid offline_access")
    assert len(base64.urlsafe_b64decode(tokens["refresh_token"] + "==")) >= 16  # >= 128 bits
    data = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    resp = op.post("/token", data=data, headers=basic())
    assert resp.status_code == 200
    refreshed = decode(op, resp.json["id_token"])[1]
    for name in ("iss", "sub", "aud", "auth_time"):
        assert refreshed[name] == first[name], name
    # another (authenticated) client presenting it: invalid_grant
    other = op.post("/token", data={**data, "client_id": "partner", "client_secret": PORTAL_SECRET})
    assert other.status_code == 400 and other.json["error"] == "invalid_grant"


def test_oidcc_ensure_request_with_valid_pkce_succeeds(op):
    verifier, challenge = pkce_pair()
    code = get_code(op, request(code_challenge=challenge, code_challenge_method="S256"))["code"]
    assert token(op, code, code_verifier=verifier).status_code == 200


def test_oidcc_ensure_post_request_succeeds(op):
    inject_sso(op.application, op, op.user)
    params = request()
    resp = op.post("/authorize", data=params)
    result = query_of(resp.location)
    assert result["state"] == params["state"] and token(op, result["code"]).status_code == 200
