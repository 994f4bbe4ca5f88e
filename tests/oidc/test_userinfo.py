"""The UserInfo endpoint: OpenID Connect Core 5.3, RFC 6750 bearer errors, RFC 8725 token types."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import update

from tests.support.oidc import app_tokens, basic, portal_tokens, userinfo


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_userinfo_answers_get_and_post_with_a_bearer_header(client, user, method):
    tokens = portal_tokens(client)
    resp = userinfo(client, tokens["access_token"], method=method)
    assert resp.status_code == 200, resp.json
    assert resp.mimetype == "application/json"
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.json["sub"] == user


def test_userinfo_accepts_the_token_in_a_form_body(client, user):
    """RFC 6750 section 2.2."""
    tokens = portal_tokens(client)
    resp = client.post("/userinfo", data={"access_token": tokens["access_token"]})
    assert resp.status_code == 200 and resp.json["sub"] == user


def test_userinfo_releases_claims_by_scope(client, user):
    info = userinfo(client, portal_tokens(client, scope="openid profile email phone")["access_token"]).json
    assert info["email"] == "alice@example.com" and info["email_verified"] is True
    assert info["phone_number"] == "+32470123456"
    assert (
        info["name"] == "Alice Martin" and info["given_name"] == "Alice" and info["family_name"] == "Martin"
    )
    assert info["preferred_username"] == "alice"


def test_userinfo_with_only_openid_gives_only_sub(client, user):
    info = userinfo(client, portal_tokens(client, scope="openid")["access_token"]).json
    assert set(info) == {"sub"}


def test_userinfo_sub_matches_the_id_token(client, user):
    from tests.support.oidc import decode

    tokens = app_tokens(client)
    assert (
        userinfo(client, tokens["access_token"]).json["sub"] == decode(client, tokens["id_token"])[1]["sub"]
    )


# ---------------------------------------------------------------------------
# RFC 6750 errors
# ---------------------------------------------------------------------------


def test_no_token_is_401_with_a_bare_challenge(client):
    resp = client.get("/userinfo")
    assert resp.status_code == 401
    challenge = resp.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer")
    assert "error=" not in challenge  # RFC 6750 section 3.1: no error code when no credentials were sent


@pytest.mark.parametrize(
    "header",
    [
        "Bearer not-a-token",
        "Bearer a.b.c",
        "Bearer " + "x" * 9000,
        "Bearer e30.e30.",
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer  ",
        "bearer \u00e9\u00e9",
    ],
)
def test_bad_token_is_401_invalid_token_never_a_500(client, header):
    resp = client.get("/userinfo", headers={"Authorization": header})
    assert resp.status_code in (400, 401)
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    if (
        resp.status_code == 401
        and header.lower().startswith("bearer ")
        and header.strip().lower() != "bearer"
    ):
        assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]


def test_token_in_the_query_string_is_not_accepted(client, user):
    tokens = portal_tokens(client)
    resp = client.get("/userinfo", query_string={"access_token": tokens["access_token"]})
    assert resp.status_code == 401


def test_expired_access_token_is_invalid_token(app, client, user):
    tokens = portal_tokens(client)
    later = time.time() + 601
    import idp.oidc.userinfo as userinfo_module

    original = userinfo_module.time.time
    userinfo_module.time.time = lambda: later
    try:
        resp = userinfo(client, tokens["access_token"])
    finally:
        userinfo_module.time.time = original
    assert resp.status_code == 401 and 'error="invalid_token"' in resp.headers["WWW-Authenticate"]


def test_revoked_grant_stops_its_access_tokens(app, client, user):
    from idp.core.storage import Grant, db

    tokens = portal_tokens(client)
    with app.app_context():
        db.session.execute(update(Grant).values(revoked_at=int(time.time())))
        db.session.commit()
    assert userinfo(client, tokens["access_token"]).status_code == 401


def test_disabled_account_gets_no_userinfo(app, client, user):
    from idp.core.storage import Account, db

    tokens = portal_tokens(client)
    with app.app_context():
        db.session.execute(update(Account).where(Account.sub == user).values(status="disabled"))
        db.session.commit()
    resp = userinfo(client, tokens["access_token"])
    assert resp.status_code == 401 and 'error="invalid_token"' in resp.headers["WWW-Authenticate"]


# ---------------------------------------------------------------------------
# Token types are not interchangeable (RFC 8725 section 3.11)
# ---------------------------------------------------------------------------


def test_id_token_is_refused_as_an_access_token(client, user):
    tokens = portal_tokens(client)
    resp = userinfo(client, tokens["id_token"])
    assert resp.status_code == 401 and 'error="invalid_token"' in resp.headers["WWW-Authenticate"]


def test_refresh_token_is_refused_as_an_access_token(client, user):
    tokens = portal_tokens(client)
    assert userinfo(client, tokens["refresh_token"]).status_code == 401


def test_logout_token_is_refused_as_an_access_token(app, client, user):
    from idp.oidc.logout import logout_token

    tokens = portal_tokens(client)
    from tests.support.oidc import decode

    _, claims = decode(client, tokens["id_token"])
    with app.test_request_context():
        token = logout_token("portal", claims["sub"], claims["sid"])
    assert userinfo(client, token).status_code == 401


def test_access_token_scope_narrowed_by_refresh_limits_userinfo(client, user):
    tokens = portal_tokens(client, scope="openid email phone offline_access")
    narrowed = client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "scope": "openid"},
        headers=basic(),
    ).json
    assert set(userinfo(client, narrowed["access_token"]).json) == {"sub"}
