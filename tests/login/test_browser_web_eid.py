"""End to end in Chromium: the eID page through Web eID first, and the way there when nothing is installed.

The Web eID extension is played by a test-only init script (``tests/support/web_eid.py``) that
answers the page's ``window.postMessage`` requests as the extension does and signs with the
SoftHSM2 card's Authentication key through PyKCS11. The provider, the RP and the card are the
ones of ``tests/login/test_browser_eid.py`` (the bridge path), so both paths meet the same account.
"""

from __future__ import annotations

import pytest

from tests.conftest import free_port
from tests.login import test_browser_eid as bridge_path
from tests.login.test_browser_eid import PIN, csp_violations, id_token_at_rp, message
from tests.support.eid_pki import EidPki
from tests.support.local_rp import PORTAL_CALLBACK
from tests.support.softhsm import point_page_at_bridge
from tests.support.web_eid import WebEidStandIn

# The provider, RP, PKI and SoftHSM2 card of the bridge path's tests (pytest finds fixtures by name).
responder, pki, card, token = bridge_path.responder, bridge_path.pki, bridge_path.card, bridge_path.token
rp, server, person, bridge = bridge_path.rp, bridge_path.server, bridge_path.person, bridge_path.bridge

pytestmark = [pytest.mark.softhsm, pytest.mark.browser]

USER_AGENTS = {
    "windows": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "macos": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "linux": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
}
DOWNLOADS = {s: f"https://downloads.example.be/eid-bridge/{s}" for s in USER_AGENTS}


@pytest.fixture
def no_bridge(server):
    """The page looks for a bridge on a loopback port where nothing listens."""
    point_page_at_bridge(server.app, f"http://127.0.0.1:{free_port()}")
    page_settings = server.app.extensions["idp.settings"].connectors["eid"].page
    page_settings.bridge_downloads.update(DOWNLOADS)  # as [connectors.eid.page.bridge_downloads] would


@pytest.fixture
def open_page(chromium):
    contexts = []

    def open_(user_agent: str | None = None, stand_in: WebEidStandIn | None = None):
        options = {"locale": "fr-BE"}
        if user_agent:
            options["user_agent"] = user_agent
        context = chromium.new_context(**options)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15000)
        errors: list[str] = []
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.csp_errors = errors
        if stand_in is not None:
            stand_in.install(page)
        return page

    yield open_
    for context in contexts:
        context.close()


@pytest.fixture
def web_eid(token):
    return WebEidStandIn(token.env, PIN)


def to_eid_page(page, server, rp, ready: str | None = "ready_webeid") -> dict:
    url, kept = rp.authorization(
        server.url, "portal", rp.url + PORTAL_CALLBACK, acr_values="urn:idp:acr:high"
    )
    page.goto(url)
    page.wait_for_url("**/login/**")
    page.click(".method-eid a")
    page.wait_for_url("**/eid")
    if ready:
        page.wait_for_selector("#eid-start:enabled")
        assert page.text_content("#eid-status") == message(page, ready)
    return kept


def error_shown(page, code: str) -> None:
    page.wait_for_selector("#eid-error:visible")
    assert page.text_content("#eid-error") == message(page, code)


# -- Web eID ------------------------------------------------------------------------------


def test_web_eid_login_yields_the_account_of_the_card(server, no_bridge, person, rp, open_page, web_eid):
    page = open_page(stand_in=web_eid)
    kept = to_eid_page(page, server, rp)
    assert page.get_attribute("#eid-login", "data-mode") == "webeid"
    page.click("#eid-start")
    claims = id_token_at_rp(page, server, rp, kept)
    # ``person`` holds the card's national number: the bridge path logs into this same account.
    assert claims["sub"] == person
    assert claims["acr"] == "urn:idp:acr:high" and claims["amr"] == ["hwk", "pin", "sc"]
    auth = [r for r in web_eid.requests if r["action"] == "web-eid:authenticate"]
    assert len(auth) == 1 and len(auth[0]["challenge"]) == 44 and auth[0]["lang"] == "fr"
    assert not csp_violations(page)


def test_the_bridge_and_web_eid_log_the_same_card_into_the_same_account(
    server, bridge, person, rp, open_page, web_eid
):
    from sqlalchemy import select

    from idp.core.storage import Account, FederatedIdentity, db

    page = open_page()  # no extension: the page uses the bridge
    kept = to_eid_page(page, server, rp, ready="ready")
    page.click("#eid-start")
    through_bridge = id_token_at_rp(page, server, rp, kept)["sub"]

    page = open_page(stand_in=web_eid)  # the extension answers first
    kept = to_eid_page(page, server, rp)
    page.click("#eid-start")
    through_web_eid = id_token_at_rp(page, server, rp, kept)["sub"]

    assert through_bridge == through_web_eid == person
    with server.app.app_context():
        account = db.session.scalar(select(Account).where(Account.sub == person))
        links = db.session.scalars(
            select(FederatedIdentity).where(FederatedIdentity.account_id == account.id)
        )
        subjects = sorted(link.subject.split(":")[0] for link in links)
    assert subjects == ["card-hmac", "cert-sha256"]  # one link per way of reading the card


@pytest.mark.parametrize("forgery", ["origin", "challenge"])
def test_web_eid_token_signed_for_another_origin_or_challenge_is_refused(
    server, no_bridge, person, rp, open_page, web_eid, forgery
):
    if forgery == "origin":
        web_eid.sign_origin = "https://evil.example.com"
    else:
        web_eid.sign_challenge = "A" * 43 + "="
    page = open_page(stand_in=web_eid)
    to_eid_page(page, server, rp)
    page.click("#eid-start")
    error_shown(page, "bad_signature")
    assert page.is_visible("#eid-retry")  # a fresh signature can help
    assert "/login/" in page.url


def test_web_eid_token_of_an_untrusted_card_is_refused_and_offers_other_ways(
    server, no_bridge, person, rp, open_page, web_eid, responder
):
    stranger = EidPki(responder.url, name="Stranger")
    responder.add_authority(stranger.authority())
    web_eid.software_card = stranger.card()
    page = open_page(stand_in=web_eid)
    to_eid_page(page, server, rp)
    page.click("#eid-start")
    error_shown(page, "untrusted_certificate")
    assert not page.is_visible("#eid-retry")
    assert page.is_visible("#eid-other-ways a")


def test_cancel_in_web_eid_says_so_and_trying_again_logs_in(
    server, no_bridge, person, rp, open_page, web_eid
):
    page = open_page(stand_in=web_eid)
    kept = to_eid_page(page, server, rp)
    web_eid.fail = {"code": "ERR_WEBEID_USER_CANCELLED"}
    page.click("#eid-start")
    error_shown(page, "webeid_cancelled")
    web_eid.fail = None
    page.click("#eid-retry")
    claims = id_token_at_rp(page, server, rp, kept)
    assert claims["sub"] == person


def test_extension_without_its_app_asks_to_install_the_app(server, no_bridge, rp, open_page, web_eid):
    web_eid.fail = {"code": "ERR_WEBEID_NATIVE_UNAVAILABLE"}
    page = open_page(stand_in=web_eid)
    to_eid_page(page, server, rp, ready=None)
    error_shown(page, "webeid_app_missing")
    assert page.is_visible("#eid-install")


def test_too_old_web_eid_asks_for_an_update(server, no_bridge, rp, open_page, web_eid):
    web_eid.fail = {"code": "ERR_WEBEID_VERSION_MISMATCH"}
    page = open_page(stand_in=web_eid)
    to_eid_page(page, server, rp, ready=None)
    error_shown(page, "webeid_update")
    assert page.is_visible("#eid-install")


# -- the way there --------------------------------------------------------------------------


@pytest.mark.parametrize("system", ["windows", "macos", "linux"])
def test_nothing_installed_shows_the_install_panel_for_the_users_system(
    server, no_bridge, rp, open_page, system
):
    page = open_page(user_agent=USER_AGENTS[system])
    to_eid_page(page, server, rp, ready=None)
    error_shown(page, "nothing_found")
    assert page.is_visible("#eid-install")
    assert page.get_attribute("#eid-install", "data-system") == system
    links = page.eval_on_selector_all(".eid-bridge-link", "els => els.map(e => [e.dataset.system, e.href])")
    assert links == [[system, DOWNLOADS[system]]]
    assert page.get_attribute("#eid-middleware-link", "href") == "https://eid.belgium.be/fr"
    assert page.get_attribute("#eid-webeid-link", "href") == "https://web-eid.eu/"
    assert not page.is_visible("#eid-retry")
    assert not csp_violations(page)


def test_check_again_after_installing_resumes_the_same_login(
    server, no_bridge, person, rp, open_page, web_eid
):
    web_eid.installed = False
    page = open_page(user_agent=USER_AGENTS["windows"], stand_in=web_eid)
    kept = to_eid_page(page, server, rp, ready=None)
    error_shown(page, "nothing_found")
    eid_url = page.url

    web_eid.installed = True  # the person installs Web eID and comes back to the page
    page.click("#eid-check-again")
    page.wait_for_selector("#eid-start:enabled")
    assert page.url == eid_url and page.is_hidden("#eid-install")
    page.click("#eid-start")
    claims = id_token_at_rp(page, server, rp, kept)  # the RP's own state and nonce: the same login
    assert claims["sub"] == person


# -- messages that help -----------------------------------------------------------------------


def test_card_linked_to_no_account_offers_other_ways_and_registration(
    server, no_bridge, rp, open_page, web_eid
):
    page = open_page(stand_in=web_eid)  # no ``person``: nobody holds this card's national number
    to_eid_page(page, server, rp)
    page.click("#eid-start")
    error_shown(page, "no_account")
    assert not page.is_visible("#eid-retry")
    assert page.is_visible("#eid-other-ways a") and page.is_visible("#eid-register a")
    page.click("#eid-other-ways a")
    page.wait_for_selector(".method-eid")  # back on the chooser of the same login


def test_cancel_in_web_eid_also_says_where_to_unblock_a_blocked_pin(
    server, no_bridge, rp, open_page, web_eid
):
    page = open_page(stand_in=web_eid)
    to_eid_page(page, server, rp)
    web_eid.fail = {"code": "ERR_WEBEID_USER_CANCELLED"}  # Web eID says "PIN blocked" in its own window
    page.click("#eid-start")
    error_shown(page, "webeid_cancelled")
    assert "PUK" in page.text_content("#eid-error")
