"""Token introspection, RFC 7662: authenticated; a foreign or inactive token is only {"active": false}."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import update

from tests.conftest import PORTAL_SECRET
from tests.support.oidc import app_tokens, basic, inject_sso, portal_tokens

INACTIVE = {"active": False}


@pytest.fixture
def sso(client, user):
    inject_sso(client.application, client, user)
    return user


def introspect(client, token, headers=None, **data):
    return client.post(
        "/introspect", data={"token": token, **data}, headers=headers if headers is not None else basic()
    )


@pytest.mark.parametrize("kind", ["access_token", "refresh_token"])
def test_active_token_is_described(client, sso, kind):
    tokens = portal_tokens(client)
    resp = introspect(client, tokens[kind])
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"] == "no-store"
    body = resp.json
    assert body["active"] is True
    assert body["client_id"] == "portal" and body["sub"] == sso and body["iss"] == "http://localhost"
    assert set(body["scope"].split()) == set(tokens["scope"].split())
    assert body["exp"] > time.time()


def test_access_token_description_carries_its_jwt_claims(client, sso):
    body = introspect(client, portal_tokens(client)["access_token"], token_type_hint="access_token").json
    assert body["token_type"] == "Bearer" and body["jti"] and body["iat"]


@pytest.mark.parametrize("token", ["nope", "a.b.c", "x" * 9000])
def test_unknown_token_is_only_inactive(client, token):
    resp = introspect(client, token)
    assert resp.status_code == 200 and resp.json == INACTIVE


def test_another_clients_token_is_only_inactive(client, sso):
    tokens = portal_tokens(client)
    resp = client.post(
        "/introspect",
        data={"token": tokens["access_token"], "client_id": "partner", "client_secret": PORTAL_SECRET},
    )
    assert resp.status_code == 200 and resp.json == INACTIVE


def test_revoked_token_is_only_inactive(client, sso):
    tokens = portal_tokens(client)
    client.post("/revoke", data={"token": tokens["refresh_token"]}, headers=basic())
    assert introspect(client, tokens["refresh_token"]).json == INACTIVE
    assert introspect(client, tokens["access_token"]).json == INACTIVE


def test_expired_token_is_only_inactive(app, client, sso, monkeypatch):
    import idp.oidc.tokens
    from idp.core.storage import RefreshToken, db

    tokens = portal_tokens(client)
    with app.app_context():
        db.session.execute(update(RefreshToken).values(expires_at=int(time.time()) - 1))
        db.session.commit()
    later = int(time.time()) + app.extensions["idp.settings"].access_token_ttl + 1
    monkeypatch.setattr(
        idp.oidc.tokens, "current_time", lambda: later
    )  # the access token's exp is in the JWT
    assert introspect(client, tokens["access_token"]).json == INACTIVE
    assert introspect(client, tokens["refresh_token"]).json == INACTIVE


def test_rotated_refresh_token_is_only_inactive(client, sso):
    tokens = app_tokens(client)
    client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": "app"},
    )
    assert introspect(client, tokens["refresh_token"]).json == INACTIVE


def test_introspection_needs_client_authentication(client, sso):
    tokens = portal_tokens(client)
    for headers, data in (({}, {}), (basic("portal", "bad" * 12), {}), ({}, {"client_id": "portal"})):
        resp = introspect(client, tokens["access_token"], headers=headers, **data)
        assert resp.status_code == 401 and resp.json["error"] == "invalid_client"
        assert "active" not in resp.json


def test_public_clients_cannot_introspect(client, sso):
    tokens = app_tokens(client)
    resp = client.post("/introspect", data={"token": tokens["access_token"], "client_id": "app"})
    assert resp.status_code == 401 and "active" not in resp.json


def test_missing_token_is_invalid_request(client):
    resp = client.post("/introspect", data={}, headers=basic())
    assert resp.status_code == 400 and resp.json["error"] == "invalid_request"


def test_an_unknown_hint_is_ignored(client, sso):
    tokens = portal_tokens(client)
    resp = introspect(client, tokens["access_token"], token_type_hint="id_token")
    assert resp.status_code == 200 and resp.json["active"] is True
