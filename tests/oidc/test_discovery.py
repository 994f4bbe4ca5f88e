"""Discovery (OpenID Connect Discovery 1.0, RFC 8414): the Config OP profile checks."""

from __future__ import annotations

import pytest

ENDPOINT_KEYS = (
    "authorization_endpoint",
    "token_endpoint",
    "userinfo_endpoint",
    "jwks_uri",
    "revocation_endpoint",
    "introspection_endpoint",
    "end_session_endpoint",
)


def test_discovery_is_served_at_issuer_well_known_and_names_the_issuer(client):
    resp = client.get("/.well-known/openid-configuration")
    assert resp.status_code == 200
    assert resp.mimetype == "application/json"
    assert resp.json["issuer"] == "http://localhost"


def test_discovery_issuer_is_the_base_of_the_document_url_over_real_http(live_server):
    import requests

    server = live_server()
    doc = requests.get(server.url + "/.well-known/openid-configuration", timeout=5).json()
    assert doc["issuer"] == server.url
    for key in ENDPOINT_KEYS:
        assert doc[key].startswith(server.url + "/"), key
        assert requests.options(doc[key], timeout=5).status_code != 404, key


def test_every_endpoint_is_https_when_the_issuer_is_https(make_app):
    app = make_app(issuer="https://login.example.com")
    doc = app.test_client().get("/.well-known/openid-configuration").json
    assert doc["issuer"] == "https://login.example.com"
    for key in ENDPOINT_KEYS:
        assert doc[key].startswith("https://login.example.com/"), key


@pytest.mark.parametrize(
    "key, expected",
    [
        ("grant_types_supported", ["authorization_code", "refresh_token"]),
        ("code_challenge_methods_supported", ["S256"]),
        ("response_types_supported", ["code"]),
        ("response_modes_supported", ["query", "form_post"]),
        ("subject_types_supported", ["public", "pairwise"]),
        ("id_token_signing_alg_values_supported", ["RS256"]),
        ("authorization_response_iss_parameter_supported", True),
        ("backchannel_logout_supported", True),
        ("backchannel_logout_session_supported", True),
        ("request_parameter_supported", False),
        ("request_uri_parameter_supported", False),
        ("claims_parameter_supported", True),
    ],
)
def test_discovery_states_each_capability_explicitly(client, key, expected):
    assert client.get("/.well-known/openid-configuration").json[key] == expected


def test_discovery_lists_scopes_claims_and_auth_methods(client):
    doc = client.get("/.well-known/openid-configuration").json
    assert {"openid", "profile", "email", "phone", "address", "offline_access"} <= set(
        doc["scopes_supported"]
    )
    assert {"sub", "iss", "auth_time", "acr", "amr", "email", "phone_number", "name"} <= set(
        doc["claims_supported"]
    )
    assert set(doc["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
        "none",
    }
    assert "none" not in doc["token_endpoint_auth_signing_alg_values_supported"]
    assert set(doc["prompt_values_supported"]) >= {"none", "login", "consent"}
    assert doc["acr_values_supported"] == ["urn:idp:acr:low", "urn:idp:acr:substantial", "urn:idp:acr:high"]
    assert set(doc["ui_locales_supported"]) == {"fr", "nl", "de", "en"}


def test_discovery_advertises_the_configured_signing_algorithm(make_app):
    app = make_app({"keys": {"algorithm": "ES256"}})
    doc = app.test_client().get("/.well-known/openid-configuration").json
    assert doc["id_token_signing_alg_values_supported"] == ["ES256"]


def test_discovery_is_cacheable_and_readable_cross_origin(client):
    resp = client.get("/.well-known/openid-configuration")
    assert "max-age" in resp.headers["Cache-Control"]
    assert "no-store" not in resp.headers["Cache-Control"]
    assert resp.headers["Access-Control-Allow-Origin"] == "*"


# Names registered in IANA's "OAuth Authorization Server Metadata" registry (RFC 8414
# section 7.1, which includes OpenID Connect Discovery 1.0's and the logout specs' names).
REGISTERED_METADATA = {
    "issuer",
    "authorization_endpoint",
    "token_endpoint",
    "jwks_uri",
    "registration_endpoint",
    "scopes_supported",
    "response_types_supported",
    "response_modes_supported",
    "grant_types_supported",
    "token_endpoint_auth_methods_supported",
    "token_endpoint_auth_signing_alg_values_supported",
    "service_documentation",
    "ui_locales_supported",
    "op_policy_uri",
    "op_tos_uri",
    "revocation_endpoint",
    "revocation_endpoint_auth_methods_supported",
    "revocation_endpoint_auth_signing_alg_values_supported",
    "introspection_endpoint",
    "introspection_endpoint_auth_methods_supported",
    "introspection_endpoint_auth_signing_alg_values_supported",
    "code_challenge_methods_supported",
    "signed_metadata",
    "userinfo_endpoint",
    "acr_values_supported",
    "subject_types_supported",
    "id_token_signing_alg_values_supported",
    "id_token_encryption_alg_values_supported",
    "id_token_encryption_enc_values_supported",
    "userinfo_signing_alg_values_supported",
    "display_values_supported",
    "claim_types_supported",
    "claims_supported",
    "claims_locales_supported",
    "claims_parameter_supported",
    "request_parameter_supported",
    "request_uri_parameter_supported",
    "require_request_uri_registration",
    "end_session_endpoint",
    "frontchannel_logout_supported",
    "frontchannel_logout_session_supported",
    "backchannel_logout_supported",
    "backchannel_logout_session_supported",
    "authorization_response_iss_parameter_supported",
    "prompt_values_supported",
    "pushed_authorization_request_endpoint",
    "require_pushed_authorization_requests",
    "dpop_signing_alg_values_supported",
}


def test_discovery_uses_only_registered_metadata_names(client):
    doc = client.get("/.well-known/openid-configuration").json
    assert set(doc) <= REGISTERED_METADATA, set(doc) - REGISTERED_METADATA
    assert "access_token_signing_alg_values_supported" not in doc
