"""Token revocation, RFC 7009."""

from __future__ import annotations

import pytest

from tests.conftest import PORTAL_SECRET
from tests.support.oidc import app_tokens, basic, inject_sso, portal_tokens, refresh, userinfo


@pytest.fixture
def sso(client, user):
    inject_sso(client.application, client, user)
    return user


def revoke(client, token, hint=None, headers=None, **data):
    form = {"token": token, **data}
    if hint:
        form["token_type_hint"] = hint
    return client.post("/revoke", data=form, headers=headers if headers is not None else basic())


@pytest.mark.parametrize("hint", [None, "refresh_token", "access_token"])
def test_revoking_a_refresh_token_ends_its_grant(client, sso, hint):
    tokens = portal_tokens(client)
    resp = revoke(client, tokens["refresh_token"], hint)
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"] == "no-store"
    assert refresh(client, tokens["refresh_token"], auth=basic()).json["error"] == "invalid_grant"
    assert userinfo(client, tokens["access_token"]).status_code == 401


@pytest.mark.parametrize("hint", [None, "access_token", "refresh_token"])
def test_revoking_an_access_token_stops_only_that_token(client, sso, hint):
    tokens = portal_tokens(client)
    assert revoke(client, tokens["access_token"], hint).status_code == 200
    assert userinfo(client, tokens["access_token"]).status_code == 401
    again = refresh(client, tokens["refresh_token"], auth=basic())
    assert again.status_code == 200
    assert userinfo(client, again.json["access_token"]).status_code == 200


@pytest.mark.parametrize("token", ["unknown", "a.b.c", "x" * 10000, ""])
def test_unknown_token_is_answered_200(client, token):
    assert revoke(client, token).status_code == 200


def test_revoking_twice_is_200(client, sso):
    tokens = portal_tokens(client)
    assert revoke(client, tokens["refresh_token"]).status_code == 200
    assert revoke(client, tokens["refresh_token"]).status_code == 200


def test_public_client_revokes_with_its_client_id(client, sso):
    tokens = app_tokens(client)
    resp = client.post("/revoke", data={"token": tokens["refresh_token"], "client_id": "app"})
    assert resp.status_code == 200
    assert refresh(client, tokens["refresh_token"]).json["error"] == "invalid_grant"


def test_revocation_needs_client_authentication(client, sso):
    tokens = portal_tokens(client)
    for headers, data in (({}, {}), (basic("portal", "wrong" * 10), {}), ({}, {"client_id": "portal"})):
        resp = revoke(client, tokens["refresh_token"], headers=headers, **data)
        assert resp.status_code == 401 and resp.json["error"] == "invalid_client"
    assert refresh(client, tokens["refresh_token"], auth=basic()).status_code == 200


def test_a_client_cannot_revoke_another_clients_token(client, sso):
    tokens = portal_tokens(client)
    resp = client.post(
        "/revoke",
        data={"token": tokens["refresh_token"], "client_id": "partner", "client_secret": PORTAL_SECRET},
    )
    assert resp.status_code in (200, 400)
    assert refresh(client, tokens["refresh_token"], auth=basic()).status_code == 200
    app = app_tokens(client)
    client.post("/revoke", data={"token": app["access_token"]}, headers=basic())
    assert userinfo(client, app["access_token"]).status_code == 200


def test_missing_token_is_invalid_request(client):
    resp = client.post("/revoke", data={}, headers=basic())
    assert resp.status_code == 400 and resp.json["error"] == "invalid_request"


@pytest.mark.parametrize("hint", ["id_token", "banana"])
def test_an_unknown_hint_is_ignored(client, sso, hint):
    """RFC 7009 section 2.1: the server extends its search; the hint does not fail the request."""
    tokens = portal_tokens(client)
    assert revoke(client, tokens["refresh_token"], hint=hint).status_code == 200
    assert refresh(client, tokens["refresh_token"], auth=basic()).json["error"] == "invalid_grant"


def test_revocation_refuses_get(client):
    assert client.get("/revoke", query_string={"token": "x"}).status_code == 405
