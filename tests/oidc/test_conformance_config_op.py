"""The OpenID Foundation's Config OP plan (``oidcc-discovery-endpoint-verification`` and the
JWKS checks), with a production-like https issuer as the suite would see it."""

from __future__ import annotations

import pytest

ISSUER = "https://login.example.com"


@pytest.fixture
def doc_and_jwks(make_app):
    client = make_app(issuer=ISSUER).test_client()
    doc = client.get("/.well-known/openid-configuration", base_url=ISSUER)
    assert doc.status_code == 200 and doc.mimetype == "application/json"
    jwks = client.get("/jwks.json", base_url=ISSUER)
    return doc.json, jwks


def test_discovery_is_at_the_issuer_and_names_it(doc_and_jwks):
    doc, _ = doc_and_jwks
    assert doc["issuer"] == ISSUER  # fetched from issuer + /.well-known/openid-configuration


@pytest.mark.parametrize(
    "name",
    [
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "jwks_uri",
        "end_session_endpoint",
        "revocation_endpoint",
        "introspection_endpoint",
        "pushed_authorization_request_endpoint",
    ],
)
def test_every_endpoint_is_https_under_the_issuer(doc_and_jwks, name):
    doc, _ = doc_and_jwks
    assert doc[name].startswith(ISSUER + "/")


def test_required_and_recommended_metadata(doc_and_jwks):
    doc, _ = doc_and_jwks
    assert "code" in doc["response_types_supported"]
    assert "public" in doc["subject_types_supported"]
    assert "RS256" in doc["id_token_signing_alg_values_supported"]
    assert "openid" in doc["scopes_supported"]
    assert doc["grant_types_supported"] == ["authorization_code", "refresh_token"]  # listed explicitly
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert {"sub", "iss", "auth_time", "acr"} <= set(doc["claims_supported"])
    assert doc["authorization_response_iss_parameter_supported"] is True
    assert set(doc["token_endpoint_auth_methods_supported"]) >= {"client_secret_basic", "client_secret_post"}


def test_jwks_has_only_public_asymmetric_keys_with_distinct_kids(doc_and_jwks):
    _, jwks = doc_and_jwks
    assert jwks.status_code == 200
    keys = jwks.get_json(force=True)["keys"]
    assert keys
    for key in keys:
        assert key["kty"] in ("RSA", "EC") and key.get("kid")
        assert not {"d", "p", "q", "dp", "dq", "qi", "k"} & set(key), key
    kids = [k["kid"] for k in keys]
    assert len(kids) == len(set(kids))
