"""End to end in Chromium with the browser's own virtual authenticator (Chrome DevTools Protocol).

The authenticator is a platform one (``internal`` transport, resident keys,
user verification that succeeds), as on a phone or a laptop with a
fingerprint reader. The person logs in at the demo relying party with
password + SMS, accepts the offer to create a passkey, logs out, and logs in
again with the passkey: no SMS is sent, and the ID token says how. A removed
passkey no longer works, and an assertion signed with the same key for
another origin is refused.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from tests.conftest import PASSWORD, LiveServer, free_port, ready
from tests.support.sms_login import last_code, sms_to
from tests.support.webauthn_authenticator import SoftAuthenticator

pytestmark = pytest.mark.browser


@pytest.fixture
def server(make_app):
    """The provider at http://localhost:PORT: a WebAuthn RP ID is a host name, never an IP address."""
    port = free_port()
    server = LiveServer(make_app(issuer=f"http://localhost:{port}"), port).start()
    server.url = f"http://localhost:{port}"
    yield server
    server.stop()


def add_alice(server) -> None:
    with server.app.app_context():
        from idp.accounts.users import create_local_account

        sub = create_local_account(
            "alice", password=PASSWORD, email="alice@example.com", phone="+32470123456", given_name="Alice"
        ).sub
    ready(server.app, sub)


@pytest.fixture
def authenticator(page):
    """A virtual platform authenticator in this tab; (CDP session, authenticator id)."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable", {"enableUI": False})
    added = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return cdp, added["authenticatorId"]


def stored_passkeys(server) -> list:
    from idp.accounts.passkeys import Passkey
    from idp.core.storage import db

    with server.app.app_context():
        return list(db.session.scalars(select(Passkey)))


def password_login_with_offer(page, server) -> None:
    add_alice(server)
    page.goto(server.url + "/demo/")
    page.click("#demo-login")
    page.wait_for_url("**/login/**")
    # Conditional UI: the page asks for a passkey at once (mediation "conditional"), and the
    # browser offers the saved passkeys in the username field's autofill.
    with page.expect_request("**/passkey/options"):
        page.click("a[href$='/password']")
    assert page.get_attribute("#username", "autocomplete") == "username webauthn"
    page.fill("#username", "alice")
    page.fill("#password", PASSWORD)
    page.wait_for_function("document.getElementById('passkey-capable').value === '1'")
    page.click("form button[type=submit].primary")
    page.wait_for_url("**/code")
    page.fill("input[name=code]", last_code(server.app))
    page.click("button[type=submit].primary")
    page.wait_for_url("**/login/passkey/offer")


def passkey_login(page, server) -> None:
    page.goto(server.url + "/demo/")
    page.click("#demo-login")
    page.wait_for_url("**/login/**")
    page.click("a[href$='/passkey']")
    page.click("#passkey-button")


def claims_on_demo(page) -> dict:
    page.wait_for_url("**/demo/")
    return json.loads(page.text_content("#id-token-claims"))


def log_out(page) -> None:
    page.click("form[action$='/demo/logout'] button")
    page.wait_for_url("**/demo/")
    assert page.locator("#id-token-claims").count() == 0


def test_register_after_password_and_sms_then_log_in_with_the_passkey_and_no_sms(server, page, authenticator):
    cdp, authenticator_id = authenticator
    password_login_with_offer(page, server)
    page.click("#passkey-register-button")
    first = claims_on_demo(page)
    assert first["amr"] == ["pwd", "sms", "mfa"]
    (row,) = stored_passkeys(server)
    assert row.user_handle
    (credential,) = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})["credentials"]
    assert credential["isResidentCredential"] and credential["rpId"] == "localhost"

    log_out(page)
    sent = len(sms_to(server.app))
    passkey_login(page, server)
    claims = claims_on_demo(page)
    assert claims["amr"] == ["hwk", "user", "mfa"]
    assert claims["acr"] == "urn:idp:acr:substantial"
    assert len(sms_to(server.app)) == sent  # the outbox shows no new SMS
    assert stored_passkeys(server)[0].last_used_at is not None
    assert not [e for e in page.csp_errors if "Content Security Policy" in e]


def test_a_removed_passkey_no_longer_works(server, page, authenticator):
    password_login_with_offer(page, server)
    page.click("#passkey-register-button")
    claims_on_demo(page)
    page.goto(server.url + "/account/passkeys/")
    page.click("button.remove")
    page.wait_for_url("**/account/passkeys/")
    assert stored_passkeys(server) == []
    page.goto(server.url + "/demo/")
    log_out(page)
    passkey_login(page, server)
    page.wait_for_selector("#passkey-status:not([hidden])")
    assert "n'a pas pu être utilisée" in page.text_content("#passkey-status")  # the page is in French
    assert "/login/" in page.url


def test_an_assertion_for_another_origin_is_refused(server, page, authenticator):
    cdp, authenticator_id = authenticator
    password_login_with_offer(page, server)
    page.click("#passkey-register-button")
    claims_on_demo(page)
    log_out(page)
    (credential,) = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})["credentials"]
    # The same key, signing what the browser would only sign on another site.
    forged = SoftAuthenticator.from_virtual(credential, origin="https://login.example-phish.com")
    genuine = SoftAuthenticator.from_virtual(credential, origin=server.url)
    page.goto(server.url + "/demo/")
    page.click("#demo-login")
    page.wait_for_url("**/login/**")
    page.click("a[href$='/passkey']")
    page.wait_for_selector("#passkey-login")

    def attempt(signer: SoftAuthenticator) -> dict:
        options = page.evaluate(
            """async () => {
              const root = document.getElementById('passkey-login');
              const w = window.idpWebauthn;
              return w.post(root.dataset.optionsUrl, w.csrfToken());
            }"""
        )
        answer = signer.get(options["options"])
        return page.evaluate(
            """async (credential) => {
              const root = document.getElementById('passkey-login');
              const w = window.idpWebauthn;
              return w.post(root.dataset.verifyUrl, w.csrfToken(), {credential});
            }""",
            answer,
        )

    refused = attempt(forged)
    assert refused["ok"] is False and "redirect" not in refused
    accepted = attempt(genuine)  # the key itself was fine: only the origin was wrong
    assert accepted["ok"] is True and accepted["redirect"]
