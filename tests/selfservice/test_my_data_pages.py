"""The account pages' "download my data" and "close my account"."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from tests.selfservice.test_account_settings import age_login
from tests.support.sms_login import alice_fixture, csrf, emails_to, login_at_provider  # noqa: F401


@pytest.fixture
def logged_in(app, client, alice):
    login_at_provider(client, app)
    return client


def accounts(app) -> list[str]:
    from idp.core.storage import Account, db

    with app.app_context():
        return db.session.scalars(sa.select(Account.username)).all()


@pytest.mark.parametrize("path", ["/account/data", "/account/close"])
def test_privacy_pages_need_a_recent_full_login(app, logged_in, path):
    age_login(app)
    resp = logged_in.get(path)
    assert resp.status_code == 302 and resp.location.endswith("/login/-")


def test_home_links_to_my_data(logged_in):
    page = logged_in.get("/account/").get_data(as_text=True)
    assert "/account/data" in page and "/account/close" in page


def test_download_my_data_is_a_json_attachment_of_my_account(app, logged_in, alice):
    resp = logged_in.get("/account/data")
    assert resp.status_code == 200
    assert resp.mimetype == "application/json"
    assert resp.headers["Content-Disposition"].startswith("attachment;")
    assert "no-store" in resp.headers["Cache-Control"]
    document = json.loads(resp.get_data(as_text=True))
    assert document["format"] == "idp-export/1"
    assert document["account"]["sub"] == alice
    assert document["tables"]["sso_sessions"]


def test_close_needs_the_confirmation_box(app, logged_in):
    page = logged_in.get("/account/close")
    assert page.status_code == 200
    resp = logged_in.post("/account/close", data={"csrf_token": csrf(page.get_data(as_text=True))})
    assert resp.status_code == 400 and "tick the box" in resp.get_data(as_text=True)
    assert accounts(app) == ["alice"]


def test_close_needs_the_csrf_token(app, logged_in):
    resp = logged_in.post("/account/close", data={"confirm": "y"})
    assert resp.status_code in (200, 400) and accounts(app) == ["alice"]


def test_close_erases_the_account_logs_out_and_confirms_by_email(app, logged_in):
    page = logged_in.get("/account/close")
    resp = logged_in.post(
        "/account/close", data={"csrf_token": csrf(page.get_data(as_text=True)), "confirm": "y"}
    )
    assert resp.status_code == 200 and "account is closed" in resp.get_data(as_text=True)
    assert accounts(app) == []
    mails = emails_to(app, "alice@example.com")
    assert mails and "closed" in mails[-1]["subject"]
    assert logged_in.get("/account/").status_code == 302  # logged out


def test_account_page_lists_live_sessions_only_and_marks_idle_ones_ended(app, logged_in, alice):
    import time

    from idp.core.storage import Account, SsoSession, db

    now = int(time.time())
    with app.app_context():
        account = db.session.scalar(sa.select(Account).where(Account.sub == alice))
        idle = app.extensions["idp.settings"].session_idle_timeout
        db.session.add(
            SsoSession(
                id="forgotten",
                account_id=account.id,
                auth_time=now - 7200,
                level="low",
                methods=[],
                amr=[],
                created_at=now - 7200,
                last_seen_at=now - idle - 600,
                expires_at=now + 3600,
                user_agent="Forgotten Browser/1.0",
            )
        )
        db.session.commit()
    page = logged_in.get("/account/").get_data(as_text=True)
    assert "Forgotten Browser" not in page
    with app.app_context():
        assert db.session.get(SsoSession, "forgotten").ended_at is not None
