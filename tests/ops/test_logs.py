"""Logs: INFO by default, one line per event, JSON lines on request, a request id, no secrets.

Each login method runs end to end with the provider's own log handler
writing to standard error (captured here), and the output is searched for
every secret the login handled: password, SMS code, authorization code,
tokens, client secret, itsme's code, national register number.
"""

from __future__ import annotations

import json
import logging
from urllib.parse import urlsplit

import pytest
import requests

from idp.core import logs
from tests.conftest import PASSWORD, PORTAL_SECRET, authorize_params, exchange, get_code, query_of
from tests.login.test_eid_login import ORIGIN, Browser, link_account
from tests.login.test_itsme_login import (  # noqa: F401 (the "fake", "keys_template" and "itsme_config" fixtures)
    NN,
    add_known_person,
    at_itsme,
    fake,
    itsme_config,
    keys_template,
    to_itsme,
    to_login_page,
)
from tests.support.eid_pki import (  # noqa: F401 (the "responder", "pki", "card" and "http" fixtures)
    card_fixture,
    http_fixture,
    pki_fixture,
    reset_responder,
    responder_fixture,
)
from tests.support.sms_login import last_code
from tests.support.softhsm import create_card_token, require_softhsm, start_bridge

JSON_LOGS = {"logging": {"format": "json"}}


@pytest.fixture(autouse=True)
def _restore_logging():
    yield
    logs.configure(logs.LoggingSettings())


def lines_of(err: str) -> list[dict]:
    """Every line the provider wrote, each one JSON object."""
    return [json.loads(line) for line in err.splitlines() if line.strip()]


def assert_clean(err: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret and secret not in err, f"a secret ({secret[:6]}...) is in the log"


def login_line(lines: list[dict], method: str) -> dict:
    found = [
        x
        for x in lines
        if "event=login outcome=success" in x["message"] and f"method={method}" in x["message"]
    ]
    assert found, [x["message"] for x in lines]
    return found[-1]


def tokens_of(client, code: str, verifier: str) -> list[str]:
    resp = exchange(client, code, verifier)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    return [body["access_token"], body["refresh_token"], body["id_token"]]


def test_password_and_sms_login_logs_the_events_and_no_secret(make_app, capsys):
    app = make_app(JSON_LOGS)
    from tests.conftest import make_user_in

    make_user_in(app)
    client = app.test_client()
    params, verifier = authorize_params()
    code = get_code(client, params)["code"]
    tokens = tokens_of(client, code, verifier)
    sms_code = last_code(app)
    err = capsys.readouterr().err

    lines = lines_of(err)
    line = login_line(lines, "password")
    assert line["level"] == "INFO" and len(line["request_id"]) == 32 and line["client_id"] == "portal"
    assert any(x["logger"] == "idp.access" and x["message"].startswith("POST /token 200") for x in lines)
    assert_clean(err, PASSWORD, sms_code, code, PORTAL_SECRET, *tokens)


def test_itsme_login_logs_the_events_and_no_secret(make_app, itsme_config, fake, capsys):  # noqa: F811
    app = make_app({**itsme_config(), **JSON_LOGS})
    fake.rp_jwks = app.extensions["idp.itsme.keys"].public_jwks_bytes
    add_known_person(app)
    client = app.test_client()
    params, verifier, tx_path = to_login_page(client)
    back = at_itsme(to_itsme(client, tx_path))
    itsme_code = query_of(back)["code"]
    resp = client.get(f"{urlsplit(back).path}?{urlsplit(back).query}")
    assert resp.status_code == 303, resp.get_data(as_text=True)
    code = query_of(client.get(resp.location).location)["code"]
    tokens = tokens_of(client, code, verifier)
    err = capsys.readouterr().err

    lines = lines_of(err)
    assert login_line(lines, "itsme")["client_id"] == "portal"
    assert any(x["message"].startswith("GET /login/itsme/callback 303") for x in lines)
    assert_clean(err, itsme_code, NN, code, *tokens)


@pytest.fixture
def bridge(tmp_path, card):
    require_softhsm()
    token = create_card_token(tmp_path / "softhsm", card)
    prompt = tmp_path / "askpin.sh"
    prompt.write_text("#!/bin/sh\necho 1234\n")
    prompt.chmod(0o700)
    proc, url = start_bridge(token.env, ORIGIN, "--pin-prompt", f"command:{prompt}")
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.mark.softhsm
def test_eid_login_through_the_bridge_logs_the_events_and_no_secret(
    make_app, tmp_path, pki, card, responder, bridge, capsys
):
    reset_responder(responder)
    folder = tmp_path / "eid"
    folder.mkdir()
    (folder / "root.pem").write_bytes(pki.root.pem)
    (folder / "ca.pem").write_bytes(pki.citizen_ca.pem)
    eid = {
        "trust_anchors": [str(folder / "root.pem")],
        "intermediates": [str(folder / "ca.pem")],
        "ocsp": {"mode": "require", "timeout": 3},
        "allowed_origins": [ORIGIN],
    }
    app = make_app({"connectors": {"eid": eid}, "methods": {"eid": {"enabled": True}}, **JSON_LOGS})
    link_account(app, card)
    browser = Browser(app.test_client())
    tx = browser.ready()
    challenge = browser.new_challenge(tx)
    signed = requests.post(
        f"{bridge}/authenticate", json={"challenge": challenge}, headers={"Origin": ORIGIN}, timeout=30
    )
    assert signed.status_code == 200, signed.text
    resp = browser.verify(tx, signed.json())
    assert resp.status_code == 200, resp.get_json()
    back = browser.client.get(resp.json["redirect"])
    code = query_of(back.location)["code"]
    tokens = tokens_of(browser.client, code, browser.verifier)
    err = capsys.readouterr().err

    lines = lines_of(err)
    assert login_line(lines, "eid")["client_id"] == "portal"
    assert_clean(err, card.citizen.national_number, signed.json()["signature"], challenge, code, *tokens)


def test_text_lines_are_one_per_event_with_the_request_id(make_app, capsys):
    app = make_app()
    client = app.test_client()
    resp = client.get("/authorize", query_string={"client_id": "portal", "x": "a\nforged line"})
    request_id = resp.headers["X-Request-ID"]
    logging.getLogger("idp.test").warning("two\nlines")
    err = capsys.readouterr().err
    assert "two\\nlines" in err
    access = [line for line in err.splitlines() if " idp.access " in line]
    assert access and f"[{request_id} client=portal] GET /authorize" in access[-1]
    assert "forged" not in err  # the access line names the route, never the query string


def test_info_is_the_default_level(app, capsys):
    app.test_client().get("/healthz")
    assert " INFO idp.access " in capsys.readouterr().err


@pytest.mark.parametrize(
    ("trusted_proxies", "sent", "echoed"),
    [
        (1, "abc-123-def-456", True),
        (0, "abc-123-def-456", False),
        (1, "bad id <script>", False),
        (1, "", False),
    ],
)
def test_request_id_comes_from_a_trusted_proxy_only(make_app, trusted_proxies, sent, echoed):
    app = make_app({"provider": {"trusted_proxies": trusted_proxies}})
    resp = app.test_client().get("/healthz", headers={"X-Request-ID": sent} if sent else {})
    got = resp.headers["X-Request-ID"]
    assert (got == sent) is echoed
    if not echoed:
        assert len(got) == 32


def test_logging_table_rejects_unknown_formats(make_app):
    from connectors.config import ConfigErrors

    with pytest.raises(ConfigErrors) as exc:
        make_app({"logging": {"format": "xml", "colour": True}})
    text = str(exc.value)
    assert "logging.format" in text and "logging.colour" in text
