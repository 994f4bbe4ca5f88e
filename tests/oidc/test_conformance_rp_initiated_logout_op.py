"""The OpenID Foundation's RP-Initiated Logout OP plan, module by module, with the default
(PKCE-requiring) portal client: a real login, then the logout request the module sends."""

from __future__ import annotations

import pytest

from tests.conftest import authorize_params, query_of
from tests.support.oidc import clients_with, confirm_logout, inject_sso, portal_tokens

LOGGED_OUT = "https://portal.example.com/logged-out"
WITH_QUERY = "https://portal.example.com/logged-out?from=idp"


@pytest.fixture
def op(make_app, tmp_path, user):
    portal = {"post_logout_redirect_uris": [LOGGED_OUT, WITH_QUERY]}
    client = make_app(clients_with(portal, tmp_path=tmp_path)).test_client()
    client.tokens = portal_tokens(client)  # logged in through the pages
    return client


def logged_in(op) -> bool:
    params, _ = authorize_params(prompt="none")
    return "code" in query_of(op.get("/authorize", query_string=params).location)


def test_oidcc_rp_initiated_logout(op):
    query = {"id_token_hint": op.tokens["id_token"], "post_logout_redirect_uri": LOGGED_OUT, "state": "st"}
    resp = op.get("/logout", query_string=query)
    assert resp.status_code in (302, 303) and resp.location == LOGGED_OUT + "?state=st"
    assert not logged_in(op)


def test_oidcc_rp_initiated_logout_bad_post_logout_redirect_uri(op):
    query = {
        "id_token_hint": op.tokens["id_token"],
        "post_logout_redirect_uri": LOGGED_OUT + "/x",
        "state": "st",
    }
    resp = op.get("/logout", query_string=query)
    assert resp.status_code == 400 and "Location" not in resp.headers
    assert "not registered" in resp.get_data(as_text=True)
    assert logged_in(op)


def test_oidcc_rp_initiated_logout_modified_id_token_hint(op):
    header, payload, signature = op.tokens["id_token"].split(".")
    forged = f"{header}.{payload}.{signature[:-4]}AAAA"
    query = {"id_token_hint": forged, "post_logout_redirect_uri": LOGGED_OUT, "state": "st"}
    resp = op.get("/logout", query_string=query)
    assert resp.status_code == 400 and "Location" not in resp.headers
    assert logged_in(op)


def test_oidcc_rp_initiated_logout_no_id_token_hint(op):
    query = {"client_id": "portal", "post_logout_redirect_uri": LOGGED_OUT, "state": "st"}
    page = op.get("/logout", query_string=query)
    assert "Location" not in page.headers and logged_in(op)  # asks first
    resp = confirm_logout(op, page)
    assert resp.status_code == 303 and resp.location == LOGGED_OUT + "?state=st"
    assert not logged_in(op)


def test_oidcc_rp_initiated_logout_no_params(op):
    page = op.get("/logout")
    assert logged_in(op)
    resp = confirm_logout(op, page)
    assert resp.status_code == 200 and not logged_in(op)


def test_oidcc_rp_initiated_logout_no_post_logout_redirect_uri(op):
    resp = op.get("/logout", query_string={"id_token_hint": op.tokens["id_token"], "state": "st"})
    assert resp.status_code == 200 and "Location" not in resp.headers
    assert not logged_in(op)


def test_oidcc_rp_initiated_logout_no_state(op):
    query = {"id_token_hint": op.tokens["id_token"], "post_logout_redirect_uri": LOGGED_OUT}
    assert op.get("/logout", query_string=query).location == LOGGED_OUT


def test_oidcc_rp_initiated_logout_only_state(op):
    page = op.get("/logout", query_string={"state": "st"})
    assert "Location" not in page.headers and logged_in(op)
    resp = confirm_logout(op, page)
    assert resp.status_code == 200 and "Location" not in resp.headers and not logged_in(op)


def test_oidcc_rp_initiated_logout_query_added_to_post_logout_redirect_uri(op):
    query = {"id_token_hint": op.tokens["id_token"], "post_logout_redirect_uri": WITH_QUERY, "state": "st"}
    resp = op.get("/logout", query_string=query)
    assert resp.location == WITH_QUERY + "&state=st"


def test_a_hint_for_another_session_asks_and_ends_nothing_by_itself(op, make_user):
    other = op.application.test_client()
    make_user("bob", email="bob@example.com")
    from idp.core.storage import Account, db

    with op.application.app_context():
        bob = db.session.query(Account).filter_by(username="bob").one().sub
    inject_sso(op.application, other, bob)
    bobs = portal_tokens(other)
    page = op.get(
        "/logout", query_string={"id_token_hint": bobs["id_token"], "post_logout_redirect_uri": LOGGED_OUT}
    )
    assert page.status_code == 200 and "Location" not in page.headers
    assert logged_in(op) and logged_in(other)
