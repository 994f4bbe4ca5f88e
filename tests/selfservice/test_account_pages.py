"""Account pages that look finished (issue 16, part 5): sessions named by browser and device,
dates without location, the applications actually connected, one "Settings" heading, and
the live password rules on the change-password page."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from idp.core.storage import Grant, SsoSession, db
from idp.selfservice.devices import describe
from tests.conftest import authorize_params, csrf_from, get_code
from tests.support.sms_login import alice_fixture  # noqa: F401 (the "alice" fixture)

FIREFOX_WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1"
)


@pytest.mark.parametrize(
    ("agent", "expected"),
    [
        (FIREFOX_WINDOWS, "Firefox on Windows"),
        (SAFARI_IPHONE, "Mobile Safari on iPhone (iOS)"),
        ("curl/8.5.0", "curl"),
        ("", "Unknown browser"),
        (None, "Unknown browser"),
    ],
)
def test_a_user_agent_becomes_a_browser_and_device_name(app, agent, expected):
    with app.test_request_context(headers={"Accept-Language": "en"}):
        assert describe(agent) == expected


def logged_in_through_the_portal(client):
    params, _verifier = authorize_params(ui_locales="fr")
    assert "code" in get_code(client, params)


def test_the_portal_used_to_log_in_is_listed_and_can_be_removed(app, alice):
    client = app.test_client()
    client.environ_base["HTTP_USER_AGENT"] = FIREFOX_WINDOWS
    logged_in_through_the_portal(client)
    page = client.get("/account/", headers={"Accept-Language": "fr"})
    body = page.get_data(as_text=True)
    assert "<h1>Paramètres</h1>" in body
    assert "Customer portal" in body and "Aucun" not in body.split("Applications")[-1][:400]
    assert "Firefox sur Windows" in body
    with app.app_context():
        row = db.session.scalars(select(SsoSession)).one()
        assert row.ip and row.ip not in body  # no address, no location
    resp = client.post("/account/apps/portal/revoke", data={"csrf_token": csrf_from(body)})
    assert resp.status_code == 303
    with app.app_context():
        assert all(g.revoked_at for g in db.session.scalars(select(Grant)))
    assert "Customer portal" not in client.get("/account/").get_data(as_text=True)


def test_session_dates_are_shown_in_the_operators_time_zone(app, alice):
    client = app.test_client()
    logged_in_through_the_portal(client)
    with app.app_context():
        row = db.session.scalars(select(SsoSession)).one()
        row.created_at = 1767225600  # 2026-01-01 00:00 UTC = 01:00 in Brussels
        db.session.commit()
    body = client.get("/account/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert (
        "Logged in on Jan 1, 2026, 1:00:00\u202fAM" in body or "Logged in on Jan 1, 2026, 1:00:00 AM" in body
    )


def test_the_change_password_page_checks_the_rules_while_typing(app, alice):
    client = app.test_client()
    logged_in_through_the_portal(client)
    body = client.get("/account/password").get_data(as_text=True)
    assert 'data-policy-url="/register/password-policy"' in body
    assert 'aria-describedby="password-rules password-feedback"' in body
    assert "js/password_policy.js" in body and 'id="policy-username" type="hidden" value="alice"' in body
