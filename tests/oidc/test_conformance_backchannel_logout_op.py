"""The OpenID Foundation's Back-Channel Logout OP plan: after an RP-initiated logout the
OP POSTs each RP of the session a logout token the suite's checks accept, and the
session is over."""

from __future__ import annotations

import pytest

from tests.conftest import authorize_params, query_of
from tests.oidc.test_backchannel_logout import Receiver, provider_with_backchannel
from tests.support.oidc import BACKCHANNEL_EVENT, app_tokens, decode, portal_tokens, userinfo


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def op(make_app, make_user, tmp_path, receiver):
    make_user()
    client = provider_with_backchannel(make_app, tmp_path, receiver).test_client()
    client.portal = portal_tokens(client, scope="openid email")  # no offline_access:
    client.app = app_tokens(client, scope="openid email")  # the grants end with the session
    return client


def test_discovery_announces_back_channel_logout(op):
    doc = op.get("/.well-known/openid-configuration").json
    assert doc["backchannel_logout_supported"] is True and doc["backchannel_logout_session_supported"] is True


@pytest.mark.parametrize(
    "path, client_id, tokens", [("/portal/bcl", "portal", "portal"), ("/app/bcl", "app", "app")]
)
def test_oidcc_backchannel_rp_initiated_logout(op, receiver, path, client_id, tokens):
    op.get("/logout", query_string={"id_token_hint": op.portal["id_token"]})
    [request] = [r for r in receiver.requests if r["path"] == path]
    assert request["content_type"].startswith("application/x-www-form-urlencoded")
    header, claims = decode(op, request["form"]["logout_token"])
    _, id_token = decode(op, getattr(op, tokens)["id_token"])
    assert header["typ"] == "logout+jwt" and header["alg"] == "RS256" and header["kid"]
    assert claims["iss"] == id_token["iss"] and claims["aud"] == client_id
    assert isinstance(claims["iat"], int) and claims["jti"]
    assert list(claims["events"]) == [BACKCHANNEL_EVENT] and claims["events"][BACKCHANNEL_EVENT] == {}
    assert claims["sub"] == id_token["sub"] and claims["sid"] == id_token["sid"]
    assert "nonce" not in claims


def test_after_the_logout_the_session_and_its_tokens_are_over(op):
    op.get("/logout", query_string={"id_token_hint": op.portal["id_token"]})
    params, _ = authorize_params(prompt="none")
    assert query_of(op.get("/authorize", query_string=params).location)["error"] == "login_required"
    assert userinfo(op, op.portal["access_token"]).status_code == 401
    assert userinfo(op, op.app["access_token"]).status_code == 401


def test_each_logout_token_is_new(op, receiver):
    op.get("/logout", query_string={"id_token_hint": op.portal["id_token"]})
    jtis = {decode(op, r["form"]["logout_token"])[1]["jti"] for r in receiver.requests}
    assert len(jtis) == len(receiver.requests) == 2
