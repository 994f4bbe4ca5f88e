"""End to end in Chromium: the demo relying party logs in through the hosted pages."""

import json

import pytest

from tests.conftest import PASSWORD, ready
from tests.support.sms_login import last_code

pytestmark = pytest.mark.browser


def test_demo_relying_party_logs_in_with_password_in_a_real_browser(live_server, page):
    server = live_server()
    with server.app.app_context():
        from idp.accounts.users import create_local_account

        sub = create_local_account(
            "alice",
            password=PASSWORD,
            email="alice@example.com",
            phone="+32470123456",
            given_name="Alice",
            family_name="Martin",
        ).sub
    ready(server.app, sub)
    page.goto(server.url + "/demo/")
    page.click("#demo-login")
    page.wait_for_url("**/login/**")
    page.click("a[href$='/password']")
    page.fill("#username", "alice")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit].primary")
    page.wait_for_url("**/code")
    assert page.get_attribute("input[name=code]", "autocomplete") == "one-time-code"
    page.fill("input[name=code]", last_code(server.app))
    page.click("button[type=submit].primary")
    page.wait_for_url("**/demo/")
    claims = json.loads(page.text_content("#id-token-claims"))
    assert claims["iss"] == server.url
    assert claims["aud"] == "demo"
    userinfo = json.loads(page.text_content("#userinfo"))
    assert userinfo["email"] == "alice@example.com"
    assert not [e for e in page.csp_errors if "Content Security Policy" in e]
