"""End to end in Chromium: a customer registers and logs in; another recovers a password and a username."""

from __future__ import annotations

import json

import pytest

from tests.support.account_flows import (
    BIRTHDATE,
    CARD,
    FAST,
    MOBILE,
    customer_line,
    emails_to,
    last_code,
    link_in,
)

pytestmark = pytest.mark.browser

PASSWORD = "purple elephants dance at noon"


def load(server, *lines):
    from tests.support.account_flows import load_customers

    load_customers(server.app, *lines)


def password_then_code(page, server, username, password, number=MOBILE):
    page.click("a[href$='/password']")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit].primary")
    page.wait_for_url("**/code")
    page.fill("#code", last_code(server.app, number))
    page.click("button[type=submit].primary")


def test_customer_registers_then_logs_in_with_password_and_sms_in_a_real_browser(live_server, page):
    server = live_server(FAST)
    load(server, customer_line())
    page.goto(server.url + "/demo/")
    page.click("#demo-login")
    page.wait_for_url("**/login/**")
    page.click("a[href*='/register/']")
    page.fill("#card_number", CARD)
    page.fill("#birthdate", BIRTHDATE)
    page.click("button[type=submit].primary")
    page.wait_for_url("**/register/code")
    page.fill("#code", last_code(server.app))
    page.click("button[value=check]")
    page.wait_for_url("**/register/account")
    page.fill("#username", "jeanne")
    page.fill("#password", "password")  # the live policy check speaks up
    page.wait_for_selector("#password-feedback li.problem")
    page.fill("#password", PASSWORD)
    page.wait_for_selector("#password-feedback li.problem", state="detached")
    page.fill("#password_repeat", PASSWORD)
    page.click("button[type=submit].primary")
    page.wait_for_url("**/register/contact")
    page.fill("#email", "jeanne@example.org")
    page.fill("#email_repeat", "jeanne@example.org")
    page.check("#accept_terms")
    page.click("button[type=submit].primary")
    page.wait_for_url("**/register/sent")
    page.goto(link_in(emails_to(server.app, "jeanne@example.org")[-1]))
    page.click("button[type=submit].primary")
    page.wait_for_url("**/register/welcome")
    page.click("a.button.primary")  # back to the login of the demo application
    page.wait_for_url("**/login/**")
    password_then_code(page, server, "jeanne", PASSWORD)
    page.wait_for_url("**/demo/")
    userinfo = json.loads(page.text_content("#userinfo"))
    assert userinfo["email"] == "jeanne@example.org"
    assert not [e for e in page.csp_errors if "Content Security Policy" in e]


def test_customer_recovers_username_and_password_in_a_real_browser(live_server, page):
    server = live_server(FAST)
    load(server, customer_line())
    with server.app.app_context():
        from sqlalchemy import select

        from idp.accounts.users import create_local_account
        from idp.core.storage import Customer, db
        from idp.login.actions import terms_version

        account = create_local_account(
            "jeanne.d", password="an old forgotten password", email="jeanne@example.org", phone=MOBILE
        )
        account.customer_id = db.session.scalar(select(Customer.id))
        account.terms_version = terms_version()
        db.session.commit()

    page.goto(server.url + "/login/-")
    page.click("a[href='/recover/username']")
    page.fill("#card_number", CARD)
    page.fill("#birthdate", BIRTHDATE)
    page.click("button[type=submit].primary")
    page.wait_for_url("**/recover/username/code")
    page.fill("#code", last_code(server.app))
    page.click("button[value=check]")
    page.wait_for_url("**/recover/username/sent")
    assert "jeanne.d" in emails_to(server.app, "jeanne@example.org")[-1]["text"]

    page.goto(server.url + "/login/-")
    page.click("a[href='/recover/password']")
    page.fill("#username", "jeanne.d")
    page.click("button[type=submit].primary")
    page.wait_for_url("**/recover/password/sent")
    page.goto(link_in(emails_to(server.app, "jeanne@example.org")[-1]))
    page.wait_for_url("**/recover/password/new")
    page.fill("#password", PASSWORD)
    page.fill("#password_repeat", PASSWORD)
    page.click("button[type=submit].primary")
    page.wait_for_url("**/recover/password/done")
    page.click("a.button.primary")
    page.wait_for_url("**/login/-/password")
    page.fill("#username", "jeanne.d")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit].primary")
    page.wait_for_url("**/code")  # the reset did not log in and did not skip the SMS code
    page.fill("#code", last_code(server.app))
    page.click("button[type=submit].primary")
    page.wait_for_url("**/account/")
    assert not [e for e in page.csp_errors if "Content Security Policy" in e]
