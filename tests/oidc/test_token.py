"""The token endpoint: RFC 6749 section 3.2/4.1.3/5, RFC 7636, RFC 7523, RFC 9068, OpenID Connect Core 3.1.3.

Client authentication (``client_secret_basic``, ``client_secret_post``,
``private_key_jwt``, ``none``), codes single use and bound to client,
redirect URI and PKCE verifier, the ID token and the JWT access token.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey
from sqlalchemy import update
from werkzeug.datastructures import MultiDict

from tests.conftest import PORTAL_SECRET, authorize_params, base_config, exchange, make_user_in
from tests.support.oidc import (
    APP_REDIRECT,
    PARTNER_REDIRECT,
    PORTAL_REDIRECT,
    basic,
    code_for,
    decode,
    get_code,
    inject_sso,
    portal_tokens,
    refresh,
    userinfo,
)

ISSUER = "http://localhost"


def post_code(client, code, verifier, redirect_uri=PORTAL_REDIRECT, headers=None, **data):
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
    }
    form.update(data)
    return client.post("/token", data={k: v for k, v in form.items() if v is not None}, headers=headers or {})


def assert_no_store(resp):
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers.get("Pragma") == "no-cache"


# ---------------------------------------------------------------------------
# Successful exchange: the token response, the ID token, the access token
# ---------------------------------------------------------------------------


def test_code_exchange_returns_bearer_tokens_and_no_store(client, user):
    code, verifier, _ = code_for(client)
    resp = exchange(client, code, verifier)
    assert resp.status_code == 200
    assert_no_store(resp)
    body = resp.json
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 600
    assert {"access_token", "id_token", "refresh_token", "scope"} <= set(body)
    assert len(base64.urlsafe_b64decode(body["refresh_token"] + "==")) * 8 >= 128


def test_id_token_has_every_required_claim(client, user):
    tokens = portal_tokens(client)
    params = tokens["_params"]
    header, claims = decode(client, tokens["id_token"], typ="JWT")
    now = int(time.time())
    assert header["alg"] == "RS256" and header["kid"]
    assert claims["iss"] == ISSUER
    assert claims["sub"] == user
    assert claims["aud"] == "portal" and claims["azp"] == "portal"
    assert claims["nonce"] == params["nonce"]
    assert now - 5 <= claims["iat"] <= now + 1 < claims["exp"]
    assert claims["auth_time"] <= now
    assert claims["acr"] in ("urn:idp:acr:low", "urn:idp:acr:substantial") and "pwd" in claims["amr"]
    assert claims["sid"]
    digest = hashlib.sha256(tokens["access_token"].encode()).digest()
    assert claims["at_hash"] == base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


def test_id_token_without_nonce_in_the_request_has_no_nonce(client, user):
    params, verifier = authorize_params(nonce=None)
    result = get_code(client, params)
    tokens = exchange(client, result["code"], verifier).json
    assert "nonce" not in decode(client, tokens["id_token"])[1]


def test_access_token_is_an_rfc9068_jwt(client, user):
    tokens = portal_tokens(client)
    header, claims = decode(client, tokens["access_token"])
    assert header["typ"] == "at+jwt"
    assert {"iss", "exp", "aud", "sub", "client_id", "iat", "jti", "scope"} <= set(claims)
    assert claims["iss"] == ISSUER and claims["sub"] == user and claims["client_id"] == "portal"
    assert claims["scope"] == tokens["scope"]
    assert claims["auth_time"] and claims["acr"] and "pwd" in claims["amr"]


# ---------------------------------------------------------------------------
# Client authentication
# ---------------------------------------------------------------------------


def test_client_secret_post_authenticates_a_client_registered_for_it(client, user):
    inject_sso(client.application, client, user)
    client.application.extensions["idp.kv"]  # noqa: B018 - same browser session for the consent below
    params, verifier = authorize_params(client_id="partner", redirect_uri=PARTNER_REDIRECT)
    from tests.support.oidc import path_of

    resp = client.get("/authorize", query_string=params)
    assert "/consent/" in resp.location
    from tests.conftest import csrf_from, query_of

    page = client.get(path_of(resp.location))
    resp = client.post(
        path_of(resp.location),
        data={"csrf_token": csrf_from(page.get_data(as_text=True)), "decision": "allow"},
    )
    resp = client.get(resp.location)
    code = query_of(resp.location)["code"]
    resp = post_code(
        client,
        code,
        verifier,
        redirect_uri=PARTNER_REDIRECT,
        client_id="partner",
        client_secret=PORTAL_SECRET,
    )
    assert resp.status_code == 200, resp.json


@pytest.mark.parametrize(
    "headers, data, error",
    [
        (basic("portal", "wrong" + PORTAL_SECRET), {}, "invalid_client"),
        (basic("portal", ""), {}, "invalid_client"),
        (basic("nobody", PORTAL_SECRET), {}, "invalid_client"),
        (
            {},
            {"client_id": "portal", "client_secret": PORTAL_SECRET},
            "invalid_client",
        ),  # registered for basic
        ({}, {"client_id": "portal"}, "invalid_client"),  # a confidential client must authenticate
        ({}, {}, "invalid_client"),
        ({"Authorization": "Basic !!!"}, {}, "invalid_client"),
        ({"Authorization": "Bearer " + PORTAL_SECRET}, {}, "invalid_client"),
    ],
)
def test_failed_client_authentication_is_401_invalid_client(client, user, headers, data, error):
    code, verifier, _ = code_for(client)
    resp = post_code(client, code, verifier, headers=headers, **data)
    assert resp.status_code == 401, resp.json
    assert resp.json["error"] == error
    assert_no_store(resp)
    if "Authorization" in headers and headers["Authorization"].startswith("Basic"):
        assert resp.headers["WWW-Authenticate"].startswith("Basic")


def test_wrong_secret_with_client_secret_post_is_401(client, user):
    resp = post_code(
        client,
        "x",
        "y",
        redirect_uri=PARTNER_REDIRECT,
        client_id="partner",
        client_secret="not the secret at all, not at all, not at all",
    )
    assert resp.status_code == 401 and resp.json["error"] == "invalid_client"


def test_public_client_authenticates_with_none(client, user):
    code, verifier, _ = code_for(client, client_id="app", redirect_uri=APP_REDIRECT)
    resp = post_code(client, code, verifier, redirect_uri=APP_REDIRECT, client_id="app")
    assert resp.status_code == 200


def test_public_client_cannot_pretend_to_have_a_secret(client, user):
    code, verifier, _ = code_for(client, client_id="app", redirect_uri=APP_REDIRECT)
    resp = post_code(client, code, verifier, redirect_uri=APP_REDIRECT, headers=basic("app", "anything"))
    assert resp.status_code == 401


# -- private_key_jwt (RFC 7523 section 2.2) ---------------------------------


@pytest.fixture
def pkj(make_app, make_user, tmp_path):
    """A provider with a client that authenticates with private_key_jwt."""
    make_user()
    key = RSAKey.generate_key(2048, parameters={"kid": "rp-1", "alg": "RS256", "use": "sig"})
    jwks = tmp_path / "rp-jwks.json"
    jwks.write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
    clients = base_config(ISSUER, "sqlite://", tmp_path)["clients"] + [
        {
            "client_id": "pkj",
            "name": "Key client",
            "type": "confidential",
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks_file": str(jwks),
            "redirect_uris": ["https://pkj.example.com/cb"],
            "first_party": True,
        }
    ]
    app = make_app({"clients": clients})
    return app, key


def assertion(key, **overrides):
    now = int(time.time())
    claims = {
        "iss": "pkj",
        "sub": "pkj",
        "aud": ISSUER + "/token",
        "jti": secrets.token_urlsafe(8),
        "iat": now,
        "exp": now + 60,
    }
    claims.update(overrides)
    return jwt.encode(
        {"alg": "RS256", "kid": key.kid}, {k: v for k, v in claims.items() if v is not None}, key
    )


def pkj_exchange(client, key, assertion_value):
    code, verifier, _ = code_for(client, client_id="pkj", redirect_uri="https://pkj.example.com/cb")
    return post_code(
        client,
        code,
        verifier,
        redirect_uri="https://pkj.example.com/cb",
        client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        client_assertion=assertion_value,
    )


@pytest.mark.parametrize("aud", [ISSUER + "/token", ISSUER])
def test_private_key_jwt_authenticates_the_client(pkj, aud):
    app, key = pkj
    resp = pkj_exchange(app.test_client(), key, assertion(key, aud=aud))
    assert resp.status_code == 200, resp.json


def test_private_key_jwt_assertion_cannot_be_replayed(pkj):
    app, key = pkj
    client = app.test_client()
    value = assertion(key)
    assert pkj_exchange(client, key, value).status_code == 200
    resp = pkj_exchange(client, key, value)
    assert resp.status_code in (400, 401) and resp.json["error"] == "invalid_client"


@pytest.mark.parametrize(
    "case",
    [
        "wrong_key",
        "wrong_aud",
        "expired",
        "no_jti",
        "iss_differs",
        "alg_none",
        "hs256",
        "garbage",
        "other_client",
    ],
)
def test_private_key_jwt_bad_assertion_is_invalid_client(pkj, case):
    app, key = pkj
    now = int(time.time())
    other = RSAKey.generate_key(2048, parameters={"kid": "rp-1"})
    values = {
        "wrong_key": lambda: assertion(other),
        "wrong_aud": lambda: assertion(key, aud="https://elsewhere.example/token"),
        "expired": lambda: assertion(key, iat=now - 3600, exp=now - 1800),
        "no_jti": lambda: assertion(key, jti=None),
        "iss_differs": lambda: assertion(key, iss="portal"),
        "alg_none": lambda: (
            base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
            + "."
            + base64.urlsafe_b64encode(
                json.dumps({"iss": "pkj", "sub": "pkj", "aud": ISSUER, "exp": now + 60, "jti": "z"}).encode()
            )
            .rstrip(b"=")
            .decode()
            + "."
        ),
        "hs256": lambda: jwt.encode(
            {"alg": "HS256"},
            {"iss": "pkj", "sub": "pkj", "aud": ISSUER, "exp": now + 60, "jti": "h"},
            OctKey.import_key("a-shared-secret-of-enough-length-1234567890"),
            algorithms=["HS256"],
        ),
        "garbage": lambda: "not-a-jwt",
        "other_client": lambda: assertion(key, iss="portal", sub="portal"),
    }
    resp = pkj_exchange(app.test_client(), key, values[case]())
    assert resp.status_code in (400, 401), resp.json
    assert resp.json["error"] == "invalid_client"


def test_private_key_jwt_client_cannot_use_a_secret(pkj):
    app, _ = pkj
    client = app.test_client()
    code, verifier, _ = code_for(client, client_id="pkj", redirect_uri="https://pkj.example.com/cb")
    resp = post_code(
        client, code, verifier, redirect_uri="https://pkj.example.com/cb", headers=basic("pkj", "x" * 40)
    )
    assert resp.status_code == 401


# ---------------------------------------------------------------------------
# The code: bound to client, redirect URI and verifier; single use; short-lived
# ---------------------------------------------------------------------------


def test_code_of_one_client_is_refused_to_another(client, user):
    code, verifier, _ = code_for(client, client_id="app", redirect_uri=APP_REDIRECT)
    resp = post_code(client, code, verifier, redirect_uri=APP_REDIRECT, headers=basic())
    assert resp.status_code == 400 and resp.json["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "redirect_uri", [None, "https://portal.example.com/callback/", "http://127.0.0.1:8123/callback"]
)
def test_code_is_bound_to_its_redirect_uri(client, user, redirect_uri):
    code, verifier, _ = code_for(client)
    resp = post_code(client, code, verifier, redirect_uri=redirect_uri, headers=basic())
    assert resp.status_code == 400 and resp.json["error"] == "invalid_grant"


@pytest.mark.parametrize("verifier", ["wrong-" + "v" * 50, "", None, "x" * 200])
def test_code_is_bound_to_its_pkce_verifier(client, user, verifier):
    code, _, _ = code_for(client)
    resp = post_code(client, code, verifier, headers=basic())
    assert resp.status_code == 400
    assert resp.json["error"] in ("invalid_grant", "invalid_request")
    assert "access_token" not in resp.json


def test_code_is_bound_to_its_pkce_verifier_for_public_clients(client, user):
    code, _, _ = code_for(client, client_id="app", redirect_uri=APP_REDIRECT)
    resp = post_code(client, code, "w" * 50, redirect_uri=APP_REDIRECT, client_id="app")
    assert resp.status_code == 400 and resp.json["error"] == "invalid_grant"


def test_expired_code_is_invalid_grant(app, client, user):
    from idp.core.storage import AuthorizationCode, db
    from idp.oidc.server import digest

    code, verifier, _ = code_for(client)
    with app.app_context():
        row = db.session.get(AuthorizationCode, digest(code))
        assert row.expires_at - int(time.time()) <= 60  # short-lived: 60 s by default
        db.session.execute(
            update(AuthorizationCode)
            .where(AuthorizationCode.code_hash == row.code_hash)
            .values(expires_at=int(time.time()) - 1)
        )
        db.session.commit()
    resp = exchange(client, code, verifier)
    assert resp.status_code == 400 and resp.json["error"] == "invalid_grant"


def test_codes_are_stored_only_as_digests(app, client, user):
    from idp.core.storage import AuthorizationCode, db

    code, _, _ = code_for(client)
    with app.app_context():
        stored = [r.code_hash for r in db.session.query(AuthorizationCode).all()]
    assert code not in stored


def test_replayed_code_is_invalid_grant_and_revokes_what_it_issued(client, user):
    code, verifier, _ = code_for(client)
    first = exchange(client, code, verifier)
    assert first.status_code == 200
    assert userinfo(client, first.json["access_token"]).status_code == 200
    second = exchange(client, code, verifier)
    assert second.status_code == 400 and second.json["error"] == "invalid_grant"
    assert_no_store(second)
    resp = userinfo(client, first.json["access_token"])
    assert resp.status_code == 401 and 'error="invalid_token"' in resp.headers["WWW-Authenticate"]
    again = refresh(client, first.json["refresh_token"], auth=basic())
    assert again.status_code == 400 and again.json["error"] == "invalid_grant"


def test_code_redeemed_with_a_wrong_verifier_cannot_be_redeemed_afterwards(client, user):
    """A code is consumed by any redemption attempt: an attacker's failed try burns it."""
    code, verifier, _ = code_for(client)
    assert post_code(client, code, "w" * 50, headers=basic()).status_code == 400
    assert exchange(client, code, verifier).status_code == 400


def _refresh_rows(app) -> int:
    from sqlalchemy import func, select

    from idp.core.storage import RefreshToken, db

    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(RefreshToken))


def _disable_account(app, _client):
    from idp.core.storage import Account, db

    with app.app_context():
        db.session.execute(update(Account).values(status="disabled"))
        db.session.commit()


def _revoke_grants(app, _client):
    from idp.core.storage import Grant, db

    with app.app_context():
        db.session.execute(update(Grant).values(revoked_at=int(time.time()), revoked_reason="logout"))
        db.session.commit()


def _undo_spoils(app):
    from idp.core.storage import Account, Grant, db

    with app.app_context():
        db.session.execute(update(Account).values(status="active"))
        db.session.execute(update(Grant).values(revoked_at=None, revoked_reason=None))
        db.session.commit()


@pytest.mark.parametrize(
    "spoil, verifier_ok, redirect_uri",
    [
        (None, False, PORTAL_REDIRECT),  # wrong PKCE verifier
        (None, True, "https://portal.example.com/other"),  # wrong redirect URI
        (_disable_account, True, PORTAL_REDIRECT),  # account disabled since the login
        (_revoke_grants, True, PORTAL_REDIRECT),  # logged out since the login
    ],
)
def test_refused_redemption_uses_the_code_up_and_leaves_no_refresh_token(
    app, client, user, spoil, verifier_ok, redirect_uri
):
    """The claim stores the refresh token with it; a refused request must not leave it behind."""
    code, verifier, _ = code_for(client)
    if spoil:
        spoil(app, client)
    resp = post_code(client, code, verifier if verifier_ok else "w" * 50, redirect_uri, headers=basic())
    assert resp.status_code == 400 and resp.json["error"] == "invalid_grant"
    assert "refresh_token" not in resp.json
    assert _refresh_rows(app) == 0
    _undo_spoils(app)
    assert exchange(client, code, verifier).status_code == 400  # used up, however good the retry


def test_redemption_stores_exactly_the_refresh_token_it_hands_out(app, client, user):
    from idp.core.storage import RefreshToken, db
    from idp.oidc.server import digest

    body = portal_tokens(client)
    with app.app_context():
        rows = db.session.query(RefreshToken).all()
    assert [r.token_hash for r in rows] == [digest(body["refresh_token"])]
    assert rows[0].expires_at - rows[0].created_at == 30 * 86400  # refresh_token_ttl default


def test_client_without_refresh_grant_gets_no_refresh_token_and_none_is_stored(make_app, tmp_path):
    clients = base_config("http://localhost", "sqlite://", tmp_path)["clients"]
    clients[0]["grant_types"] = ["authorization_code"]
    app = make_app({"clients": clients})
    client = app.test_client()
    make_user_in(app)
    code, verifier, _ = code_for(client)
    resp = exchange(client, code, verifier)
    assert resp.status_code == 200 and "refresh_token" not in resp.json
    assert _refresh_rows(app) == 0


# ---------------------------------------------------------------------------
# Request shape: never a 500, RFC 6749 section 5.2 errors
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, error",
    [
        ({"grant_type": "password", "username": "alice", "password": "x"}, "unsupported_grant_type"),
        ({"grant_type": "client_credentials"}, "unsupported_grant_type"),
        ({"grant_type": "urn:ietf:params:oauth:grant-type:device_code"}, "unsupported_grant_type"),
        ({"grant_type": "implicit"}, "unsupported_grant_type"),
        ({}, "unsupported_grant_type"),
        ({"grant_type": "authorization_code"}, "invalid_request"),
        ({"grant_type": "authorization_code", "code": "", "redirect_uri": PORTAL_REDIRECT}, "invalid_grant"),
        (
            {
                "grant_type": "authorization_code",
                "code": "nope",
                "redirect_uri": PORTAL_REDIRECT,
                "code_verifier": "v" * 50,
            },
            "invalid_grant",
        ),
        (
            {
                "grant_type": "authorization_code",
                "code": "x" * 5000,
                "redirect_uri": PORTAL_REDIRECT,
                "code_verifier": "v" * 50,
            },
            "invalid_grant",
        ),
        ({"grant_type": "refresh_token"}, "invalid_request"),
        ({"grant_type": "refresh_token", "refresh_token": "nope"}, "invalid_grant"),
        ({"grant_type": "refresh_token", "refresh_token": "a.b.c"}, "invalid_grant"),
    ],
)
def test_bad_token_requests_get_rfc6749_errors(client, data, error):
    resp = client.post("/token", data=data, headers=basic())
    assert resp.status_code == 400, resp.json
    assert resp.json["error"] == error
    assert_no_store(resp)


def test_token_endpoint_refuses_get(client):
    resp = client.get("/token", query_string={"grant_type": "authorization_code"})
    assert resp.status_code == 405


def test_token_endpoint_with_json_body_is_an_error_not_a_crash(client):
    resp = client.post("/token", json={"grant_type": "authorization_code"}, headers=basic())
    assert 400 <= resp.status_code < 500


def test_duplicated_code_parameter_is_refused(client, user):
    code, verifier, _ = code_for(client)
    resp = client.post(
        "/token",
        headers=basic(),
        data=MultiDict(
            [
                ("grant_type", "authorization_code"),
                ("code", code),
                ("code", "other"),
                ("redirect_uri", PORTAL_REDIRECT),
                ("code_verifier", verifier),
            ]
        ),
    )
    assert resp.status_code == 400 and resp.json["error"] == "invalid_request"
