"""The authorization endpoint answers errors in the order certification expects.

``prompt=none`` without a session is ``login_required`` before checks of the request's
content; a missing ``response_type`` is ``invalid_request`` (RFC 6749 section 4.1.2.1);
an ``acr_values`` no offered method reaches is ``unmet_authentication_requirements``
(OpenID Connect Core 3.1.2.6 via the Extended Authentication Profile); an error
redirect never echoes an unbounded parameter value.
"""

from __future__ import annotations

import pytest

from tests.conftest import authorize_params, query_of
from tests.support.oidc import inject_sso

ISSUER = "http://localhost"


def authorize(client, **extra):
    params, _ = authorize_params(**extra)
    resp = client.get("/authorize", query_string=params)
    return resp, params


@pytest.mark.parametrize(
    "extra",
    [
        {"code_challenge": None, "code_challenge_method": None},  # PKCE missing
        {"acr_values": "urn:idp:acr:high"},  # unreachable level
        {"scope": "openid unknown", "claims": '{"userinfo": {"email": null}}'},
        {"max_age": "0"},
        {"client_id": "partner", "redirect_uri": "https://partner.example.net/cb"},  # consent
    ],
)
def test_prompt_none_without_session_is_login_required_first(client, extra):
    resp, params = authorize(client, prompt="none", **extra)
    result = query_of(resp.location)
    assert result["error"] == "login_required"
    assert result["state"] == params["state"] and result["iss"] == ISSUER


def test_prompt_none_still_never_redirects_to_an_unregistered_uri(client):
    resp, _ = authorize(client, prompt="none", redirect_uri="https://evil.example/cb")
    assert resp.status_code == 400 and "Location" not in resp.headers


def test_missing_response_type_is_invalid_request(client):
    resp, params = authorize(client, response_type=None)
    result = query_of(resp.location)
    assert result["error"] == "invalid_request" and result["state"] == params["state"]


def test_unknown_response_type_is_unsupported_response_type(client):
    result = query_of(authorize(client, response_type="token")[0].location)
    assert result["error"] == "unsupported_response_type"


def test_unreachable_acr_values_is_unmet_authentication_requirements(client):
    result = query_of(authorize(client, acr_values="urn:idp:acr:high")[0].location)
    assert result["error"] == "unmet_authentication_requirements"


def test_reachable_acr_values_still_leads_to_the_login_page(client):
    resp, _ = authorize(client, acr_values="urn:idp:acr:substantial")
    assert resp.status_code == 302 and "/login/" in resp.location


def test_prompt_none_with_a_session_goes_on_to_the_other_checks(client, user):
    inject_sso(client.application, client, user)
    result = query_of(
        authorize(client, prompt="none", code_challenge=None, code_challenge_method=None)[0].location
    )
    assert result["error"] == "invalid_request"


@pytest.mark.parametrize(
    "name",
    ["response_type", "code_challenge_method", "scope", "max_age", "claims", "id_token_hint", "prompt"],
)
def test_a_huge_bad_value_is_not_echoed_back(client, name):
    # Just under the input layer's bound on one value (idp.core.inputs.MAX_VALUE): the RP is told.
    resp, _ = authorize(client, **{name: "x" * 15_000})
    assert resp.status_code == 302
    assert len(resp.headers["Location"]) < 1000
    assert query_of(resp.location)["error"]


def test_a_value_past_the_input_bound_is_refused_without_an_echo(client):
    resp, _ = authorize(client, prompt="x" * 150_000)
    assert resp.status_code == 400
    assert "x" * 100 not in resp.get_data(as_text=True) and "Location" not in resp.headers
