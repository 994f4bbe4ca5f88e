"""Assurance levels: acr/amr in tokens, minimum level per client, acr_values, step-up (no silent code)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import authorize_params, base_config, query_of
from tests.support.oidc import APP_REDIRECT, decode, get_code, inject_sso, login_pages, path_of, portal_tokens

ACR = {"low": "urn:idp:acr:low", "substantial": "urn:idp:acr:substantial", "high": "urn:idp:acr:high"}


def strict_app(make_app, tmp_path, **app_extra):
    """The provider with the native app requiring a minimum level."""
    clients = base_config("http://localhost", "sqlite://", tmp_path)["clients"]
    clients[1] = {**clients[1], **app_extra}
    return make_app({"clients": clients})


@pytest.mark.parametrize(
    "level, amr",
    [("low", ["pwd"]), ("substantial", ["pwd", "sms", "mfa"]), ("high", ["hwk", "pin", "mfa"])],
)
def test_tokens_carry_the_sessions_acr_and_amr(client, user, level, amr):
    inject_sso(client.application, client, user, level=level, methods=["password"], amr=amr)
    tokens = portal_tokens(client)
    _, id_claims = decode(client, tokens["id_token"])
    _, at_claims = decode(client, tokens["access_token"])
    assert id_claims["acr"] == at_claims["acr"] == ACR[level]
    assert id_claims["amr"] == at_claims["amr"] == amr


def test_password_and_sms_login_reaches_substantial_with_mfa_amr(client, user):
    tokens = portal_tokens(client)
    _, claims = decode(client, tokens["id_token"])
    assert claims["acr"] == ACR["substantial"]
    assert {"pwd", "sms", "mfa"} <= set(claims["amr"])


def test_session_below_the_clients_minimum_level_steps_up_never_a_silent_code(make_app, make_user, tmp_path):
    app = strict_app(make_app, tmp_path, min_level="substantial")
    client = app.test_client()
    inject_sso(app, client, make_user(), level="low", amr=["pwd"])
    params, verifier = authorize_params(client_id="app", redirect_uri=APP_REDIRECT)
    resp = client.get("/authorize", query_string=params)
    assert resp.status_code == 302 and "/login/" in resp.location and "code=" not in resp.location
    assert "stronger login" in client.get(resp.location).get_data(as_text=True)
    resp = client.get(login_pages(client, resp.location).location)
    result = query_of(resp.location)
    tokens = client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": result["code"],
            "redirect_uri": APP_REDIRECT,
            "code_verifier": verifier,
            "client_id": "app",
        },
    ).json
    assert decode(client, tokens["id_token"])[1]["acr"] == ACR["substantial"]


def test_step_up_with_prompt_none_is_login_required(make_app, make_user, tmp_path):
    app = strict_app(make_app, tmp_path, min_level="substantial")
    client = app.test_client()
    inject_sso(app, client, make_user(), level="low")
    params, _ = authorize_params(client_id="app", redirect_uri=APP_REDIRECT, prompt="none")
    result = query_of(client.get("/authorize", query_string=params).location)
    assert result["error"] in ("login_required", "interaction_required") and "code" not in result


def test_session_at_the_minimum_level_gets_a_code_at_once(make_app, make_user, tmp_path):
    app = strict_app(make_app, tmp_path, min_level="substantial")
    client = app.test_client()
    inject_sso(app, client, make_user(), level="substantial", amr=["pwd", "sms", "mfa"])
    params, _ = authorize_params(client_id="app", redirect_uri=APP_REDIRECT)
    assert "code" in query_of(client.get("/authorize", query_string=params).location)


@pytest.mark.parametrize(
    "extra",
    [
        {"acr_values": ACR["substantial"]},
        {"claims": json.dumps({"id_token": {"acr": {"essential": True, "values": [ACR["substantial"]]}}})},
    ],
)
def test_acr_requested_above_the_session_steps_up(client, user, extra):
    inject_sso(client.application, client, user, level="low")
    params, _ = authorize_params(**extra)
    resp = client.get("/authorize", query_string=params)
    assert "/login/" in resp.location and "code=" not in resp.location


@pytest.mark.parametrize(
    "extra",
    [
        {"acr_values": ACR["high"]},
        {"claims": json.dumps({"id_token": {"acr": {"essential": True, "value": ACR["high"]}}})},
    ],
)
def test_acr_no_offered_method_reaches_is_unmet_authentication_requirements(client, extra):
    """Password + SMS is "substantial" and itsme/eID are off here: no chooser with nothing on it."""
    params, _ = authorize_params(**extra)
    resp = client.get("/authorize", query_string=params)
    assert resp.location.startswith("https://portal.example.com/callback?")
    result = query_of(resp.location)
    assert result["error"] == "unmet_authentication_requirements"
    assert result["state"] == params["state"] and "code" not in result


def test_acr_above_the_session_that_no_method_reaches_is_unmet_too(client, user):
    inject_sso(client.application, client, user, level="substantial", amr=["pwd", "sms", "mfa"])
    params, _ = authorize_params(acr_values=ACR["high"])
    result = query_of(client.get("/authorize", query_string=params).location)
    assert result["error"] == "unmet_authentication_requirements"


def test_acr_values_at_or_below_the_session_keep_the_session(client, user):
    inject_sso(client.application, client, user, level="substantial", amr=["pwd", "sms", "mfa"])
    tokens = portal_tokens(client, acr_values=f"{ACR['low']} {ACR['substantial']}")
    assert decode(client, tokens["id_token"])[1]["acr"] == ACR["substantial"]


def test_the_lowest_acceptable_of_several_acr_values_decides(client, user):
    inject_sso(client.application, client, user, level="substantial", amr=["pwd", "sms", "mfa"])
    params, _ = authorize_params(acr_values=f"{ACR['high']} {ACR['substantial']}")
    assert "code" in query_of(client.get("/authorize", query_string=params).location)


def test_a_client_whose_methods_are_all_switched_off_gets_no_code(make_app, make_user, tmp_path):
    app = strict_app(make_app, tmp_path, methods=["itsme"])
    client = app.test_client()
    inject_sso(app, client, make_user(), level="high")
    params, _ = authorize_params(client_id="app", redirect_uri=APP_REDIRECT)
    resp = client.get("/authorize", query_string=params)
    assert "code=" not in (resp.location or "")


def test_a_session_from_a_method_the_client_does_not_allow_logs_in_again(make_app, make_user, tmp_path):
    app = strict_app(make_app, tmp_path, methods=["password"])
    client = app.test_client()
    inject_sso(app, client, make_user(), level="high", methods=["eid"], amr=["hwk", "pin", "mfa"])
    params, _ = authorize_params(client_id="app", redirect_uri=APP_REDIRECT)
    resp = client.get("/authorize", query_string=params)
    assert "/login/" in resp.location


def test_acr_values_supported_are_the_configured_values(make_app):
    app = make_app({"assurance": {"acr_values": {"low": "1", "substantial": "2", "high": "3"}}})
    assert app.test_client().get("/.well-known/openid-configuration").json["acr_values_supported"] == [
        "1",
        "2",
        "3",
    ]


def test_get_code_helper_reaches_a_code(client, user):
    assert "code" in get_code(client, authorize_params()[0])


def test_without_acr_values_the_password_method_is_offered(client):
    params, _ = authorize_params()
    resp = client.get("/authorize", query_string=params)
    assert f'href="{path_of(resp.location)}/password"' in client.get(resp.location).get_data(as_text=True)
