"""Refresh tokens: RFC 6749 section 6, OpenID Connect Core 12, RFC 9700 section 4.14.

Public clients' refresh tokens rotate and a reused one revokes the whole
family; confidential clients' refresh tokens are bound to the client; a
refreshed ID token keeps iss, sub, aud and auth_time.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import update

from tests.conftest import PORTAL_SECRET
from tests.support.oidc import app_tokens, basic, decode, portal_tokens, refresh, userinfo


def assert_invalid_grant(resp):
    assert resp.status_code == 400, resp.json
    assert resp.json["error"] == "invalid_grant"
    assert resp.headers["Cache-Control"] == "no-store"


def test_public_client_refresh_rotates_the_refresh_token(client, user):
    tokens = app_tokens(client)
    resp = refresh(client, tokens["refresh_token"])
    assert resp.status_code == 200, resp.json
    assert resp.headers["Cache-Control"] == "no-store"
    new = resp.json
    assert new["refresh_token"] != tokens["refresh_token"]
    assert userinfo(client, new["access_token"]).status_code == 200
    third = refresh(client, new["refresh_token"])
    assert third.status_code == 200 and third.json["refresh_token"] not in (
        tokens["refresh_token"],
        new["refresh_token"],
    )


def test_public_client_reusing_a_rotated_refresh_token_revokes_the_family(client, user):
    tokens = app_tokens(client)
    new = refresh(client, tokens["refresh_token"]).json
    assert_invalid_grant(refresh(client, tokens["refresh_token"]))
    assert_invalid_grant(refresh(client, new["refresh_token"]))
    for access in (tokens["access_token"], new["access_token"]):
        assert userinfo(client, access).status_code == 401


def test_refused_scope_does_not_use_up_a_public_clients_refresh_token(client, user):
    tokens = app_tokens(client, scope="openid email")
    resp = client.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": "app",
            "scope": "openid email address",
        },
    )
    assert resp.status_code == 400 and resp.json["error"] == "invalid_scope"
    assert refresh(client, tokens["refresh_token"]).status_code == 200


def test_confidential_client_refresh_token_is_bound_to_the_client_and_not_rotated(client, user):
    tokens = portal_tokens(client)
    first = refresh(client, tokens["refresh_token"], auth=basic())
    assert first.status_code == 200, first.json
    assert "refresh_token" not in first.json or first.json["refresh_token"] == tokens["refresh_token"]
    assert refresh(client, tokens["refresh_token"], auth=basic()).status_code == 200


def test_another_clients_refresh_token_is_invalid_grant(client, user):
    portal = portal_tokens(client)
    app = app_tokens(client)
    resp = client.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": portal["refresh_token"],
            "client_id": "partner",
            "client_secret": PORTAL_SECRET,
        },
    )
    assert_invalid_grant(resp)
    assert_invalid_grant(refresh(client, portal["refresh_token"], client_id="app"))
    assert_invalid_grant(refresh(client, app["refresh_token"], auth=basic()))
    # the rightful owner still can
    assert refresh(client, portal["refresh_token"], auth=basic()).status_code == 200
    assert refresh(client, app["refresh_token"]).status_code == 200


@pytest.mark.parametrize("flow", ["portal", "app"])
def test_refreshed_id_token_keeps_iss_sub_aud_and_auth_time(client, user, flow):
    if flow == "portal":
        tokens = portal_tokens(client)
        resp = refresh(client, tokens["refresh_token"], auth=basic())
    else:
        tokens = app_tokens(client)
        resp = refresh(client, tokens["refresh_token"])
    _, before = decode(client, tokens["id_token"])
    _, after = decode(client, resp.json["id_token"])
    for claim in ("iss", "sub", "aud", "auth_time", "azp", "acr"):
        assert after[claim] == before[claim], claim
    assert after["iat"] >= before["iat"]
    assert "nonce" not in after


def test_refresh_can_narrow_the_scope_and_the_narrowed_token_is_narrow(client, user):
    tokens = portal_tokens(client, scope="openid email phone offline_access")
    resp = client.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "scope": "openid email",
        },
        headers=basic(),
    )
    assert resp.status_code == 200
    assert set(resp.json["scope"].split()) == {"openid", "email"}
    info = userinfo(client, resp.json["access_token"]).json
    assert "email" in info and "phone_number" not in info


def test_refresh_cannot_widen_the_scope(client, user):
    tokens = portal_tokens(client, scope="openid email")
    resp = client.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "scope": "openid email address",
        },
        headers=basic(),
    )
    assert resp.status_code == 400 and resp.json["error"] == "invalid_scope"


def test_expired_refresh_token_is_invalid_grant(app, client, user):
    from idp.core.storage import RefreshToken, db
    from idp.oidc.server import digest

    tokens = app_tokens(client)
    with app.app_context():
        db.session.execute(
            update(RefreshToken)
            .where(RefreshToken.token_hash == digest(tokens["refresh_token"]))
            .values(expires_at=int(time.time()) - 1)
        )
        db.session.commit()
    assert_invalid_grant(refresh(client, tokens["refresh_token"]))


def test_refresh_token_of_a_disabled_account_is_invalid_grant(app, client, user):
    from idp.core.storage import Account, db

    tokens = portal_tokens(client)
    with app.app_context():
        db.session.execute(update(Account).where(Account.sub == user).values(status="disabled"))
        db.session.commit()
    assert_invalid_grant(refresh(client, tokens["refresh_token"], auth=basic()))


def test_refresh_tokens_are_stored_only_as_digests(app, client, user):
    from idp.core.storage import RefreshToken, db

    tokens = app_tokens(client)
    with app.app_context():
        stored = {r.token_hash for r in db.session.query(RefreshToken).all()}
    assert tokens["refresh_token"] not in stored


def test_client_that_may_not_refresh_gets_unauthorized_client(make_app, make_user):
    from tests.conftest import base_config

    make_user()
    clients = base_config("http://localhost", "sqlite://", __import__("pathlib").Path("."))["clients"]
    clients[0] = {**clients[0], "grant_types": ["authorization_code"]}
    app = make_app({"clients": clients})
    client = app.test_client()
    tokens = portal_tokens(client)
    assert "refresh_token" not in tokens
    resp = refresh(client, "anything", auth=basic())
    assert resp.status_code == 400 and resp.json["error"] in ("unauthorized_client", "invalid_grant")
