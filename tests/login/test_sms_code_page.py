"""The SMS code page as the FAQ describes it (issue 16, part 4): the roaming / network advice,
a live countdown to "send a new code", a visible confirmation that a new code was sent,
plural forms right in every language, and alternatives only for methods that are on."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.conftest import PASSWORD, authorize_params, csrf_from, make_user_in
from tests.support.sms_login import alice_fixture, post_password  # noqa: F401 (the "alice" fixture)

ONE_MINUTE = {
    "fr": "Le code est valable 1\u00a0minute.",
    "nl": "De code is 1 minuut geldig.",
    "de": "Der Code ist 1 Minute gültig.",
    "en": "The code is valid for 1 minute.",
}
ROAMING = {
    "fr": "roaming",
    "nl": "roaming",
    "de": "Roaming",
    "en": "Roaming or network problems",
}


def code_page(client, lang="fr"):
    params, _verifier = authorize_params(ui_locales=lang)
    tx_path = urlsplit(client.get("/authorize", query_string=params).location).path
    resp = post_password(client, tx_path, "alice", PASSWORD)
    assert resp.status_code == 303 and resp.location.endswith("/code")
    path = urlsplit(resp.location).path
    return path, client.get(path)


@pytest.mark.parametrize("lang", ["fr", "nl", "de", "en"])
def test_one_minute_is_singular_and_the_roaming_advice_is_there(make_app, lang):
    app = make_app({"otp": {"code_ttl": 60}})
    make_user_in(app)
    body = code_page(app.test_client(), lang)[1].get_data(as_text=True)
    assert ONE_MINUTE[lang].replace("\u00a0", " ") in body.replace("\u00a0", " ")
    assert ROAMING[lang] in body


def test_five_minutes_is_plural(app, alice):
    body = code_page(app.test_client(), "fr")[1].get_data(as_text=True)
    assert "valable 5\u00a0minutes" in body.replace(" minutes", "\u00a0minutes")


def test_a_new_code_is_confirmed_once_and_the_wait_is_shown_as_a_countdown(make_app):
    app = make_app({"otp": {"resend_after": 0}})
    make_user_in(app)
    client = app.test_client()
    path, page = code_page(client, "en")
    assert "A new code was sent" not in page.get_data(as_text=True)
    resp = client.post(path + "/resend", data={"csrf_token": csrf_from(page.get_data(as_text=True))})
    assert resp.status_code == 303
    confirmed = client.get(path).get_data(as_text=True)
    assert 'class="confirm" role="status">A new code was sent to' in confirmed
    assert "A new code was sent" not in client.get(path).get_data(as_text=True)  # once


def test_the_wait_before_a_new_code_is_a_minutes_seconds_countdown(app, alice):
    body = code_page(app.test_client(), "en")[1].get_data(as_text=True)
    assert 'role="timer">You can ask for a new code in <span class="countdown">1:00</span>.' in body


def test_no_itsme_or_eid_buttons_when_those_methods_are_off(app, alice):
    body = code_page(app.test_client(), "en")[1].get_data(as_text=True)
    assert "method-itsme" not in body and "method-eid" not in body
    assert "You can also log in another way" not in body


@pytest.mark.browser
def test_the_countdown_runs_live_and_the_button_comes_back(live_server, page):
    server = live_server({"otp": {"resend_after": 3}})
    make_user_in(server.app)
    page.goto(server.url + "/demo/")
    page.click("#demo-login")
    page.wait_for_url("**/login/**")
    page.click("li.method-password a")
    page.fill("#username", "alice")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit].primary")
    page.wait_for_url("**/code")
    assert page.is_disabled("button.resend")
    first = page.text_content(".countdown")
    for _tick in range(20):  # polled from here: the page's CSP forbids evaluating a predicate in it
        if page.text_content(".countdown") != first:
            break
        page.wait_for_timeout(250)
    assert page.text_content(".countdown") != first
    page.wait_for_selector("button.resend:not([disabled])", timeout=10000)
    page.click("button.resend")
    page.wait_for_selector("p.confirm[role=status]")
