"""The eID bridge end to end: the real bridge process, SoftHSM2 as the card, the real verifier."""

from __future__ import annotations

import argparse
import concurrent.futures
import subprocess

import pytest
from idp_eid_bridge.server import DEFAULT_PORT, load_config

from connectors.base import ConnectorError
from connectors.eid import EidSettings, EidVerifier, OcspSettings, new_challenge
from tests.support import softhsm
from tests.support.eid_pki import (  # noqa: F401 (the "responder", "pki", "card" and "http" fixtures)
    card_fixture,
    http_fixture,
    pki_fixture,
    responder_fixture,
)
from tests.support.softhsm import MODULE, create_card_token, require_softhsm

ORIGIN = "https://login.example.be"


# -- fixtures -------------------------------------------------------------------


@pytest.fixture(scope="module")
def pin_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("prompt")
    pin = folder / "pin.txt"
    script = folder / "askpin.sh"
    script.write_text(f'#!/bin/sh\nv=$(cat "{pin}")\n[ "$v" = CANCEL ] && exit 1\necho "$v"\n')
    script.chmod(0o700)
    return pin, script


def start_bridge(env: dict[str, str], *args: str) -> tuple[subprocess.Popen, str]:
    return softhsm.start_bridge(env, ORIGIN, *args)


@pytest.fixture(scope="module")
def bridge(tmp_path_factory, card, pin_file):
    require_softhsm()
    token = create_card_token(tmp_path_factory.mktemp("softhsm"), card)
    proc, url = start_bridge(token.env, "--pin-prompt", f"command:{pin_file[1]}")
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def pin(pin_file, card):
    pin_file[0].write_text("1234\n")
    return pin_file[0]


def authenticate(http, url, challenge, origin=ORIGIN):
    return http.post(
        f"{url}/authenticate", json={"challenge": challenge}, headers={"Origin": origin}, timeout=30
    )


# -- status and CORS --------------------------------------------------------------


@pytest.mark.softhsm
def test_status_reports_middleware_reader_and_card(bridge, http):
    resp = http.get(f"{bridge}/status", headers={"Origin": ORIGIN}, timeout=10)
    assert resp.status_code == 200
    body = resp.json()
    assert body == {
        "version": body["version"],
        "middleware": True,
        "reader": True,
        "card": True,
        "applet": "1.8",
    }
    assert resp.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert resp.headers["Vary"] == "Origin"


@pytest.mark.softhsm
@pytest.mark.parametrize("origin", ["https://evil.example", "null", None])
def test_other_origins_get_403_without_cors_headers(bridge, http, pin, origin):
    headers = {"Origin": origin} if origin else {}
    for resp in (
        http.get(f"{bridge}/status", headers=headers, timeout=10),
        http.post(f"{bridge}/authenticate", json={"challenge": new_challenge()}, headers=headers, timeout=10),
        http.options(f"{bridge}/authenticate", headers=headers, timeout=10),
    ):
        assert resp.status_code == 403
        assert resp.json()["error"] == "origin_not_allowed"
        assert "Access-Control-Allow-Origin" not in resp.headers


@pytest.mark.softhsm
def test_preflight_allows_private_network_access(bridge, http):
    resp = http.options(
        f"{bridge}/authenticate",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
            "Access-Control-Request-Private-Network": "true",
        },
        timeout=10,
    )
    assert resp.status_code == 204
    assert resp.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert resp.headers["Access-Control-Allow-Private-Network"] == "true"
    assert "POST" in resp.headers["Access-Control-Allow-Methods"]
    assert resp.headers["Access-Control-Allow-Headers"].lower() == "content-type"


@pytest.mark.softhsm
def test_rebound_host_name_is_refused(bridge, http):
    resp = http.get(f"{bridge}/status", headers={"Origin": ORIGIN, "Host": "evil.example"}, timeout=10)
    assert resp.status_code == 400
    assert resp.json()["error"] == "bad_request"


# -- authenticate -------------------------------------------------------------------


@pytest.mark.softhsm
def test_authenticate_token_passes_the_verifier(bridge, http, pin, pki, card, responder):
    challenge = new_challenge()
    resp = authenticate(http, bridge, challenge)
    assert resp.status_code == 200, resp.text
    tok = resp.json()
    assert tok["format"] == "eid-bridge/1" and tok["algorithm"] == "ES384" and tok["challenge"] == challenge
    settings = EidSettings(
        trust_anchors=(pki.root.cert,),
        intermediates=(pki.citizen_ca.cert,),
        ocsp=OcspSettings(mode="require"),
        allowed_origins=(ORIGIN,),
    )
    requests_before = responder.requests
    identity = EidVerifier(settings, http=http).verify(tok, expected_challenge=challenge, origin=ORIGIN)
    assert responder.requests == requests_before + 1
    assert identity.national_number == card.citizen.national_number
    assert identity.card_number == card.citizen.card_number
    assert identity.claims["family_name"] == "Peeters"


@pytest.mark.softhsm
def test_token_signed_for_one_origin_fails_for_another(bridge, http, pin, pki):
    challenge = new_challenge()
    tok = authenticate(http, bridge, challenge).json()
    settings = EidSettings(
        trust_anchors=(pki.root.cert,),
        intermediates=(pki.citizen_ca.cert,),
        ocsp=OcspSettings(mode="off"),
        allowed_origins=(ORIGIN, "https://other.example.be"),
    )
    with pytest.raises(ConnectorError) as err:
        EidVerifier(settings, http=http).verify(
            tok, expected_challenge=challenge, origin="https://other.example.be"
        )
    assert err.value.code == "bad_signature"


@pytest.mark.softhsm
def test_wrong_pin_is_reported(bridge, http, pin):
    pin.write_text("9999\n")
    resp = authenticate(http, bridge, new_challenge())
    assert resp.status_code == 401
    assert resp.json()["error"] == "pin_wrong"
    assert resp.headers["Access-Control-Allow-Origin"] == ORIGIN


@pytest.mark.softhsm
def test_cancelled_prompt_is_reported(bridge, http, pin):
    pin.write_text("CANCEL\n")
    resp = authenticate(http, bridge, new_challenge())
    assert resp.status_code == 409
    assert resp.json()["error"] == "pin_cancelled"


@pytest.mark.softhsm
@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"not json", "application/json"),
        (b'{"nonce": "x"}', "application/json"),
        (b'{"challenge": "short"}', "application/json"),
        (b'{"challenge": "' + new_challenge().encode() + b'"}', "text/plain"),
        (b"[]", "application/json"),
    ],
    # stable ids: xdist workers must collect the same names
    ids=["not-json", "no-challenge", "short-challenge", "not-json-content-type", "json-array"],
)
def test_bad_requests_are_refused_before_the_card_is_touched(bridge, http, pin, body, content_type):
    pin.write_text("CANCEL\n")  # a prompt would answer pin_cancelled
    resp = http.post(
        f"{bridge}/authenticate",
        data=body,
        headers={"Origin": ORIGIN, "Content-Type": content_type},
        timeout=10,
    )
    assert resp.status_code == 400
    assert resp.json()["error"] == "bad_request"


@pytest.mark.softhsm
def test_parallel_requests_are_served_one_card_operation_at_a_time(bridge, http, pin):
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: authenticate(http, bridge, new_challenge()).status_code, range(4)))
    assert results == [200] * 4


# -- missing middleware or card ------------------------------------------------------


@pytest.mark.softhsm
def test_missing_middleware_is_reported(tmp_path, http):
    require_softhsm()
    proc, url = start_bridge({}, "--module", str(tmp_path / "libnothing.so"), "--pin-prompt", "console")
    try:
        status = http.get(f"{url}/status", headers={"Origin": ORIGIN}, timeout=10).json()
        assert status["middleware"] is False and status["card"] is False and status["applet"] is None
        resp = authenticate(http, url, new_challenge())
        assert resp.status_code == 503 and resp.json()["error"] == "no_middleware"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.softhsm
def test_reader_without_card_is_reported(tmp_path, http):
    require_softhsm()
    (tmp_path / "tokens").mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tmp_path / 'tokens'}\nobjectstore.backend = file\n")
    proc, url = start_bridge({"SOFTHSM2_CONF": str(conf), "PYKCS11LIB": MODULE}, "--pin-prompt", "console")
    try:
        status = http.get(f"{url}/status", headers={"Origin": ORIGIN}, timeout=10).json()
        assert status["middleware"] is True and status["reader"] is True and status["card"] is False
        resp = authenticate(http, url, new_challenge())
        assert resp.status_code == 409 and resp.json()["error"] == "no_card"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# -- configuration (no card needed) ---------------------------------------------------


def _args(**kw) -> argparse.Namespace:
    base = {"config": None, "port": None, "allowed_origin": None, "pin_prompt": None, "module": None}
    return argparse.Namespace(**{**base, **kw})


def test_config_flags_win_over_environment_and_file(tmp_path):
    f = tmp_path / "bridge.toml"
    f.write_text('port = 4000\nallowed_origins = ["https://file.example.be"]\npin_prompt = "console"\n')
    env = {
        "EID_BRIDGE_PORT": "5000",
        "EID_BRIDGE_ALLOWED_ORIGINS": "https://env.example.be, http://localhost:5000",
    }
    cfg = load_config(_args(config=str(f), port=6000), env)
    assert cfg.port == 6000
    assert cfg.allowed_origins == ("https://env.example.be", "http://localhost:5000")
    assert cfg.pin_prompt == "console"
    cfg = load_config(_args(config=str(f)), {})
    assert (cfg.port, cfg.allowed_origins) == (4000, ("https://file.example.be",))


def test_config_defaults_to_the_documented_port_and_middleware(tmp_path):
    cfg = load_config(_args(config=None, allowed_origin=[ORIGIN]), {"XDG_CONFIG_HOME": str(tmp_path)})
    assert cfg.port == DEFAULT_PORT and cfg.pin_prompt == "tk" and "beidpkcs11" in cfg.module


def test_config_reports_every_problem(tmp_path):
    f = tmp_path / "bridge.toml"
    f.write_text(
        'port = "x"\nallowed_origins = ["http://evil.example"]\npin_prompt = "carrier-pigeon"\ncolour = 1\n'
    )
    with pytest.raises(SystemExit) as err:
        load_config(_args(config=str(f)), {})
    message = str(err.value)
    for part in ("port", "allowed_origins", "pin_prompt", "colour: unknown key"):
        assert part in message


def test_config_without_origins_refuses_to_start(tmp_path):
    with pytest.raises(SystemExit, match="allowed_origins"):
        load_config(_args(config=None), {"XDG_CONFIG_HOME": str(tmp_path)})
