"""The ``fapi2`` client profile: the FAPI 2.0 Security Profile's rules from one setting —
PAR required, PKCE S256, ``private_key_jwt`` with ``aud`` = the issuer, DPoP-bound
tokens, codes valid at most 60 s, ``iss`` in authorization responses."""

from __future__ import annotations

import json
import secrets
import time

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from idp.config import load as load_settings
from tests.conftest import authorize_params, base_config, query_of
from tests.support.dpop import DPoPKey
from tests.support.oidc import get_code, unverified

ISSUER = "http://localhost"
REDIRECT = "https://fapi.example.com/cb"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def fapi_client(tmp_path, key: ECKey, **extra) -> dict:
    jwks = tmp_path / "fapi-jwks.json"
    jwks.write_text(json.dumps({"keys": [{**key.as_dict(private=False), "kid": "k1", "use": "sig"}]}))
    return {
        "client_id": "fapi",
        "name": "Portal at FAPI 2.0",
        "type": "confidential",
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks_file": str(jwks),
        "redirect_uris": [REDIRECT],
        "first_party": True,
        "profile": "fapi2",
        **extra,
    }


def assertion(key: ECKey, aud=ISSUER) -> dict:
    now = int(time.time())
    claims = {
        "iss": "fapi",
        "sub": "fapi",
        "aud": aud,
        "iat": now,
        "exp": now + 60,
        "jti": secrets.token_urlsafe(12),
    }
    token = jwt.encode({"alg": "ES256", "kid": "k1"}, claims, key)
    return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": token}


@pytest.fixture
def client_key():
    return ECKey.generate_key("P-256")


@pytest.fixture
def fapi(make_app, tmp_path, client_key, user):
    clients = base_config(ISSUER, "sqlite://", tmp_path)["clients"] + [fapi_client(tmp_path, client_key)]
    return make_app({"clients": clients}).test_client()


def push(client, key, dpop: DPoPKey, aud=ISSUER, **extra):
    params, verifier = authorize_params(client_id="fapi", redirect_uri=REDIRECT, **extra)
    resp = dpop.post(client, "/par", {**params, **assertion(key, aud)})
    return resp, verifier


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"token_endpoint_auth_method": "client_secret_basic", "client_secret": "x" * 40}, "private_key_jwt"),
        ({"require_pkce": False}, "require_pkce"),
        ({"require_dpop": False}, "require_dpop"),
        ({"require_pushed_authorization_requests": False}, "require_pushed_authorization_requests"),
    ],
)
def test_a_fapi2_client_cannot_be_configured_below_the_profile(tmp_path, client_key, extra, message):
    config = base_config(ISSUER, "sqlite://", tmp_path)
    config["clients"] = [fapi_client(tmp_path, client_key, **extra)]
    with pytest.raises(Exception) as err:
        load_settings(overrides=config, instance_dir=str(tmp_path))
    assert message in str(err.value)


def test_a_fapi2_client_must_push_its_request(fapi):
    params, _ = authorize_params(client_id="fapi", redirect_uri=REDIRECT)
    result = query_of(fapi.get("/authorize", query_string=params).location)
    assert result["error"] == "invalid_request" and result["iss"] == ISSUER


def test_the_client_assertion_audience_must_be_the_issuer_as_a_string(fapi, client_key):
    for aud in (ISSUER + "/token", [ISSUER], ISSUER + "/par"):
        resp, _ = push(fapi, client_key, DPoPKey(), aud=aud)
        assert resp.status_code in (400, 401) and resp.json["error"] == "invalid_client", aud


def test_a_fapi2_login_gives_dpop_bound_tokens_and_a_60_second_code(fapi, client_key):
    from idp.core.storage import AuthorizationCode, db

    dpop = DPoPKey()
    pushed, verifier = push(fapi, client_key, dpop)
    assert pushed.status_code == 201, pushed.json
    result = get_code(fapi, {"client_id": "fapi", "request_uri": pushed.json["request_uri"]})
    assert result["iss"] == ISSUER
    with fapi.application.app_context():
        row = db.session.query(AuthorizationCode).one()
        assert row.expires_at - int(time.time()) <= 60
    data = {"grant_type": "authorization_code", "code": result["code"], "redirect_uri": REDIRECT}
    data["code_verifier"] = verifier
    without = fapi.post("/token", data={**data, **assertion(client_key)})
    assert without.status_code == 400 and without.json["error"] == "invalid_request"  # no DPoP: refused
    pushed, verifier = push(fapi, client_key, dpop)
    result = get_code(fapi, {"client_id": "fapi", "request_uri": pushed.json["request_uri"]})
    data.update(code=result["code"], code_verifier=verifier)
    resp = dpop.post(fapi, "/token", {**data, **assertion(client_key)})
    assert resp.status_code == 200, resp.json
    assert resp.json["token_type"] == "DPoP"
    assert unverified(resp.json["access_token"])[1]["cnf"] == {"jkt": dpop.jkt}


def test_a_fapi2_request_without_pkce_is_refused_at_par(fapi, client_key):
    resp, _ = push(fapi, client_key, DPoPKey(), code_challenge=None, code_challenge_method=None)
    assert resp.status_code == 400 and resp.json["error"] == "invalid_request"
