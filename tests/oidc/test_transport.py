"""Authlib's https check: skipped per request in development, never switched off process-wide."""

import os

from idp.oidc.transport import for_transport_check
from tests.conftest import authorize_params, exchange, get_code


def test_development_runs_the_code_flow_over_plain_http_on_a_non_loopback_host(make_app, make_user):
    app = make_app(issuer="http://idp.test")
    make_user()
    client = app.test_client()
    client.environ_base["HTTP_HOST"] = "idp.test"
    params, verifier = authorize_params()
    query = get_code(client, params)
    resp = exchange(client, query["code"], verifier)
    assert resp.status_code == 200, resp.get_json()
    assert "id_token" in resp.get_json()


def test_building_the_provider_leaves_authlibs_process_wide_switch_alone(app):
    assert "AUTHLIB_INSECURE_TRANSPORT" not in os.environ


def test_production_hands_authlib_the_real_url():
    assert for_transport_check("http://idp.example.com/token", True) == "http://idp.example.com/token"
    assert for_transport_check("http://idp.test/token", False) == "https://idp.test/token"
    assert for_transport_check("https://idp.example.com/token", False) == "https://idp.example.com/token"
