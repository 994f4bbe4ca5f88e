"""No dead ends (issue 16, part 3): each place a customer used to get stuck, in Chromium, ends
at the relying party or on a page whose way forward works."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from idp.core.storage import Account, db
from tests.conftest import PASSWORD, make_user_in
from tests.support.account_flows import customer_line, load_customers
from tests.support.sms_login import last_code

pytestmark = pytest.mark.browser

SUPPORT = {
    "support_phone": "02/406.87.09",
    "support_email": "help@example.org",
    "support_hours": {"fr": "du lundi au jeudi de 8h30 à 17h", "en": "Monday to Thursday 8:30 to 17:00"},
}
OFF = "Cette option n'est plus disponible. Connectez-vous via itsme® ou eID."


def start_login(page, server) -> str:
    """From the demo relying party to the method chooser; the chooser's path."""
    page.goto(server.url + "/demo/")
    page.click("#demo-login")
    page.wait_for_url("**/login/**")
    return page.url.split(server.url, 1)[1].split("?")[0]


def password_step(page, username="alice"):
    page.click("li.method-password a")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit].primary")


def at_relying_party(page, server) -> dict:
    page.wait_for_url("**/demo/")
    return json.loads(page.text_content("#id-token-claims"))


def test_no_mobile_number_adds_and_confirms_one_when_the_operator_allows_it(live_server, page):
    server = live_server({"otp": {"first_number_at_login": True}})
    make_user_in(server.app, phone=None)
    start_login(page, server)
    password_step(page)
    page.wait_for_url("**/number")
    page.fill("#phone", "0470 99 88 77")
    page.click("button[type=submit].primary")
    page.wait_for_url("**/number/code")
    page.fill("#code", last_code(server.app, "+32470998877"))
    page.click("button[type=submit].primary")
    claims = at_relying_party(page, server)
    assert claims["amr"] == ["pwd", "sms", "mfa"]
    with server.app.app_context():
        account = db.session.scalar(select(Account).where(Account.username == "alice"))
        assert account.phone == "+32470998877" and account.phone_verified


def test_no_mobile_number_shows_the_support_contact_and_a_way_back(live_server, page):
    server = live_server({"branding": SUPPORT})
    make_user_in(server.app, phone=None)
    chooser = start_login(page, server)
    password_step(page)
    page.wait_for_selector("text=02/406.87.09")
    contact = page.locator("main .contact")
    assert contact.locator("a[href='tel:024068709']").count() == 1
    assert contact.locator("a[href='mailto:help@example.org']").count() == 1
    assert "8h30" in contact.text_content()
    page.click("main p.back a")
    page.wait_for_url("**" + chooser)
    assert page.locator("li.method-password a").count() == 1


def test_a_switched_off_method_says_so_beside_its_own_name_and_its_page_offers_the_others(live_server, page):
    server = live_server({"methods": {"contract": {"enabled": False, "disabled_message": {"fr": OFF}}}})
    make_user_in(server.app)
    chooser = start_login(page, server)
    note = page.locator(".method-off.method-contract")
    assert OFF in note.text_content() and "Numéro de contrat" in note.locator("strong").text_content()
    # The note is not among the buttons: the password button keeps its own place.
    assert page.locator("ul.methods .method-off").count() == 0
    page.goto(server.url + chooser + "/contract")
    assert OFF in page.text_content("main")
    password_step(page)
    page.wait_for_url("**/code")
    page.fill("input[name=code]", last_code(server.app))
    page.click("button[type=submit].primary")
    at_relying_party(page, server)


def test_switched_off_registration_and_activation_lead_back_to_the_login(live_server, page):
    server = live_server({"registration": {"enabled": False, "letter": {"enabled": False}}})
    chooser = start_login(page, server)
    tx = chooser.rsplit("/", 1)[1]
    for path in (f"/register/?tx={tx}", f"/activate?tx={tx}"):
        page.goto(server.url + path)
        assert page.locator("ul.methods li.method-password a[href$='/password']").count() == 1
        page.click("main p.back a")
        page.wait_for_url("**" + chooser)


def test_a_card_number_with_a_wrong_check_digit_is_refused_on_the_form(live_server, page):
    server = live_server({"registration": {"recovery": {"response_time_floor_ms": 0}}})
    load_customers(server.app, customer_line())
    chooser = start_login(page, server)
    page.click("text=Nom d'utilisateur oublié")
    page.fill("#card_number", "4111 1111 1111 1112")
    page.fill("#birthdate", "1985-07-30")
    page.click("button[type=submit].primary")
    page.wait_for_selector("#card_number-error")
    assert "/recover/username" in page.url and not page.url.endswith("/code")
    assert page.get_attribute("#card_number", "aria-describedby") == "card_number-error"
    assert page.get_attribute("#card_number", "aria-invalid") == "true"
    page.fill("#card_number", "4111 1111 1111 1111")
    page.fill("#birthdate", "1985-07-30")
    page.click("button[type=submit].primary")
    page.wait_for_url("**/recover/username/code")
    page.goto(server.url + "/recover/username")
    page.click("main p.back a")
    page.wait_for_url("**" + chooser)


def test_the_contract_number_is_found_as_people_type_it_from_the_letter(live_server, page):
    server = live_server({"methods": {"contract": {"enabled": True}}})
    load_customers(server.app, customer_line(contracts="AB-1001/7"))
    make_user_in(server.app, "jeanne.d")
    with server.app.app_context():
        account = db.session.scalar(select(Account).where(Account.username == "jeanne.d"))
        account.customer_id = db.session.scalar(select(db.text("id FROM customers")))
        db.session.commit()
    start_login(page, server)
    page.click("li.method-contract a")
    page.fill("input[name=identifier]", " ab 1001 7 ")
    page.click("button[type=submit].primary")
    page.wait_for_url("**/contract/code")
    page.fill("input[name=code]", last_code(server.app))
    page.click("button[type=submit].primary")
    assert at_relying_party(page, server)["aud"] == "demo"


def test_links_on_the_password_page_keep_the_login_transaction(live_server, page):
    server = live_server()
    chooser = start_login(page, server)
    tx = chooser.rsplit("/", 1)[1]
    page.click("li.method-password a")
    for link in page.locator("main ul.links a").all():
        assert f"tx={tx}" in link.get_attribute("href")
    page.click("main ul.links a[href*='/recover/password']")
    page.click("main p.back a")
    page.wait_for_url("**" + chooser)
