"""The eID verifier: a software card from the test PKI, a real OCSP responder over HTTP."""

from __future__ import annotations

import base64
import logging
import time
from pathlib import Path

import pytest

from connectors.base import ConnectorError
from connectors.config import ConfigTable
from connectors.eid import EidSettings, EidVerifier, MemoryCache, OcspSettings, new_challenge
from connectors.eid import token as eid_token
from connectors.eid.identity_files import (
    IdentityFileError,
    encode_tlv,
    parse_birthdate,
    parse_tlv,
    trim_der_signature,
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

ORIGIN = "https://login.example.be"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(responder, pki):
    c = Clock(pki.now.timestamp() + 60)
    responder.clock = c
    reset_responder(responder)
    return c


@pytest.fixture
def make_verifier(pki, clock, http):
    def make(mode: str = "require", **overrides) -> EidVerifier:
        settings = EidSettings(
            trust_anchors=(pki.root.cert,),
            intermediates=(pki.citizen_ca.cert,),
            ocsp=OcspSettings(mode=mode, timeout=2, max_age=600),
            allowed_origins=(ORIGIN, "http://127.0.0.1:5000"),
            **overrides,
        )
        return EidVerifier(settings, http=http, clock=clock, ocsp_cache=MemoryCache(clock))

    return make


@pytest.fixture
def challenge():
    return new_challenge()


def verify_code(verifier: EidVerifier, tok: dict, challenge: str, origin: str = ORIGIN) -> str:
    with pytest.raises(ConnectorError) as err:
        verifier.verify(tok, expected_challenge=challenge, origin=origin)
    return err.value.code


# -- the good path ------------------------------------------------------------


def test_verify_returns_identity_from_certificate_and_signed_files(make_verifier, card, challenge):
    identity = make_verifier().verify(
        card.token(ORIGIN, challenge), expected_challenge=challenge, origin=ORIGIN
    )
    assert identity.method == "eid"
    assert identity.issuer == "urn:be:fedict:eid"
    assert identity.subject == card.citizen.card_number
    assert identity.level == "high"
    assert identity.amr == ("hwk", "pin", "sc")
    assert identity.national_number == card.citizen.national_number
    assert identity.card_number == card.citizen.card_number
    assert identity.claims["given_name"] == "Alice Marie"
    assert identity.claims["family_name"] == "Peeters"
    assert identity.claims["birthdate"] == "1985-07-30"
    assert identity.claims["address"] == {
        "street_address": "Wetstraat 16",
        "postal_code": "1000",
        "locality": "Brussel",
        "country": "BE",
    }
    assert identity.claims["eid_card_validity"] == {"not_before": "2024-01-01", "not_after": "2034-01-01"}
    assert card.citizen.national_number not in repr(identity)


def test_verify_accepts_der_ecdsa_signature(make_verifier, card, challenge):
    tok = card.token(ORIGIN, challenge, raw_signature=False)
    assert make_verifier().verify(tok, expected_challenge=challenge, origin=ORIGIN).subject


def test_verify_accepts_development_origin(make_verifier, card, challenge):
    origin = "http://127.0.0.1:5000"
    assert make_verifier().verify(card.token(origin, challenge), expected_challenge=challenge, origin=origin)


def test_verify_never_logs_the_national_number(make_verifier, pki, card, challenge, caplog):
    caplog.set_level(logging.DEBUG)
    make_verifier().verify(card.token(ORIGIN, challenge), expected_challenge=challenge, origin=ORIGIN)
    bad = pki.card(file_national_number="90010100123")
    verify_code(make_verifier(), bad.token(ORIGIN, challenge), challenge)
    assert "85073003328" not in caplog.text
    assert "90010100123" not in caplog.text


# -- malformed tokens ---------------------------------------------------------


def _mutate(tok: dict, path: str, value: object) -> dict:
    tok = {**tok, "identity": dict(tok["identity"])}
    target = tok["identity"] if path.startswith("identity.") else tok
    key = path.removeprefix("identity.")
    if value is _DELETE:
        target.pop(key)
    else:
        target[key] = value
    return tok


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("format", "web-eid:1.0"),
        ("format", _DELETE),
        ("algorithm", "HS256"),
        ("algorithm", "none"),
        ("certificate", "not base64!"),
        ("certificate", base64.b64encode(b"not a certificate").decode()),
        ("certificate", "A" * 20000),
        ("signature", _DELETE),
        ("signature", "A" * 2000),
        ("challenge", 42),
        ("challenge", "x" * 300),
        ("app_version", ["1"]),
        ("identity", "nope"),
        ("identity.data_file", _DELETE),
        ("identity.rrn_certificate", "%%%"),
    ],
)
def test_verify_rejects_malformed_token(make_verifier, card, challenge, path, value):
    tok = _mutate(card.token(ORIGIN, challenge), path, value)
    assert verify_code(make_verifier(), tok, challenge) == "malformed"


def test_verify_rejects_token_that_is_not_an_object(make_verifier, challenge):
    assert verify_code(make_verifier(), ["format"], challenge) == "malformed"


# -- challenge and origin -----------------------------------------------------


def test_verify_rejects_other_challenge(make_verifier, card, challenge):
    tok = card.token(ORIGIN, challenge)
    assert verify_code(make_verifier(), tok, new_challenge()) == "challenge_mismatch"


def test_verify_rejects_empty_expected_challenge(make_verifier, card):
    tok = card.token(ORIGIN, "")
    tok["challenge"] = "x"
    assert verify_code(make_verifier(), tok, "") == "challenge_mismatch"


def test_verify_rejects_origin_not_configured(make_verifier, card, challenge):
    origin = "https://evil.example"
    assert (
        verify_code(make_verifier(), card.token(origin, challenge), challenge, origin) == "origin_not_allowed"
    )


# -- certificate --------------------------------------------------------------


def test_verify_refuses_signature_certificate(make_verifier, card, challenge):
    tok = card.token(ORIGIN, challenge, use=card.signature)
    assert verify_code(make_verifier(), tok, challenge) == "wrong_certificate"


def test_verify_refuses_certificate_without_national_number(make_verifier, pki, challenge):
    tok = pki.card().token(ORIGIN, challenge, use=pki.ocsp_unauthorised)  # clientAuth, digitalSignature
    assert verify_code(make_verifier(), tok, challenge) == "wrong_certificate"


def test_verify_refuses_expired_certificate(make_verifier, pki, challenge):
    tok = pki.card(expired=True).token(ORIGIN, challenge)
    assert verify_code(make_verifier(), tok, challenge) == "certificate_expired"


def test_verify_refuses_certificate_once_the_clock_passes_its_end(make_verifier, card, clock, challenge):
    clock.now = card.authentication.cert.not_valid_after_utc.timestamp() + 1
    assert verify_code(make_verifier(), card.token(ORIGIN, challenge), challenge) == "certificate_expired"


def test_verify_refuses_card_from_unknown_ca(make_verifier, responder, challenge):
    other = EidPki(responder.url, name="Elsewhere")
    tok = other.card().token(ORIGIN, challenge)
    assert verify_code(make_verifier(), tok, challenge) == "untrusted_certificate"


def test_verify_refuses_card_when_intermediate_missing(pki, card, clock, http, challenge):
    settings = EidSettings(trust_anchors=(pki.root.cert,), allowed_origins=(ORIGIN,))
    verifier = EidVerifier(settings, http=http, clock=clock)
    assert verify_code(verifier, card.token(ORIGIN, challenge), challenge) == "untrusted_certificate"


def test_expiry_is_checked_before_the_signature(make_verifier, pki, challenge):
    tok = pki.card(expired=True).token("https://other.example", challenge)
    assert verify_code(make_verifier(), tok, challenge) == "certificate_expired"


# -- revocation ---------------------------------------------------------------


def test_verify_refuses_revoked_certificate(make_verifier, responder, pki, challenge):
    card = pki.card()
    responder.revoke(card.authentication.cert)
    assert verify_code(make_verifier(), card.token(ORIGIN, challenge), challenge) == "certificate_revoked"


def test_verify_refuses_revoked_certificate_even_under_prefer(make_verifier, responder, pki, challenge):
    card = pki.card()
    responder.revoke(card.authentication.cert)
    assert (
        verify_code(make_verifier("prefer"), card.token(ORIGIN, challenge), challenge)
        == "certificate_revoked"
    )


@pytest.mark.parametrize("mode", ["require", "prefer"])
def test_verify_refuses_unknown_ocsp_status(make_verifier, responder, card, challenge, mode):
    responder.mark_unknown(card.authentication.cert)
    assert verify_code(make_verifier(mode), card.token(ORIGIN, challenge), challenge) == "revocation_unknown"


@pytest.mark.parametrize("behaviour", ["down", "http_error", "try_later"])
def test_unreachable_responder_fails_closed_under_require(
    make_verifier, responder, card, challenge, behaviour
):
    responder.behaviour = behaviour
    code = verify_code(make_verifier("require"), card.token(ORIGIN, challenge), challenge)
    assert code == "revocation_unavailable"


@pytest.mark.parametrize("behaviour", ["down", "http_error", "try_later"])
def test_unreachable_responder_is_forgiven_under_prefer(make_verifier, responder, card, challenge, behaviour):
    responder.behaviour = behaviour
    assert make_verifier("prefer").verify(
        card.token(ORIGIN, challenge), expected_challenge=challenge, origin=ORIGIN
    )


def test_unreachable_port_is_forgiven_under_prefer_and_refused_under_require(
    pki, card, clock, http, challenge
):
    def verifier(mode):
        settings = EidSettings(
            trust_anchors=(pki.root.cert,),
            intermediates=(pki.citizen_ca.cert,),
            allowed_origins=(ORIGIN,),
            ocsp=OcspSettings(mode=mode, timeout=1, url_override="http://127.0.0.1:9/ocsp"),
        )
        return EidVerifier(settings, http=http, clock=clock)

    assert (
        verify_code(verifier("require"), card.token(ORIGIN, challenge), challenge) == "revocation_unavailable"
    )
    assert verifier("prefer").verify(
        card.token(ORIGIN, challenge), expected_challenge=challenge, origin=ORIGIN
    )


@pytest.mark.parametrize("behaviour", ["stale", "expired_next_update", "wrong_key", "unauthorised"])
@pytest.mark.parametrize("mode", ["require", "prefer"])
def test_invalid_ocsp_answer_is_refused_in_every_mode(
    make_verifier, responder, card, challenge, behaviour, mode
):
    responder.behaviour = behaviour
    code = verify_code(make_verifier(mode), card.token(ORIGIN, challenge), challenge)
    assert code == "revocation_unavailable"


def test_ocsp_off_skips_the_responder(make_verifier, responder, card, challenge):
    responder.behaviour = "down"
    assert make_verifier("off").verify(
        card.token(ORIGIN, challenge), expected_challenge=challenge, origin=ORIGIN
    )
    assert responder.requests == 0


def test_good_ocsp_answer_is_cached_until_it_is_no_longer_fresh(make_verifier, responder, card, clock):
    verifier = make_verifier()
    for _ in range(2):
        c = new_challenge()
        verifier.verify(card.token(ORIGIN, c), expected_challenge=c, origin=ORIGIN)
    assert responder.requests == 1
    clock.now += 601  # past thisUpdate + max_age
    c = new_challenge()
    verifier.verify(card.token(ORIGIN, c), expected_challenge=c, origin=ORIGIN)
    assert responder.requests == 2


def test_revoked_answer_is_not_cached(make_verifier, responder, pki, challenge):
    card = pki.card()
    responder.revoke(card.authentication.cert)
    verifier = make_verifier()
    for _ in range(2):
        assert verify_code(verifier, card.token(ORIGIN, challenge), challenge) == "certificate_revoked"
    assert responder.requests == 2


# -- signature ----------------------------------------------------------------


def test_verify_refuses_signature_made_for_another_origin(make_verifier, card, challenge):
    tok = card.token("http://127.0.0.1:5000", challenge)
    assert verify_code(make_verifier(), tok, challenge) == "bad_signature"


def test_verify_refuses_signature_over_another_challenge(make_verifier, card, challenge):
    tok = card.token(ORIGIN, new_challenge())
    tok["challenge"] = challenge
    assert verify_code(make_verifier(), tok, challenge) == "bad_signature"


def test_verify_refuses_algorithm_that_does_not_fit_the_key(make_verifier, card, challenge):
    tok = card.token(ORIGIN, challenge)
    tok["algorithm"] = "RS384"
    assert verify_code(make_verifier(), tok, challenge) == "bad_signature"


# -- identity files -----------------------------------------------------------


def _tamper(tok: dict, field: str, change) -> dict:
    raw = bytearray(base64.b64decode(tok["identity"][field]))
    change(raw)
    return _mutate(tok, f"identity.{field}", base64.b64encode(bytes(raw)).decode())


def _flip_surname(raw: bytearray) -> None:
    i = raw.index(b"Peeters")
    raw[i] = ord("B")


def _flip_street(raw: bytearray) -> None:
    raw[raw.index(b"16")] = ord("7")


def _flip_signature(raw: bytearray) -> None:
    raw[10] ^= 1


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("data_file", _flip_surname),
        ("address_file", _flip_street),
        ("data_signature", _flip_signature),
        ("address_signature", _flip_signature),
    ],
)
def test_verify_refuses_tampered_identity_files(make_verifier, card, challenge, field, change):
    tok = _tamper(card.token(ORIGIN, challenge), field, change)
    assert verify_code(make_verifier(), tok, challenge) == "identity_file_invalid"


def test_verify_refuses_identity_files_signed_by_untrusted_register(
    make_verifier, responder, card, challenge
):
    other = EidPki(responder.url, name="Forged").card(card.citizen)
    tok = card.token(ORIGIN, challenge)
    tok["identity"] = other.identity()
    assert verify_code(make_verifier(), tok, challenge) == "identity_file_invalid"


def test_verify_refuses_rrn_certificate_that_is_not_pinned(make_verifier, pki, card, challenge):
    verifier = make_verifier(rrn_certificates=(pki.ocsp_signer.cert,))
    assert verify_code(verifier, card.token(ORIGIN, challenge), challenge) == "identity_file_invalid"


def test_verify_accepts_pinned_rrn_certificate(make_verifier, pki, card, challenge):
    verifier = make_verifier(rrn_certificates=(pki.rrn.cert,))
    assert verifier.verify(card.token(ORIGIN, challenge), expected_challenge=challenge, origin=ORIGIN)


def test_verify_refuses_ca_certificate_as_rrn_certificate(make_verifier, pki, card, challenge):
    tok = card.token(ORIGIN, challenge)
    tok["identity"]["rrn_certificate"] = eid_token.b64encode(pki.citizen_ca.der)
    assert verify_code(make_verifier(), tok, challenge) == "identity_file_invalid"


def test_verify_refuses_identity_file_of_another_person(make_verifier, pki, challenge):
    card = pki.card(file_national_number="90010100123")
    assert (
        verify_code(make_verifier(), card.token(ORIGIN, challenge), challenge) == "national_number_mismatch"
    )


# -- card file format ---------------------------------------------------------


def test_tlv_lengths_of_255_and_more_use_ff_continuation_bytes():
    long = bytes(range(256)) * 2
    data = encode_tlv([(1, b"a"), (2, long[:255]), (3, long[:510]), (4, b"")]) + b"\x00" * 10
    assert data[data.index(2) + 1 : data.index(2) + 3] == b"\xff\x00"
    assert parse_tlv(data) == {1: b"a", 2: long[:255], 3: long[:510], 4: b""}


def test_truncated_tlv_is_refused():
    with pytest.raises(IdentityFileError):
        parse_tlv(encode_tlv([(7, b"Peeters")])[:-2])


def test_zero_padded_der_signature_is_trimmed():
    der = bytes([0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01])
    assert trim_der_signature(der + b"\x00" * 20) == der


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("30 JUL 1985", "1985-07-30"),
        ("02 FEV 1985", "1985-02-02"),
        ("15 MÄR 1990", "1990-03-15"),
        ("01 MAAR 1990", "1990-03-01"),
        ("1 DEC 2001", "2001-12-01"),
        ("1950", "1950"),
        ("   1950", "1950"),
        ("31 XYZ 1950", None),
    ],
)
def test_birthdate_is_read_in_every_card_language(text, iso):
    assert parse_birthdate(text) == iso


def test_new_challenge_is_44_chars_of_32_random_bytes():
    a, b = new_challenge(), new_challenge()
    assert len(a) == 44 and len(base64.b64decode(a)) == 32 and a != b


def test_signed_payload_hashes_origin_and_challenge_separately():
    payload = eid_token.signed_payload(ORIGIN, "abc", "ES384")
    assert len(payload) == 96
    assert payload != eid_token.signed_payload(ORIGIN + "a", "bc", "ES384")


# -- settings -----------------------------------------------------------------


def _write(tmp_path: Path, name: str, data: bytes) -> str:
    (tmp_path / name).write_bytes(data)
    return name


def test_settings_load_ca_files(tmp_path, pki):
    data = {
        "trust_anchors": [_write(tmp_path, "root.pem", pki.root.pem)],
        "intermediates": [_write(tmp_path, "ca.der", pki.citizen_ca.der)],
        "ocsp": {"mode": "prefer", "timeout": 5, "max_age": 300},
        "allowed_origins": ["https://login.example.be", "http://localhost:5000"],
    }
    t = ConfigTable(data, str(tmp_path / "idp.toml"))
    settings = EidSettings.from_table(t)
    assert t.errors == []
    assert settings.trust_anchors == (pki.root.cert,)
    assert settings.intermediates == (pki.citizen_ca.cert,)
    assert settings.ocsp == OcspSettings(mode="prefer", timeout=5, max_age=300)
    assert settings.level == "high" and settings.challenge_ttl == 300


def test_settings_report_every_error_at_once(tmp_path, pki, card):
    data = {
        "trust_anchors": ["missing.pem", _write(tmp_path, "junk.pem", b"junk")],
        "intermediates": [_write(tmp_path, "leaf.pem", card.authentication.pem)],
        "ocsp": {"mode": "sometimes", "timeout": 0, "colour": "blue"},
        "allowed_origins": [
            "http://login.example.be",
            "https://login.example.be/",
            "https://Login.example.be",
        ],
        "level": "extreme",
        "challenge_ttl": 5,
        "surprise": True,
    }
    t = ConfigTable(data, str(tmp_path / "idp.toml"))
    EidSettings.from_table(t)
    keys = sorted(e.key for e in t.errors)
    assert keys == sorted(
        [
            "trust_anchors[0]",
            "trust_anchors[1]",
            "intermediates[0]",
            "ocsp.mode",
            "ocsp.timeout",
            "ocsp.colour",
            "allowed_origins[0]",
            "allowed_origins[1]",
            "allowed_origins[2]",
            "level",
            "challenge_ttl",
            "surprise",
        ]
    )
    assert all(e.file.endswith("idp.toml") for e in t.errors)


def test_settings_require_trust_anchors_and_origins(tmp_path):
    t = ConfigTable({}, str(tmp_path / "idp.toml"))
    EidSettings.from_table(t)
    assert sorted(e.key for e in t.errors) == ["allowed_origins", "trust_anchors"]


def test_verifier_uses_the_system_clock_by_default(pki):
    settings = EidSettings(trust_anchors=(pki.root.cert,), allowed_origins=(ORIGIN,))
    assert EidVerifier(settings).clock is time.time


def test_citizen_defaults_are_a_valid_national_number():
    assert len(Citizen().national_number) == 11
