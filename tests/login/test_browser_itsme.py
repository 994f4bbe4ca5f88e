"""End to end in Chromium: RP -> provider -> itsme (the local fake) -> provider -> RP.

The fake itsme (``tests/fakes/itsme_provider.py``) runs on its own port and
sends the browser straight back to our callback with a code; the provider
then talks to it server to server (private_key_jwt, nested ID token and
userinfo). The relying party is ``tests/support/local_rp.py``: it gets the
code in the browser's redirect and redeems it at the live provider.
"""

from __future__ import annotations

import shutil
from urllib.parse import parse_qs, urlsplit

import pytest

from connectors.itsme import RPKeys
from tests.conftest import PORTAL_SECRET, LiveServer, free_port
from tests.fakes.itsme_provider import ACR_ADVANCED, ACR_BASIC, FakeItsme
from tests.login.test_itsme_login import add_known_person
from tests.support.local_rp import PORTAL_CALLBACK, LocalRP, rp_clients
from tests.support.sms_login import emails_to

pytestmark = pytest.mark.browser

CLIENT_ID = "provider-at-itsme"
SERVICE = "PORTAL_LOGIN"
PASSPHRASE = "itsme RP keys passphrase for tests"
NN = "85073003328"  # the fake's default person


@pytest.fixture(scope="module")
def keys_template(tmp_path_factory):
    folder = tmp_path_factory.mktemp("itsme-keys") / "keys"
    RPKeys.load_or_create(folder, PASSPHRASE)
    return folder


@pytest.fixture(scope="module")
def fake():
    with FakeItsme(client_id=CLIENT_ID, service_code=SERVICE, redirect_uris=[]) as server:
        yield server


@pytest.fixture
def rp():
    with LocalRP() as local:
        yield local


@pytest.fixture
def server(make_app, fake, keys_template, rp, tmp_path, monkeypatch):
    """A live provider whose itsme connector talks to the fake, and whose portal sends to ``rp``."""
    monkeypatch.setenv("ITSME_TEST_KEYS_PASSPHRASE", PASSPHRASE)
    keys_dir = tmp_path / "itsme-keys"
    shutil.copytree(keys_template, keys_dir)
    port = free_port()
    callback = f"http://127.0.0.1:{port}/login/itsme/callback"
    fake.reset()
    fake.redirect_uris[:] = [callback]
    app = make_app(
        {
            "clients": rp_clients(rp, backchannel=False),
            "connectors": {
                "itsme": {
                    "environment": "custom",
                    "discovery_url": fake.discovery_url,
                    "client_id": CLIENT_ID,
                    "service_code": SERVICE,
                    "redirect_uri": callback,
                    "keys_dir": str(keys_dir),
                    "keys_passphrase": "env:ITSME_TEST_KEYS_PASSPHRASE",
                    "timeout": 5,
                    "jwks_max_age": 600,
                }
            },
            "methods": {"itsme": {"enabled": True, "register": True}},
        },
        issuer=f"http://127.0.0.1:{port}",
    )
    fake.rp_jwks = app.extensions["idp.itsme.keys"].public_jwks_bytes
    live = LiveServer(app, port).start()
    yield live
    live.stop()


def known_person(app) -> str:
    """An account with verified contacts and the fake person's national register number: nothing pending."""
    return add_known_person(app, NN)


def start_itsme_login(page, server, rp, fake, level: str | None = None) -> tuple[dict, list[str]]:
    """The RP sends the browser to the provider; the person chooses itsme. (kept, URLs sent to itsme)."""
    extra = {"acr_values": server.app.extensions["idp.settings"].acr_for(level)} if level else {}
    url, kept = rp.authorization(server.url, "portal", rp.url + PORTAL_CALLBACK, **extra)
    at_itsme: list[str] = []
    page.on("request", lambda req: at_itsme.append(req.url) if req.url.startswith(fake.base_url) else None)
    page.goto(url)
    page.wait_for_url("**/login/**")
    page.click(".method-itsme a")
    return kept, at_itsme


def tokens_at_rp(page, server, rp, kept) -> tuple[dict, dict]:
    """The RP gets the code in the browser's redirect and redeems it; (token response, ID token claims)."""
    page.wait_for_url(rp.url + PORTAL_CALLBACK + "?*")
    code = rp.callback(server.url, PORTAL_CALLBACK, kept)
    tokens = rp.redeem(server.url, kept, code, PORTAL_SECRET)
    return tokens, rp.verify(server.url, tokens["id_token"], kept)


@pytest.mark.parametrize(
    "level, itsme_acr, amr",
    [
        ("high", ACR_ADVANCED, ["mfa", "hwk", "pin"]),
        ("substantial", ACR_BASIC, ["mfa", "hwk"]),
    ],
    ids=["high-asks-itsme-advanced", "substantial-asks-itsme-basic"],
)
def test_rp_gets_an_id_token_whose_acr_and_amr_reflect_the_itsme_login(
    server, rp, fake, page, level, itsme_acr, amr
):
    sub = known_person(server.app)
    kept, at_itsme = start_itsme_login(page, server, rp, fake, level)
    _tokens, claims = tokens_at_rp(page, server, rp, kept)

    [authorization] = at_itsme  # the browser went to itsme once, and came straight back
    sent = {k: v[0] for k, v in parse_qs(urlsplit(authorization).query).items()}
    assert sent["acr_values"] == itsme_acr
    assert sent["ui_locales"] == "fr"  # the browser speaks fr-BE
    assert sent["scope"].split()[:2] == ["openid", f"service:{SERVICE}"]
    assert claims["sub"] == sub
    assert claims["acr"] == server.app.extensions["idp.settings"].acr_for(level)
    assert claims["amr"] == amr
    assert not [e for e in page.csp_errors if "Content Security Policy" in e]


def test_new_person_registers_through_itsme_and_completes_the_required_actions_in_the_browser(
    server, rp, fake, page
):
    """itsme vouches for the phone number, not the e-mail address: the person confirms it by link first."""
    kept, _at_itsme = start_itsme_login(page, server, rp, fake, "high")
    page.wait_for_url("**/actions/email")
    assert page.input_value("#email") == "marie.dupont@example.be"  # offered from itsme, to be confirmed
    page.fill("#confirm", "marie.dupont@example.be")
    page.click("button[type=submit].primary")
    page.wait_for_url("**/actions/email/sent")
    [mail] = emails_to(server.app, "marie.dupont@example.be")
    link = next(word for word in mail["text"].split() if "/email/confirm/" in word)
    assert link.startswith(server.url + "/")  # built from the issuer
    page.goto(link)
    page.click("button[type=submit].primary")
    page.wait_for_url(lambda url: "/actions/" not in url or url.endswith("/actions/terms"))
    if page.url.endswith("/actions/terms"):
        page.check("input[name=accept]")
        page.click("button[type=submit].primary")

    tokens, claims = tokens_at_rp(page, server, rp, kept)
    assert claims["acr"] == server.app.extensions["idp.settings"].acr_for("high")
    assert claims["amr"] == ["mfa", "hwk", "pin"]
    person = rp.userinfo(server.url, tokens["access_token"])
    assert person["sub"] == claims["sub"]
    assert (person["email"], person["email_verified"]) == ("marie.dupont@example.be", True)
    assert (person["given_name"], person["family_name"]) == ("Marie", "Dupont")
    assert (person["phone_number"], person["phone_number_verified"]) == ("+32470123456", True)
    assert not [e for e in page.csp_errors if "Content Security Policy" in e]
