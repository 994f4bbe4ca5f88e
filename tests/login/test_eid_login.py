"""The eID login pages: challenge, verification, account resolution, and one real bridge on SoftHSM2.

Tokens are signed in software with the test PKI (``tests/support/eid_pki.py``)
for speed; the end-to-end test at the bottom runs the real bridge process on a
SoftHSM2 token and plays the page script's part over HTTP.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from connectors.config import ConfigErrors
from connectors.eid import ERROR_CODES
from idp.core.kv import MemoryStore
from idp.login.eid import page_messages, provider_origin, server_messages
from tests.conftest import (
    PORTAL_SECRET,
    LiveServer,
    authorize_params,
    csrf_from,
    exchange,
    free_port,
    query_of,
)
from tests.support.eid_pki import (  # noqa: F401 (the "responder", "pki", "card" and "http" fixtures)
    Citizen,
    EidPki,
    card_fixture,
    http_fixture,
    pki_fixture,
    reset_responder,
    responder_fixture,
)
from tests.support.softhsm import create_card_token, point_page_at_bridge, require_softhsm, start_bridge

ORIGIN = "http://localhost"  # the test issuer's origin
BRIDGE_CODES = (
    "no_middleware",
    "no_reader",
    "no_card",
    "pin_cancelled",
    "pin_wrong",
    "pin_blocked",
    "unsupported_card",
)


# -- fixtures -------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def fresh_responder(responder):
    reset_responder(responder)


@pytest.fixture
def eid_config(tmp_path, pki):
    """Trust anchors written to files, as an operator configures them."""
    folder = tmp_path / "eid"
    folder.mkdir()
    (folder / "root.pem").write_bytes(pki.root.pem)
    (folder / "citizen-ca.pem").write_bytes(pki.citizen_ca.pem)

    def make(register: bool = True, enabled: bool = True, **connector) -> dict:
        table = {
            "trust_anchors": [str(folder / "root.pem")],
            "intermediates": [str(folder / "citizen-ca.pem")],
            "ocsp": {"mode": "require", "timeout": 3},
            "allowed_origins": [ORIGIN],
            **connector,
        }
        return {
            "connectors": {"eid": table},
            "methods": {"eid": {"enabled": enabled, "register": register}},
        }

    return make


@pytest.fixture
def eid_app(make_app, eid_config):
    return make_app(eid_config())


def link_account(app, card) -> str:
    """A local account with verified contacts that holds the card's national number; its sub."""
    from idp.accounts.users import create_local_account
    from idp.core.hashing import national_number_hash
    from idp.core.storage import db
    from idp.login.actions import terms_version

    with app.app_context():
        account = create_local_account(
            "alice", password="correct horse battery staple", email="alice@example.com", phone="+32470123456"
        )
        account.national_number_hash = national_number_hash(card.citizen.national_number)
        account.terms_version = terms_version()
        db.session.commit()
        return account.sub


@pytest.fixture
def linked(eid_app, card):
    return link_account(eid_app, card)


class Browser:
    """The page script's part, through the Flask test client."""

    def __init__(self, client) -> None:
        self.client = client
        self.verifier = None
        self.csrf = None

    def begin(self, **extra) -> str:
        params, self.verifier = authorize_params(**extra)
        resp = self.client.get("/authorize", query_string=params)
        assert resp.status_code == 302 and "/login/" in resp.location, resp.get_data(as_text=True)
        return urlsplit(resp.location).path

    def open(self, tx_path: str):
        page = self.client.get(tx_path + "/eid")
        assert page.status_code == 200, page.get_data(as_text=True)
        self.csrf = re.search(r'data-csrf-token="([^"]+)"', page.get_data(as_text=True)).group(1)
        return page

    def challenge(self, tx_path: str, csrf: str | None = "page"):
        headers = {"X-CSRFToken": self.csrf if csrf == "page" else csrf} if csrf else {}
        return self.client.post(tx_path + "/eid/challenge", json={}, headers=headers)

    def new_challenge(self, tx_path: str) -> str:
        resp = self.challenge(tx_path)
        assert resp.status_code == 200, resp.json
        return resp.json["challenge"]

    def verify(self, tx_path: str, token, csrf: str | None = "page"):
        headers = {"X-CSRFToken": self.csrf if csrf == "page" else csrf} if csrf else {}
        return self.client.post(tx_path + "/eid/verify", json=token, headers=headers)

    def ready(self) -> str:
        tx = self.begin()
        self.open(tx)
        return tx


def id_token_claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def audit_reasons(app) -> list[str]:
    from idp.core.storage import AuditEvent, db

    with app.app_context():
        rows = db.session.scalars(
            select(AuditEvent).where(AuditEvent.method == "eid").order_by(AuditEvent.id)
        ).all()
        return [(r.detail or {}).get("reason") for r in rows if r.outcome == "failure"]


def assert_refused(resp, code: str, status: int = 400) -> None:
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.json["error"] == code
    assert resp.json["message"] == server_messages()[code]


# -- the page ----------------------------------------------------------------------------


def test_chooser_links_to_the_eid_page(eid_app):
    browser = Browser(eid_app.test_client())
    tx = browser.begin()
    html = browser.client.get(tx).get_data(as_text=True)
    assert f'href="{tx}/eid"' in html


def test_page_carries_urls_and_messages_without_inline_script(eid_app):
    browser = Browser(eid_app.test_client())
    tx = browser.begin()
    page = browser.open(tx)
    html = page.get_data(as_text=True)
    assert 'data-bridge-url="http://127.0.0.1:35963"' in html
    assert f'data-challenge-url="{tx}/eid/challenge"' in html
    assert f'data-verify-url="{tx}/eid/verify"' in html
    assert re.findall(r"<script[^>]*>", html) == ['<script src="/static/js/eid.js">']
    assert " style=" not in html and "<style" not in html
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    for code in (
        *BRIDGE_CODES,
        *ERROR_CODES,
        "challenge_expired",
        "challenge_replayed",
        "bridge_not_running",
    ):
        assert f'data-code="{code}"' in html, code
    assert eid_app.test_client().get("/static/js/eid.js").status_code == 200


def test_page_uses_the_configured_bridge_url(make_app, eid_config):
    app = make_app(eid_config(page={"bridge_url": "http://127.0.0.1:40000", "min_bridge_version": "1.2"}))
    browser = Browser(app.test_client())
    html = browser.open(browser.begin()).get_data(as_text=True)
    assert 'data-bridge-url="http://127.0.0.1:40000"' in html
    assert 'data-min-bridge-version="1.2"' in html


def test_page_is_in_the_users_language_source_strings(eid_app):
    # The catalogs come later: the messages are the English source strings, one per code.
    messages = page_messages()
    assert len(set(messages.values())) == len(messages)


def test_page_of_a_disabled_method_sends_back_to_the_chooser(make_app, eid_config):
    app = make_app(eid_config(enabled=False))
    browser = Browser(app.test_client())
    tx = browser.begin()
    resp = browser.client.get(tx + "/eid")
    assert resp.status_code == 303 and resp.location.endswith(tx)
    assert browser.client.post(tx + "/eid/challenge", json={}).status_code == 400  # no CSRF token at all


def test_help_page_explains_the_bridge(eid_app):
    resp = eid_app.test_client().get("/login/eid/help")
    assert resp.status_code == 200
    assert "idp-eid-bridge --allowed-origin http://localhost" in resp.get_data(as_text=True)


# -- the challenge -------------------------------------------------------------------------


def test_challenge_is_32_random_bytes_in_base64(eid_app):
    browser = Browser(eid_app.test_client())
    tx = browser.ready()
    first, second = browser.new_challenge(tx), browser.new_challenge(tx)
    assert len(first) == 44 and len(base64.b64decode(first, validate=True)) == 32
    assert first != second


def test_challenge_is_kept_in_the_shared_store_for_challenge_ttl(make_app, eid_config):
    app = make_app(eid_config(challenge_ttl=120))
    browser = Browser(app.test_client())
    tx = browser.ready()
    resp = browser.challenge(tx)
    assert resp.json["expires_in"] == 120
    kv = app.extensions["idp.kv"]
    keys = [k for k in kv._data if k.startswith("eid:challenge:")]
    assert len(keys) == 1 and kv.get(keys[0]) == resp.json["challenge"].encode()
    assert 118 <= kv.ttl(keys[0]) <= 120


@pytest.mark.parametrize("csrf", [None, "not-the-token"])
def test_challenge_requires_the_csrf_header(eid_app, csrf):
    browser = Browser(eid_app.test_client())
    tx = browser.ready()
    assert_refused(browser.challenge(tx, csrf=csrf), "session_invalid")


def test_challenge_for_an_unknown_transaction_is_refused(eid_app):
    browser = Browser(eid_app.test_client())
    browser.ready()
    assert_refused(browser.challenge("/login/not-a-transaction"), "login_expired")


def test_challenge_refused_when_the_method_is_disabled(make_app, eid_config):
    app = make_app(eid_config(enabled=False))
    browser = Browser(app.test_client())
    tx = browser.begin()
    browser.csrf = csrf_from(browser.client.get(tx + "/password").get_data(as_text=True))
    assert_refused(browser.challenge(tx), "method_unavailable", 403)


def test_challenges_per_login_are_limited(eid_app):
    browser = Browser(eid_app.test_client())
    tx = browser.ready()
    for _ in range(20):
        browser.new_challenge(tx)
    assert_refused(browser.challenge(tx), "too_many_attempts", 429)


# -- verification: the good path ------------------------------------------------------------


def test_eid_login_gives_the_rp_an_id_token_with_level_high(eid_app, linked, card):
    browser = Browser(eid_app.test_client())
    tx = browser.ready()
    challenge = browser.new_challenge(tx)
    resp = browser.verify(tx, card.token(ORIGIN, challenge))
    assert resp.status_code == 200, resp.json
    assert resp.json["redirect"].startswith("/authorize/")
    back = browser.client.get(resp.json["redirect"])
    assert back.status_code == 302, back.get_data(as_text=True)
    code = query_of(back.location)["code"]
    tokens = exchange(browser.client, code, browser.verifier)
    assert tokens.status_code == 200, tokens.json
    claims = id_token_claims(tokens.json["id_token"])
    assert claims["acr"] == "urn:idp:acr:high"
    assert claims["amr"] == ["hwk", "pin", "sc"]
    assert claims["sub"] == linked


def test_new_person_registers_and_goes_through_the_required_actions(eid_app, card):
    from idp.core.storage import Account, FederatedIdentity, db

    browser = Browser(eid_app.test_client())
    tx = browser.ready()
    resp = browser.verify(tx, card.token(ORIGIN, browser.new_challenge(tx)))
    assert resp.status_code == 200, resp.json
    assert resp.json["redirect"] == tx + "/actions"  # e-mail and mobile to add before going back
    with eid_app.app_context():
        account = db.session.scalar(select(Account))
        assert (account.given_name, account.family_name, account.birthdate) == (
            "Alice Marie",
            "Peeters",
            "1985-07-30",
        )
        link = db.session.scalar(select(FederatedIdentity))
        assert (link.account_id, link.method, link.issuer) == (account.id, "eid", "urn:be:fedict:eid")
        assert card.citizen.card_number not in link.subject


def test_account_page_login_without_a_relying_party(eid_app, linked, card):
    browser = Browser(eid_app.test_client())
    browser.open("/login/-")
    challenge = browser.new_challenge("/login/-")
    resp = browser.verify("/login/-", card.token(ORIGIN, challenge))
    assert resp.status_code == 200, resp.json
    assert resp.json["redirect"] == "/account/"


def test_second_login_reuses_the_ocsp_answer_from_the_shared_store(eid_app, card, responder):
    for _ in range(2):
        browser = Browser(eid_app.test_client())
        tx = browser.ready()
        challenge = browser.new_challenge(tx)
        assert browser.verify(tx, card.token(ORIGIN, challenge)).status_code == 200
    assert responder.requests == 1
    assert any(k.startswith("eid-ocsp:") for k in eid_app.extensions["idp.kv"]._data)


def test_customer_record_with_the_national_number_gets_its_account(make_app, eid_config, card):
    from idp.core.hashing import national_number_hash
    from idp.core.storage import Account, Customer, db

    app = make_app(eid_config(register=False))
    with app.app_context():
        customer = Customer(
            customer_number="C-1001",
            national_number_hash=national_number_hash(card.citizen.national_number),
            email="alice@example.com",
        )
        db.session.add(customer)
        db.session.commit()
        customer_id = customer.id
    browser = Browser(app.test_client())
    tx = browser.ready()
    resp = browser.verify(tx, card.token(ORIGIN, browser.new_challenge(tx)))
    assert resp.status_code == 200, resp.json
    with app.app_context():
        account = db.session.scalar(select(Account).where(Account.customer_id == customer_id))
        assert account is not None and account.family_name == "Peeters"


def test_unknown_person_without_registration_has_no_account(make_app, eid_config, card):
    app = make_app(eid_config(register=False))
    browser = Browser(app.test_client())
    tx = browser.ready()
    resp = browser.verify(tx, card.token(ORIGIN, browser.new_challenge(tx)))
    assert_refused(resp, "no_account", 403)
    assert audit_reasons(app) == ["no_account"]


def test_disabled_account_is_refused(eid_app, linked, card):
    from idp.core.storage import Account, db

    with eid_app.app_context():
        db.session.scalar(select(Account).where(Account.sub == linked)).status = "disabled"
        db.session.commit()
    browser = Browser(eid_app.test_client())
    tx = browser.ready()
    assert_refused(browser.verify(tx, card.token(ORIGIN, browser.new_challenge(tx))), "account_disabled", 403)


# -- verification: the challenge ----------------------------------------------------------------


def test_replayed_challenge_is_refused(eid_app, card):
    browser = Browser(eid_app.test_client())
    tx = browser.ready()
    token = card.token(ORIGIN, browser.new_challenge(tx))
    assert browser.verify(tx, token).status_code == 200
    assert_refused(browser.verify(tx, token), "challenge_replayed")


def test_challenge_is_used_up_by_a_failed_attempt_too(eid_app, card):
    browser = Browser(eid_app.test_client())
    tx = browser.ready()
    challenge = browser.new_challenge(tx)
    assert_refused(browser.verify(tx, card.token("https://evil.example", challenge)), "bad_signature")
    assert_refused(browser.verify(tx, card.token(ORIGIN, challenge)), "challenge_replayed")


def test_expired_challenge_is_refused(make_app, eid_config, card):
    app = make_app(eid_config(challenge_ttl=300))
    now = [1000.0]
    app.extensions["idp.kv"] = MemoryStore(clock=lambda: now[0])  # sessions live there too
    browser = Browser(app.test_client())
    tx = browser.ready()
    challenge = browser.new_challenge(tx)
    now[0] += 301
    assert_refused(browser.verify(tx, card.token(ORIGIN, challenge)), "challenge_expired")
    challenge = browser.new_challenge(tx)
    now[0] += 299
    assert browser.verify(tx, card.token(ORIGIN, challenge)).status_code == 200


def test_token_posted_from_another_browser_session_is_refused(eid_app, card):
    alice, mallory = Browser(eid_app.test_client()), Browser(eid_app.test_client())
    alice_tx, mallory_tx = alice.ready(), mallory.ready()
    token = card.token(ORIGIN, alice.new_challenge(alice_tx))
    assert_refused(mallory.verify(mallory_tx, token), "challenge_other_session")
    mallory.new_challenge(mallory_tx)
    assert_refused(mallory.verify(mallory_tx, token), "challenge_other_session")
    # Alice's own transaction is not Mallory's to use.
    assert_refused(mallory.verify(alice_tx, token), "login_expired")
    assert audit_reasons(eid_app) == ["challenge_other_session", "challenge_other_session", "login_expired"]
    # ...and the stolen token did not burn Alice's challenge.
    assert alice.verify(alice_tx, token).status_code == 200


def test_token_for_another_transaction_of_the_same_browser_is_refused(eid_app, card):
    browser = Browser(eid_app.test_client())
    first = browser.ready()
    second = browser.begin()
    token = card.token(ORIGIN, browser.new_challenge(first))
    assert_refused(browser.verify(second, token), "challenge_other_session")


def test_token_for_a_replaced_challenge_is_refused(eid_app, card):
    browser = Browser(eid_app.test_client())
    tx = browser.ready()
    old = browser.new_challenge(tx)
    browser.new_challenge(tx)
    assert_refused(browser.verify(tx, card.token(ORIGIN, old)), "challenge_expired")


def test_never_issued_challenge_is_refused(eid_app, card):
    browser = Browser(eid_app.test_client())
    tx = browser.ready()
    assert_refused(browser.verify(tx, card.token(ORIGIN, "A" * 43 + "=")), "challenge_expired")


@pytest.mark.parametrize("csrf", [None, "forged"])
def test_verify_requires_the_csrf_header(eid_app, card, csrf):
    browser = Browser(eid_app.test_client())
    tx = browser.ready()
    token = card.token(ORIGIN, browser.new_challenge(tx))
    assert_refused(browser.verify(tx, token, csrf=csrf), "session_invalid")
    assert browser.verify(tx, token).status_code == 200  # the challenge was not spent


# -- verification: the verifier's refusals pass through ------------------------------------------


def _tamper_identity(card, challenge):
    tok = card.token(ORIGIN, challenge)
    data = bytearray(card.data_file)
    data[data.index(b"Peeters")] = ord("X")
    tok["identity"] = {**tok["identity"], "data_file": base64.b64encode(bytes(data)).decode()}
    return tok


CASES = {
    "malformed": lambda pki, card, c, r: {**card.token(ORIGIN, c), "format": "other/1"},
    "bad_signature": lambda pki, card, c, r: card.token("https://evil.example", c),
    "wrong_certificate": lambda pki, card, c, r: card.token(ORIGIN, c, use=card.signature),
    "certificate_expired": lambda pki, card, c, r: pki.card(expired=True).token(ORIGIN, c),
    "untrusted_certificate": lambda pki, card, c, r: EidPki(r.url, name="Other").card().token(ORIGIN, c),
    "certificate_revoked": lambda pki, card, c, r: (
        r.revoke(card.authentication.cert),
        card.token(ORIGIN, c),
    )[1],
    "revocation_unknown": lambda pki, card, c, r: (
        r.mark_unknown(card.authentication.cert),
        card.token(ORIGIN, c),
    )[1],
    "identity_file_invalid": lambda pki, card, c, r: _tamper_identity(card, c),
    "national_number_mismatch": lambda pki, card, c, r: pki.card(
        Citizen(national_number="90010100123"), file_national_number="85073003328"
    ).token(ORIGIN, c),
}


@pytest.mark.parametrize("code", list(CASES))
def test_verifier_refusals_reach_the_page_with_their_own_message(eid_app, pki, card, responder, code):
    browser = Browser(eid_app.test_client())
    tx = browser.ready()
    token = CASES[code](pki, card, browser.new_challenge(tx), responder)
    assert_refused(browser.verify(tx, token), code)
    assert audit_reasons(eid_app) == [code]
    assert browser.client.get("/account/").status_code != 200  # not logged in


def test_national_number_is_never_logged(eid_app, linked, pki, card, caplog):
    caplog.set_level(logging.DEBUG)
    browser = Browser(eid_app.test_client())
    tx = browser.ready()
    assert browser.verify(tx, card.token(ORIGIN, browser.new_challenge(tx))).status_code == 200
    other = pki.card(Citizen(national_number="90010100123"), file_national_number="85073003328")
    browser = Browser(eid_app.test_client())
    tx = browser.ready()
    assert browser.verify(tx, other.token(ORIGIN, browser.new_challenge(tx))).status_code == 400
    assert "85073003328" not in caplog.text and "90010100123" not in caplog.text


def test_unreachable_ocsp_responder_fails_closed(eid_app, card, responder):
    responder.behaviour = "down"
    browser = Browser(eid_app.test_client())
    tx = browser.ready()
    assert_refused(
        browser.verify(tx, card.token(ORIGIN, browser.new_challenge(tx))), "revocation_unavailable"
    )


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'"a string"', b"{}", b'{"challenge": 5}'],
)
def test_junk_is_refused_as_malformed_never_a_500(eid_app, body):
    browser = Browser(eid_app.test_client())
    tx = browser.ready()
    browser.new_challenge(tx)
    resp = browser.client.post(
        tx + "/eid/verify",
        data=body,
        headers={"X-CSRFToken": browser.csrf, "Content-Type": "application/json"},
    )
    assert_refused(resp, "malformed")


def test_origin_is_the_issuers_never_the_host_header(eid_app, linked, card):
    browser = Browser(eid_app.test_client())
    tx = browser.ready()
    # A request that reaches the provider under another host name (a misrouted or rebound request),
    # with this browser's session.
    sid = browser.client.get_cookie("idp_session").value
    browser.client.set_cookie("idp_session", sid, domain="evil.example")
    evil = {"X-CSRFToken": browser.csrf, "Host": "evil.example"}
    token = card.token("http://evil.example", browser.new_challenge(tx))
    assert_refused(browser.client.post(tx + "/eid/verify", json=token, headers=evil), "bad_signature")
    token = card.token(ORIGIN, browser.new_challenge(tx))
    resp = browser.client.post(tx + "/eid/verify", json=token, headers=evil)
    assert resp.status_code == 200, resp.json


def test_allowed_origins_without_the_issuers_stops_start_up(make_app, eid_config):
    with pytest.raises(ConfigErrors) as err:
        make_app(eid_config(allowed_origins=["https://login.example.be"]))
    assert [e.key for e in err.value.errors] == ["connectors.eid.allowed_origins"]
    assert "'http://localhost'" in err.value.errors[0].reason


def test_other_allowed_origins_do_not_widen_what_the_provider_accepts(make_app, eid_config, card):
    app = make_app(eid_config(allowed_origins=[ORIGIN, "https://other.example.be"]))
    browser = Browser(app.test_client())
    tx = browser.ready()
    token = card.token("https://other.example.be", browser.new_challenge(tx))
    assert_refused(browser.verify(tx, token), "bad_signature")


@pytest.mark.parametrize(
    ("issuer", "origin"),
    [
        ("https://login.example.be", "https://login.example.be"),
        ("https://Login.Example.be/idp/", "https://login.example.be"),
        ("https://login.example.be:443/idp", "https://login.example.be"),
        ("https://login.example.be:8443", "https://login.example.be:8443"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("http://localhost:80", "http://localhost"),
        ("http://[::1]:5000/x", "http://[::1]:5000"),
    ],
)
def test_provider_origin_is_the_serialised_origin_of_the_issuer(issuer, origin):
    assert provider_origin(issuer) == origin


# -- end to end: the real bridge on SoftHSM2 ---------------------------------------------------------


@pytest.fixture
def pin_prompt(tmp_path):
    script = tmp_path / "askpin.sh"
    script.write_text("#!/bin/sh\necho 1234\n")
    script.chmod(0o700)
    return script


@pytest.mark.softhsm
def test_end_to_end_with_the_real_bridge(make_app, eid_config, card, tmp_path, pin_prompt, http):
    bridge_login(make_app, eid_config, card, tmp_path, pin_prompt, http)


def bridge_login(make_app, eid_config, card, tmp_path, pin_prompt, http, command=None) -> None:
    """An RP's login through the eID page's steps and a bridge (``command``: an installed one)."""
    require_softhsm()
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    config = eid_config()
    config["connectors"]["eid"]["allowed_origins"] = [origin]
    app = make_app(config, issuer=origin)
    sub = link_account(app, card)
    server = LiveServer(app, port).start()
    token_dir = tmp_path / "softhsm"
    soft = create_card_token(token_dir, card)
    bridge, bridge_url = start_bridge(
        soft.env, server.url, "--pin-prompt", f"command:{pin_prompt}", command=command
    )
    try:
        point_page_at_bridge(server.app, bridge_url)

        # The RP sends the browser to the provider.
        params, verifier = authorize_params(redirect_uri="http://127.0.0.1:8123/callback")
        resp = http.get(server.url + "/authorize", params=params, allow_redirects=False)
        assert resp.status_code == 302 and "/login/" in resp.headers["Location"]
        tx = urlsplit(resp.headers["Location"]).path

        # The eID page, as the browser loads it.
        page = http.get(server.url + tx + "/eid").text
        data = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', page))
        assert data["bridge-url"] == bridge_url
        status = http.get(bridge_url + "/status", headers={"Origin": server.url}, timeout=10).json()
        assert status["card"] is True

        # eid.js: challenge, bridge, verify, follow the redirect.
        headers = {"X-CSRFToken": data["csrf-token"], "Origin": server.url}
        issued = http.post(server.url + data["challenge-url"], json={}, headers=headers)
        challenge = issued.json()["challenge"]
        token = http.post(
            bridge_url + "/authenticate",
            json={"challenge": challenge},
            headers={"Origin": server.url},
            timeout=60,
        )
        assert token.status_code == 200, token.text
        done = http.post(server.url + data["verify-url"], json=token.json(), headers=headers)
        assert done.status_code == 200, done.text
        back = http.get(server.url + done.json()["redirect"], allow_redirects=False)
        assert back.status_code == 302, back.text
        code = query_of(back.headers["Location"])["code"]

        # The RP redeems the code.
        tokens = http.post(
            server.url + "/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "code_verifier": verifier,
                "redirect_uri": "http://127.0.0.1:8123/callback",
            },
            auth=("portal", PORTAL_SECRET),
        )
        assert tokens.status_code == 200, tokens.text
        claims = id_token_claims(tokens.json()["id_token"])
        assert claims["acr"] == "urn:idp:acr:high"
        assert claims["amr"] == ["hwk", "pin", "sc"]
        assert claims["aud"] == "portal" and claims["nonce"] == params["nonce"] and claims["sub"] == sub
    finally:
        bridge.terminate()
        bridge.wait(timeout=10)
        server.stop()
