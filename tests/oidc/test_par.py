"""Pushed authorization requests (RFC 9126): authenticated, validated up front, and a
``request_uri`` that is single use, short-lived and bound to the client that pushed it."""

from __future__ import annotations

import pytest

from idp.core.hashing import digest
from tests.conftest import authorize_params, exchange, query_of
from tests.support.oidc import APP_REDIRECT, basic, clients_with, get_code, login_pages

PREFIX = "urn:ietf:params:oauth:request_uri:"


def push(client, auth=None, **extra):
    params, verifier = authorize_params(**extra)
    resp = client.post("/par", data=params, headers=basic() if auth is None else auth)
    return resp, params, verifier


def test_discovery_names_the_par_endpoint(client):
    doc = client.get("/.well-known/openid-configuration").json
    assert doc["pushed_authorization_request_endpoint"] == "http://localhost/par"
    assert doc["require_pushed_authorization_requests"] is False


def test_a_pushed_request_gets_a_short_lived_request_uri(client):
    resp, _, _ = push(client)
    assert resp.status_code == 201, resp.json
    assert resp.json["request_uri"].startswith(PREFIX) and resp.json["expires_in"] == 60
    assert resp.headers["Cache-Control"] == "no-store"
    ttl = client.application.extensions["idp.kv"].ttl("par:" + digest(resp.json["request_uri"]))
    assert 0 < ttl <= 60


def test_the_code_flow_runs_through_the_pushed_request(client, user):
    resp, params, verifier = push(client)
    query = {"client_id": "portal", "request_uri": resp.json["request_uri"]}
    result = get_code(client, query)
    assert result["state"] == params["state"] and result["iss"] == "http://localhost"
    assert exchange(client, result["code"], verifier).status_code == 200


def test_parameters_outside_the_pushed_request_are_ignored(client, user):
    resp, params, _ = push(client)
    query = {"client_id": "portal", "request_uri": resp.json["request_uri"], "state": "other"}
    assert get_code(client, query)["state"] == params["state"]


def test_a_request_uri_is_single_use(client, user):
    resp, _, _ = push(client)
    query = {"client_id": "portal", "request_uri": resp.json["request_uri"]}
    first = client.get("/authorize", query_string=query)
    assert first.status_code == 302 and "/login/" in first.location
    again = client.get("/authorize", query_string=query)
    assert again.status_code == 400 and "Location" not in again.headers


def test_a_request_uri_only_works_for_the_client_that_pushed_it(client):
    resp, _, _ = push(client)
    query = {"client_id": "app", "request_uri": resp.json["request_uri"]}
    answer = client.get("/authorize", query_string=query)
    assert answer.status_code == 400 and "Location" not in answer.headers
    mine = client.get(
        "/authorize", query_string={"client_id": "portal", "request_uri": resp.json["request_uri"]}
    )
    assert mine.status_code == 400  # burnt by the wrong client's attempt


def test_an_unknown_request_uri_is_an_error_page(client):
    answer = client.get("/authorize", query_string={"client_id": "portal", "request_uri": PREFIX + "nope"})
    assert answer.status_code == 400 and "Location" not in answer.headers


@pytest.mark.parametrize("auth", [{}, basic(secret="wrong" * 8)])
def test_the_client_must_authenticate(client, auth):
    resp, _, _ = push(client, auth=auth)
    assert resp.status_code in (400, 401) and resp.json["error"] == "invalid_client"


def test_a_public_client_may_push_with_its_client_id(client):
    params, _ = authorize_params(client_id="app", redirect_uri=APP_REDIRECT)
    resp = client.post("/par", data=params)
    assert resp.status_code == 201, resp.json


@pytest.mark.parametrize(
    "extra, error",
    [
        ({"redirect_uri": "https://evil.example/cb"}, "invalid_request"),
        ({"code_challenge": None, "code_challenge_method": None}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_type": None}, "invalid_request"),
        ({"scope": "email"}, "invalid_scope"),
        ({"request_uri": PREFIX + "x"}, "invalid_request"),
        ({"request": "e30.e30."}, "request_not_supported"),
        ({"client_id": "app"}, "invalid_request"),
        ({"login_hint": "x" * 20000}, "invalid_request"),
    ],
)
def test_the_pushed_request_is_validated_at_once(client, extra, error):
    resp, _, _ = push(client, **extra)
    assert resp.status_code == 400 and resp.json["error"] == error, resp.json


@pytest.fixture
def par_only(make_app, tmp_path, user):
    return make_app(
        clients_with({"require_pushed_authorization_requests": True}, tmp_path=tmp_path)
    ).test_client()


def test_a_client_that_must_push_is_refused_a_plain_request(par_only):
    params, _ = authorize_params()
    result = query_of(par_only.get("/authorize", query_string=params).location)
    assert result["error"] == "invalid_request" and "PAR" in result["error_description"]


def test_a_client_that_must_push_logs_in_through_par(par_only):
    resp, _, verifier = push(par_only)
    answer = par_only.get(
        "/authorize", query_string={"client_id": "portal", "request_uri": resp.json["request_uri"]}
    )
    answer = par_only.get(login_pages(par_only, answer.location).location)
    code = query_of(answer.location)["code"]
    assert exchange(par_only, code, verifier).status_code == 200
