"""A relying-party library this project did not write (Authlib's requests client) against the live provider.

Over real HTTP: discovery, the code flow with PKCE S256 and a nonce (the login
pages driven with ``requests`` and their CSRF tokens), the ID token checked
against the JWKS with joserfc, userinfo, refresh, revocation and logout.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.conftest import PASSWORD, PORTAL_SECRET
from tests.support.oidc import _Forms, last_sms_code

PORTAL_CALLBACK = "http://127.0.0.1:8123/callback"  # registered for the portal


def browser_login(server, browser: requests.Session, authorization_url: str, username="alice") -> str:
    """A person in a browser: follow the authorization request, log in, return the callback URL."""
    resp = browser.get(authorization_url, allow_redirects=False)
    steps = 0
    while True:
        steps += 1
        assert steps < 20, "too many steps"
        assert resp.status_code in (200, 302, 303), resp.text
        if resp.status_code in (302, 303):
            location = resp.headers["Location"]
            if not location.startswith(("/", server.url)):
                return location  # back to the relying party
            url = location if location.startswith("http") else server.url + location
            if urlsplit(url).path.rstrip("/").count("/") == 2 and "/login/" in url:
                url = url.rstrip("/") + "/password"  # the chooser: pick username + password
            resp = browser.get(url, allow_redirects=False)
            continue
        path = urlsplit(resp.url).path
        parser = _Forms()
        parser.feed(resp.text)
        form = next(f for f in parser.forms if not f["action"].startswith("/lang/"))
        data = {**form["fields"], **form["checkboxes"]}
        if path.endswith("/password"):
            data.update(username=username, password=PASSWORD)
        elif path.endswith("/code"):
            data["code"] = last_sms_code(server.app)
        if form["button"]:
            data.setdefault(*form["button"])
        resp = browser.post(server.url + path, data=data, allow_redirects=False)
        assert resp.status_code != 307


@pytest.fixture
def provider(live_server, make_user):
    make_user()
    server = live_server()
    server.doc = requests.get(server.url + "/.well-known/openid-configuration", timeout=5).json()
    return server


def validate_id_token(
    server, id_token: str, client_id: str, nonce: str | None, access_token: str | None = None
):
    keys = KeySet.import_key_set(requests.get(server.doc["jwks_uri"], timeout=5).json())
    token = jwt.decode(id_token, keys, algorithms=server.doc["id_token_signing_alg_values_supported"])
    registry = jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": server.doc["issuer"]},
        aud={"essential": True, "value": client_id},
        sub={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
        auth_time={"essential": True},
        **({"nonce": {"essential": True, "value": nonce}} if nonce else {}),
    )
    registry.validate(token.claims)
    assert token.header["kid"]
    if access_token:
        digest = hashlib.sha256(access_token.encode()).digest()
        assert token.claims["at_hash"] == base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()
    return token.claims


def test_authlib_client_completes_the_whole_lifecycle_with_a_confidential_client(provider):
    doc = provider.doc
    assert doc["issuer"] == provider.url
    rp = OAuth2Session(
        client_id="portal",
        client_secret=PORTAL_SECRET,
        scope="openid profile email offline_access",
        redirect_uri=PORTAL_CALLBACK,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
    )
    verifier = secrets.token_urlsafe(48)
    nonce = secrets.token_urlsafe(16)
    url, state = rp.create_authorization_url(
        doc["authorization_endpoint"], code_verifier=verifier, nonce=nonce
    )
    assert "code_challenge=" in url and "code_challenge_method=S256" in url

    browser = requests.Session()
    callback = browser_login(provider, browser, url)
    query = {k: v[0] for k, v in parse_qs(urlsplit(callback).query).items()}
    assert callback.startswith(PORTAL_CALLBACK + "?")
    assert query["state"] == state and query["iss"] == doc["issuer"]

    token = rp.fetch_token(doc["token_endpoint"], authorization_response=callback, code_verifier=verifier)
    claims = validate_id_token(provider, token["id_token"], "portal", nonce, token["access_token"])

    info = rp.get(doc["userinfo_endpoint"])
    assert info.status_code == 200 and info.json()["sub"] == claims["sub"]
    assert info.json()["email"] == "alice@example.com"
    assert rp.post(doc["userinfo_endpoint"]).json()["sub"] == claims["sub"]

    refreshed = rp.refresh_token(doc["token_endpoint"], refresh_token=token["refresh_token"])
    again = validate_id_token(provider, refreshed["id_token"], "portal", None)
    assert (again["sub"], again["auth_time"], again["iss"]) == (
        claims["sub"],
        claims["auth_time"],
        claims["iss"],
    )
    assert rp.get(doc["userinfo_endpoint"]).status_code == 200

    revoked = rp.revoke_token(
        doc["revocation_endpoint"], token=token["refresh_token"], token_type_hint="refresh_token"
    )
    assert revoked.status_code == 200
    with pytest.raises(Exception):  # noqa: B017, PT011 - Authlib raises OAuthError for invalid_grant
        rp.refresh_token(doc["token_endpoint"], refresh_token=token["refresh_token"])
    assert rp.get(doc["userinfo_endpoint"]).status_code == 401

    # RP-initiated logout: back to the registered URI with the state, and the session is gone.
    logout = browser.get(
        doc["end_session_endpoint"],
        allow_redirects=False,
        params={
            "id_token_hint": token["id_token"],
            "post_logout_redirect_uri": "https://portal.example.com/logged-out",
            "state": "bye",
        },
    )
    assert logout.status_code in (302, 303)
    assert logout.headers["Location"] == "https://portal.example.com/logged-out?state=bye"
    url, _ = rp.create_authorization_url(doc["authorization_endpoint"], code_verifier=verifier, prompt="none")
    resp = browser.get(url, allow_redirects=False)
    assert parse_qs(urlsplit(resp.headers["Location"]).query)["error"] == ["login_required"]


def test_authlib_client_as_a_native_app_on_a_loopback_port(provider):
    doc = provider.doc
    redirect_uri = "http://127.0.0.1:49152/callback"  # registered without a port: any port is fine
    rp = OAuth2Session(
        client_id="app",
        scope="openid email offline_access",
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method="none",
    )
    verifier = secrets.token_urlsafe(48)
    nonce = secrets.token_urlsafe(16)
    url, _state = rp.create_authorization_url(
        doc["authorization_endpoint"], code_verifier=verifier, nonce=nonce
    )
    callback = browser_login(provider, requests.Session(), url)
    token = rp.fetch_token(doc["token_endpoint"], authorization_response=callback, code_verifier=verifier)
    validate_id_token(provider, token["id_token"], "app", nonce, token["access_token"])
    first_refresh = token["refresh_token"]
    rotated = rp.refresh_token(doc["token_endpoint"], refresh_token=first_refresh)
    assert rotated["refresh_token"] != first_refresh
    assert rp.get(doc["userinfo_endpoint"]).status_code == 200
