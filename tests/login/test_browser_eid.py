"""End to end in Chromium: the eID login through the real bridge process, with SoftHSM2 as the card.

The RP (``tests/support/local_rp.py``) sends the browser to the provider; the
person picks the eID; the page script (``idp/static/js/eid.js``) finds the
bridge (``python -m idp_eid_bridge`` from ``bridge/src`` on a free loopback port, reading a
SoftHSM2 token loaded with a test card through PyKCS11), gets a challenge,
has the bridge sign it (the PIN comes from the bridge's own prompt, here a
``command:`` program reading a file the test writes), posts the answer, and the
provider verifies it (chain, local OCSP responder, signatures) and sends the
browser back to the RP with a code.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import PORTAL_SECRET, LiveServer, free_port
from tests.fakes.ocsp_responder import OcspResponder
from tests.support.eid_pki import EidPki
from tests.support.local_rp import PORTAL_CALLBACK, LocalRP, rp_clients
from tests.support.softhsm import create_card_token, point_page_at_bridge, require_softhsm, start_bridge

pytestmark = [pytest.mark.softhsm, pytest.mark.browser]

PIN = "1234"


@pytest.fixture(scope="module")
def responder():
    r = OcspResponder().start()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def pki(responder):
    p = EidPki(responder.url)
    responder.add_authority(p.authority())
    return p


@pytest.fixture(scope="module")
def card(pki):
    return pki.card()


@pytest.fixture(scope="module")
def token(card, tmp_path_factory):
    """The SoftHSM2 token of this module's card (one per xdist worker)."""
    require_softhsm()
    return create_card_token(tmp_path_factory.mktemp("softhsm"), card, pin=PIN)


@pytest.fixture
def rp():
    with LocalRP() as local:
        yield local


@pytest.fixture
def server(make_app, pki, rp, tmp_path):
    """A live provider trusting the test PKI, on its own origin, whose portal sends to ``rp``."""
    folder = tmp_path / "eid"
    folder.mkdir()
    (folder / "root.pem").write_bytes(pki.root.pem)
    (folder / "citizen-ca.pem").write_bytes(pki.citizen_ca.pem)
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    app = make_app(
        {
            "clients": rp_clients(rp, backchannel=False),
            "connectors": {
                "eid": {
                    "trust_anchors": [str(folder / "root.pem")],
                    "intermediates": [str(folder / "citizen-ca.pem")],
                    "ocsp": {"mode": "require", "timeout": 3},
                    "allowed_origins": [origin],
                }
            },
            "methods": {"eid": {"enabled": True, "register": False}},
        },
        issuer=origin,
    )
    live = LiveServer(app, port).start()
    yield live
    live.stop()


class Bridge:
    """The real bridge process; its PIN prompt answers what ``pin_file`` holds."""

    def __init__(self, url: str, process: subprocess.Popen, pin_file: Path) -> None:
        self.url = url
        self.process = process
        self.pin_file = pin_file

    def pin(self, value: str) -> None:
        self.pin_file.write_text(value + "\n")


@pytest.fixture
def bridge(server, token, tmp_path):
    pin_file = tmp_path / "pin"
    pin_file.write_text(PIN + "\n")
    prompt = tmp_path / "askpin.sh"
    prompt.write_text(f"#!/bin/sh\ncat '{pin_file}'\n")
    prompt.chmod(0o700)
    process, url = start_bridge(
        {**token.env, "XDG_CONFIG_HOME": str(tmp_path / "config")},
        server.url,
        "--pin-prompt",
        f"command:{prompt}",
    )
    try:
        point_page_at_bridge(server.app, url)  # what the page's data-bridge-url tells eid.js
        yield Bridge(url, process, pin_file)
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()


@pytest.fixture
def person(server, card) -> str:
    """An account holding the card's national register number, with nothing pending; its sub."""
    from idp.accounts.users import create_local_account
    from idp.core.hashing import national_number_hash
    from idp.core.storage import db
    from idp.login.actions import terms_version

    with server.app.app_context():
        account = create_local_account(
            "alice", password="correct horse battery staple", email="alice@example.com", phone="+32470123456"
        )
        account.national_number_hash = national_number_hash(card.citizen.national_number)
        account.terms_version = terms_version()
        db.session.commit()
        return account.sub


def to_eid_page(page, server, rp) -> dict:
    """The RP's authorization request, the chooser, the eID page with the card found; what the RP kept."""
    url, kept = rp.authorization(
        server.url, "portal", rp.url + PORTAL_CALLBACK, acr_values="urn:idp:acr:high"
    )
    page.goto(url)
    page.wait_for_url("**/login/**")
    page.click(".method-eid a")
    page.wait_for_url("**/eid")
    page.wait_for_selector("#eid-start:enabled")  # eid.js asked the bridge: reader and card present
    assert page.text_content("#eid-status") == message(page, "ready")
    return kept


def message(page, code: str) -> str:
    """The sentence the page carries for ``code``, in the page's language."""
    return page.text_content(f"#eid-messages [data-code='{code}']")


def csp_violations(page) -> list[str]:
    return [e for e in page.csp_errors if "Content Security Policy" in e]


def id_token_at_rp(page, server, rp, kept) -> dict:
    page.wait_for_url(rp.url + PORTAL_CALLBACK + "?*")
    code = rp.callback(server.url, PORTAL_CALLBACK, kept)
    tokens = rp.redeem(server.url, kept, code, PORTAL_SECRET)
    return rp.verify(server.url, tokens["id_token"], kept)


def test_rp_gets_an_id_token_with_level_high_after_an_eid_login_through_the_bridge(
    server, bridge, person, rp, page
):
    kept = to_eid_page(page, server, rp)
    assert page.get_attribute("#eid-login", "data-bridge-url") == bridge.url
    page.click("#eid-start")
    claims = id_token_at_rp(page, server, rp, kept)
    assert claims["sub"] == person
    assert claims["acr"] == "urn:idp:acr:high"
    assert claims["amr"] == ["hwk", "pin", "sc"]
    assert not csp_violations(page)


def test_wrong_pin_shows_the_message_with_tries_left_and_the_right_pin_then_logs_in(
    server, bridge, person, rp, page
):
    kept = to_eid_page(page, server, rp)

    # The real bridge refuses the wrong PIN. SoftHSM2 then sets CKF_USER_PIN_COUNT_LOW, as a card
    # does after a wrong entry: on a three-try eID card that leaves two.
    bridge.pin("0000")
    page.click("#eid-start")
    page.wait_for_selector("#eid-error:visible")
    assert page.text_content("#eid-error") == message(page, "pin_wrong_tries").replace("{tries}", "2")
    assert page.is_visible("#eid-retry")

    # A real card on its last try sets CKF_USER_PIN_FINAL_TRY and the bridge answers tries_left 1:
    # SoftHSM2 cannot, so that field is added to the real bridge's answer on its way to the page.
    def last_try(route):
        response = route.fetch()
        assert response.status == 401 and response.json()["error"] == "pin_wrong", response.text()
        route.fulfill(response=response, json={**response.json(), "tries_left": 1})

    page.route(bridge.url + "/authenticate", last_try)
    page.click("#eid-retry")
    page.wait_for_function(
        "expected => document.getElementById('eid-error').textContent === expected",
        arg=message(page, "pin_wrong_tries").replace("{tries}", "1"),
    )
    page.unroute(bridge.url + "/authenticate")

    # The right PIN: the same page logs in (a fresh challenge; the failed ones are used up).
    bridge.pin(PIN)
    page.click("#eid-retry")
    claims = id_token_at_rp(page, server, rp, kept)
    assert claims["sub"] == person and claims["acr"] == "urn:idp:acr:high"
    assert not csp_violations(page)


def test_pin_blocked_on_the_card_says_where_to_unblock_it_without_try_again(server, bridge, person, rp, page):
    to_eid_page(page, server, rp)
    # SoftHSM2 has no PIN counter: the real bridge's answer for a blocked card (423 pin_blocked) is served.
    page.route(
        bridge.url + "/authenticate",
        lambda route: route.fulfill(
            status=423, json={"error": "pin_blocked", "message": "the PIN is blocked"}
        ),
    )
    page.click("#eid-start")
    page.wait_for_selector("#eid-error:visible")
    assert page.text_content("#eid-error") == message(page, "pin_blocked")
    assert "PUK" in message(page, "pin_blocked")
    assert not page.is_visible("#eid-retry") and page.is_visible("#eid-other-ways a")


def test_a_bridge_older_than_the_minimum_version_asks_for_the_update(server, bridge, rp, page):
    from dataclasses import replace

    connectors = server.app.extensions["idp.settings"].connectors
    eid = connectors["eid"]
    connectors["eid"] = replace(eid, page=replace(eid.page, min_bridge_version="99.0", web_eid=False))
    url, _kept = rp.authorization(
        server.url, "portal", rp.url + PORTAL_CALLBACK, acr_values="urn:idp:acr:high"
    )
    page.goto(url)
    page.click(".method-eid a")
    page.wait_for_selector("#eid-error:visible")
    assert page.text_content("#eid-error") == message(page, "bridge_update")
    assert page.is_visible("#eid-install") and page.is_disabled("#eid-start")
