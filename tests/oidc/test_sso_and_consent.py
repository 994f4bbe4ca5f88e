"""Single sign-on across relying parties; consent (skipped for first-party clients, remembered, revocable)."""

from __future__ import annotations

import pytest

from tests.conftest import PORTAL_SECRET, authorize_params, csrf_from, query_of
from tests.support.oidc import (
    APP_REDIRECT,
    PARTNER_REDIRECT,
    decode,
    get_code,
    inject_sso,
    path_of,
    portal_tokens,
    refresh,
    userinfo,
)


def partner_request(client, **extra):
    params, verifier = authorize_params(client_id="partner", redirect_uri=PARTNER_REDIRECT, **extra)
    return client.get("/authorize", query_string=params), params, verifier


def decide(client, consent_location: str, decision: str):
    page = client.get(path_of(consent_location))
    assert page.status_code == 200
    return client.post(
        path_of(consent_location),
        data={"csrf_token": csrf_from(page.get_data(as_text=True)), "decision": decision},
    )


def partner_exchange(client, code, verifier):
    return client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": PARTNER_REDIRECT,
            "code_verifier": verifier,
            "client_id": "partner",
            "client_secret": PORTAL_SECRET,
        },
    )


@pytest.fixture
def sso(client, user):
    inject_sso(client.application, client, user)
    return user


# ---------------------------------------------------------------------------
# SSO
# ---------------------------------------------------------------------------


def test_login_at_the_portal_then_the_app_needs_no_new_login(client, user):
    portal = get_code(client, authorize_params()[0])  # logs in through the pages
    assert "code" in portal
    params, _ = authorize_params(client_id="app", redirect_uri=APP_REDIRECT)
    resp = client.get("/authorize", query_string=params)
    assert resp.status_code == 302 and resp.location.startswith(APP_REDIRECT + "?")
    assert "code" in query_of(resp.location)


def test_both_clients_share_one_sid_and_auth_time(client, sso):
    from tests.support.oidc import app_tokens

    _, portal = decode(client, portal_tokens(client)["id_token"])
    _, app = decode(client, app_tokens(client)["id_token"])
    assert (
        portal["sid"] == app["sid"]
        and portal["auth_time"] == app["auth_time"]
        and portal["sub"] == app["sub"]
    )


def test_the_sso_session_records_each_client_that_took_part(client, sso):
    from sqlalchemy import select

    from idp.core.storage import SessionClient, db
    from tests.support.oidc import app_tokens

    sid = decode(client, portal_tokens(client)["id_token"])[1]["sid"]
    app_tokens(client)
    with client.application.app_context():
        clients = set(
            db.session.scalars(select(SessionClient.client_id).where(SessionClient.session_id == sid))
        )
    assert clients == {"portal", "app"}


def test_another_browser_has_no_session(client, sso):
    other = client.application.test_client()
    params, _ = authorize_params(prompt="none")
    assert query_of(other.get("/authorize", query_string=params).location)["error"] == "login_required"


def test_session_cookie_is_httponly_and_samesite(client, user):
    params, _ = authorize_params()
    resp = client.get("/authorize", query_string=params)
    cookies = [v for k, v in resp.headers.items() if k == "Set-Cookie"]
    assert cookies
    for cookie in cookies:
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_login_gives_the_browser_a_new_session_id(client, user):
    from tests.support.oidc import login_pages

    params, _ = authorize_params()
    resp = client.get("/authorize", query_string=params)
    before = client.get_cookie("idp_session").value
    login_pages(client, resp.location)
    assert client.get_cookie("idp_session").value != before


# ---------------------------------------------------------------------------
# Consent
# ---------------------------------------------------------------------------


def test_first_party_clients_are_never_asked_for_consent(client, sso):
    for extra in ({}, {"prompt": "consent"}):
        params, _ = authorize_params(**extra)
        assert "code" in query_of(client.get("/authorize", query_string=params).location)


def test_partner_asks_for_consent_listing_what_it_gets(client, sso):
    resp, _, _ = partner_request(client, scope="openid email phone")
    assert resp.status_code == 302 and "/consent/" in resp.location
    page = client.get(path_of(resp.location)).get_data(as_text=True)
    assert "Partner service" in page
    assert "e-mail" in page and "mobile" in page
    assert 'name="decision" value="allow"' in page and 'name="decision" value="deny"' in page


def test_consent_allowed_gives_a_code_and_is_remembered(client, sso):
    resp, params, verifier = partner_request(client)
    resp = decide(client, resp.location, "allow")
    assert resp.status_code == 303
    resp = client.get(resp.location)
    result = query_of(resp.location)
    assert result["state"] == params["state"] and result["iss"] == "http://localhost"
    assert partner_exchange(client, result["code"], verifier).status_code == 200
    again, _, _ = partner_request(client)
    assert "code" in query_of(again.location)
    none, _, _ = partner_request(client, prompt="none")
    assert "code" in query_of(none.location)


def test_consent_denied_is_access_denied_with_state_and_iss(client, sso):
    resp, params, _ = partner_request(client)
    resp = decide(client, resp.location, "deny")
    assert resp.status_code in (302, 303)
    result = query_of(resp.location)
    assert result["error"] == "access_denied" and result["state"] == params["state"]
    assert result["iss"] == "http://localhost"
    again, _, _ = partner_request(client)
    assert "/consent/" in again.location


def test_prompt_consent_asks_again(client, sso):
    resp, _, _ = partner_request(client)
    client.get(decide(client, resp.location, "allow").location)
    resp, _, _ = partner_request(client, prompt="consent")
    assert "/consent/" in resp.location


def test_more_scopes_than_consented_asks_again(client, sso):
    resp, _, _ = partner_request(client, scope="openid email")
    client.get(decide(client, resp.location, "allow").location)
    resp, _, _ = partner_request(client, scope="openid email phone")
    assert "/consent/" in resp.location
    resp, _, _ = partner_request(client, scope="openid")
    assert "code" in query_of(resp.location)


def test_consent_form_needs_its_csrf_token(client, sso):
    resp, _, _ = partner_request(client)
    post = client.post(path_of(resp.location), data={"decision": "allow"})
    assert post.status_code == 400
    assert "Location" not in post.headers


def test_consent_of_another_browser_cannot_be_used(client, sso, make_user):
    resp, _, _ = partner_request(client)
    other = client.application.test_client()
    inject_sso(client.application, other, make_user("bob"))
    page = other.get(path_of(resp.location))
    assert page.status_code == 400


def test_consent_is_revocable_from_the_account_page(client, sso):
    resp, _, verifier = partner_request(client)
    code = query_of(client.get(decide(client, resp.location, "allow").location).location)["code"]
    tokens = partner_exchange(client, code, verifier).json
    page = client.get("/account/")
    assert "Partner service" in page.get_data(as_text=True)
    resp = client.post(
        "/account/apps/partner/revoke", data={"csrf_token": csrf_from(page.get_data(as_text=True))}
    )
    assert resp.status_code == 303
    assert userinfo(client, tokens["access_token"]).status_code == 401
    gone = client.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": "partner",
            "client_secret": PORTAL_SECRET,
        },
    )
    assert gone.json["error"] == "invalid_grant"
    again, _, _ = partner_request(client)
    assert "/consent/" in again.location


def test_refresh_is_unaffected_for_first_party_clients_by_partner_revocation(client, sso):
    from tests.support.oidc import basic

    portal = portal_tokens(client)
    resp, _, _ = partner_request(client)
    client.get(decide(client, resp.location, "allow").location)
    page = client.get("/account/")
    client.post("/account/apps/partner/revoke", data={"csrf_token": csrf_from(page.get_data(as_text=True))})
    assert refresh(client, portal["refresh_token"], auth=basic()).status_code == 200
