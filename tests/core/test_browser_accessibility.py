"""Any screen, anyone (issue 16, part 2): every page of every flow at phone (390 × 844) and
desktop (1280 × 800) size, in Chromium, has no horizontal scroll and no WCAG 2.1 A/AA
violation that axe-core finds."""

from __future__ import annotations

import pytest

from tests.conftest import PASSWORD, make_user_in
from tests.support.account_flows import customer_line, load_customers
from tests.support.axe import VIEWPORTS, problems, require_axe
from tests.support.sms_login import last_code

pytestmark = pytest.mark.browser

CONFIG = {
    "branding": {
        "support_phone": "02/406.87.09",
        "support_email": "help@example.org",
        "support_hours": {"fr": "du lundi au jeudi de 8h30 à 17h"},
        "terms_url": "https://www.example.org/terms",
        "privacy_url": "https://www.example.org/privacy",
        "help_url": "https://www.example.org/faq",
    },
    "methods": {
        "contract": {"enabled": False, "disabled_message": {"fr": "Cette option n'est plus disponible."}}
    },
    "otp": {"first_number_at_login": True},
    "registration": {"recovery": {"response_time_floor_ms": 0}, "letter": {"enabled": False}},
}


@pytest.fixture(params=sorted(VIEWPORTS))
def screen(request, chromium):
    require_axe()
    context = chromium.new_context(locale="fr-BE", viewport=VIEWPORTS[request.param], bypass_csp=True)
    page = context.new_page()
    page.set_default_timeout(15000)
    yield page
    context.close()


def login(page, server, username: str) -> list[str]:
    found = []
    page.goto(server.url + "/demo/")
    page.click("#demo-login")
    page.wait_for_url("**/login/**")
    found += problems(page)
    page.click("li.method-password a")
    found += problems(page)
    page.fill("#username", username)
    page.fill("#password", "wrong password")
    page.click("button[type=submit].primary")
    found += problems(page)  # the error message
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit].primary")
    return found


def test_every_page_fits_the_screen_and_passes_axe(live_server, screen):
    page = screen
    server = live_server(CONFIG)
    make_user_in(server.app)
    make_user_in(server.app, "bob", phone=None, email="bob@example.com")
    load_customers(server.app, customer_line())
    found = login(page, server, "alice")
    page.wait_for_url("**/code")
    found += problems(page)
    page.fill("#code", "000000" if last_code(server.app) != "000000" else "111111")
    page.click("button[type=submit].primary")
    found += problems(page)  # the wrong code
    page.fill("#code", last_code(server.app))
    page.click("button[type=submit].primary")
    page.wait_for_url("**/demo/")
    for path in ("/account/", "/account/password", "/account/username", "/account/phone", "/account/email"):
        page.goto(server.url + path)
        found += problems(page)
    chooser = None
    for path in ("/recover/password", "/recover/username", "/register/", "/activate", "/no/such/page"):
        page.goto(server.url + path)
        found += problems(page)
    page.goto(server.url + "/recover/username")
    page.fill("#card_number", "4111 1111 1111 1112")
    page.fill("#birthdate", "1985-07-30")
    page.click("button[type=submit].primary")
    found += problems(page)  # the field error
    page.context.clear_cookies()
    found += login(page, server, "bob")
    page.wait_for_url("**/number")
    found += problems(page)
    chooser = page.url.rsplit("/", 1)[0]
    page.fill("#phone", "0470 99 88 77")
    page.click("button[type=submit].primary")
    page.wait_for_url("**/number/code")
    found += problems(page)
    page.goto(chooser + "/contract")
    found += problems(page)
    assert not found, "\n".join(found)


def test_at_320_px_nothing_scrolls_sideways_and_the_language_menu_works(live_server, chromium):
    server = live_server(CONFIG)
    context = chromium.new_context(locale="fr-BE", viewport={"width": 320, "height": 640})
    page = context.new_page()
    page.set_default_timeout(15000)
    try:
        page.goto(server.url + "/demo/")
        page.click("#demo-login")
        page.wait_for_url("**/login/**")
        chooser = page.url.split("?")[0]
        for path in ("", "/password"):
            page.goto(chooser + path)
            width = page.evaluate("() => document.scrollingElement.scrollWidth")
            assert width <= 320, (page.url, width)
        box = page.locator("details.languages summary").bounding_box()
        assert box["height"] >= 44 and box["width"] >= 44  # a touch target
        page.click("details.languages summary")
        page.click("details.languages button[lang=nl]")
        page.wait_for_selector("html[lang=nl]")
        assert page.evaluate("() => document.scrollingElement.scrollWidth") <= 320
    finally:
        context.close()


def test_the_registration_pages_and_logout_fit_the_screen_and_pass_axe(live_server, screen):
    page = screen
    server = live_server(CONFIG)
    load_customers(server.app, customer_line())
    found = []
    page.goto(server.url + "/register/")
    page.fill("#card_number", "4111 1111 1111 1111")
    page.fill("#birthdate", "1985-07-30")
    page.click("button[type=submit].primary")
    page.wait_for_url("**/register/code")
    found += problems(page)
    page.fill("#code", last_code(server.app))
    page.click("button[type=submit].primary")
    page.wait_for_url("**/register/account")
    found += problems(page)
    page.fill("#username", "jeanne.d")
    page.fill("#password", "short")
    page.wait_for_selector("#password-feedback li")  # the live rules
    found += problems(page)
    page.fill("#password", PASSWORD)
    page.fill("#password_repeat", PASSWORD)
    page.click("button[type=submit].primary")
    page.wait_for_url("**/register/contact")
    found += problems(page)
    page.fill("#email", "jeanne@example.org")
    page.fill("#email_repeat", "jeanne@example.org")
    page.check("#accept_terms")
    page.click("button[type=submit].primary")
    page.wait_for_url("**/register/sent")
    found += problems(page)
    page.goto(server.url + "/logout")
    found += problems(page)
    assert not found, "\n".join(found)


def test_the_activation_letter_and_contract_login_pages_pass_axe(live_server, screen):
    from idp.selfservice.activation import issue_codes

    page = screen
    server = live_server(
        {
            "methods": {"contract": {"enabled": True}},
            "registration": {"letter": {"enabled": True}, "recovery": {"response_time_floor_ms": 0}},
        }
    )
    load_customers(server.app, customer_line())
    with server.app.app_context():
        [letter] = issue_codes("contract_number\nCT-1001\n")
    found = []
    page.goto(server.url + "/activate")
    found += problems(page)
    page.fill("#contract_number", "ct 1001")
    page.fill("#activation_code", "WRONG-CODE")
    page.click("button[type=submit].primary")
    found += problems(page)  # the error
    page.fill("#contract_number", "ct 1001")
    page.fill("#activation_code", letter["activation_code"])
    page.click("button[type=submit].primary")
    page.wait_for_url("**/activate/code")
    found += problems(page)
    page.fill("#code", last_code(server.app))
    page.click("button[type=submit].primary")
    page.wait_for_url("**/activate/done")
    found += problems(page)
    page.goto(server.url + "/demo/")
    page.click("#demo-login")
    page.wait_for_url("**/login/**")
    page.click("li.method-contract a")
    found += problems(page)
    page.fill("#identifier", "CT1001")
    page.click("button[type=submit].primary")
    page.wait_for_url("**/contract/code")
    found += problems(page)
    assert not found, "\n".join(found)
