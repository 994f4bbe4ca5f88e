"""PKCE per client (RFC 9700 section 2.1.1): always for public clients, on by default for
confidential ones, switched off only by the operator for a confidential client; ``plain``
refused everywhere; a code issued with a challenge still needs its verifier, and a verifier
for a code issued without one is refused (downgrade protection, RFC 9700 section 4.8)."""

from __future__ import annotations

import pytest

from idp.config import load as load_settings
from tests.conftest import authorize_params, base_config, exchange, query_of
from tests.support.oidc import clients_with, get_code


@pytest.fixture
def lax_client(make_app, tmp_path, user):
    app = make_app(clients_with({"require_pkce": False}, tmp_path=tmp_path))
    return app.test_client()


def test_a_public_client_cannot_switch_pkce_off(tmp_path):
    config = base_config("http://localhost", "sqlite://", tmp_path)
    config.update(clients_with(app={"require_pkce": False}, tmp_path=tmp_path))
    with pytest.raises(Exception) as err:
        load_settings(overrides=config, instance_dir=str(tmp_path))
    assert "require_pkce" in str(err.value)


def test_confidential_clients_need_pkce_by_default(client):
    params, _ = authorize_params(code_challenge=None, code_challenge_method=None)
    result = query_of(client.get("/authorize", query_string=params).location)
    assert result["error"] == "invalid_request" and "PKCE" in result["error_description"]


def test_without_pkce_the_operator_may_let_a_confidential_client_in(lax_client):
    params, _ = authorize_params(code_challenge=None, code_challenge_method=None)
    result = get_code(lax_client, params)
    resp = exchange(lax_client, result["code"], None)
    assert resp.status_code == 200, resp.json
    assert "id_token" in resp.json


def test_plain_stays_refused_when_pkce_is_optional(lax_client):
    params, _ = authorize_params(code_challenge_method="plain")
    result = query_of(lax_client.get("/authorize", query_string=params).location)
    assert result["error"] == "invalid_request"


def test_a_code_issued_with_a_challenge_still_needs_its_verifier(lax_client):
    params, verifier = authorize_params()
    code = get_code(lax_client, params)["code"]
    resp = exchange(lax_client, code, None)
    assert resp.status_code == 400 and resp.json["error"] == "invalid_request"
    params, verifier = authorize_params()
    code = get_code(lax_client, params)["code"]
    resp = exchange(lax_client, code, "wrong" * 10)
    assert resp.status_code == 400 and resp.json["error"] == "invalid_grant"


def test_a_verifier_for_a_code_issued_without_challenge_is_refused(lax_client):
    params, verifier = authorize_params(code_challenge=None, code_challenge_method=None)
    code = get_code(lax_client, params)["code"]
    resp = exchange(lax_client, code, verifier)
    assert resp.status_code == 400 and resp.json["error"] == "invalid_request"


def test_discovery_offers_s256_only(client):
    assert client.get("/.well-known/openid-configuration").json["code_challenge_methods_supported"] == [
        "S256"
    ]
