"""The verifier accepts the Web eID extension's token (``web-eid:1.0``) and refuses its forgeries.

Web eID reads no identity files: the person is who the validated certificate says
(national register number, given names, surname). Every other check is the bridge path's.
"""

from __future__ import annotations

import pytest

from connectors.base import ConnectorError
from connectors.eid import EidSettings, EidVerifier, MemoryCache, OcspSettings, new_challenge
from tests.connectors.test_eid_verifier import ORIGIN, Clock
from tests.support.eid_pki import (  # noqa: F401 (the "responder", "pki", "card" and "http" fixtures)
    EidPki,
    card_fixture,
    http_fixture,
    pki_fixture,
    reset_responder,
    responder_fixture,
)


@pytest.fixture
def clock(responder, pki):
    c = Clock(pki.now.timestamp() + 60)
    responder.clock = c
    reset_responder(responder)
    return c


@pytest.fixture
def verifier(pki, clock, http):
    settings = EidSettings(
        trust_anchors=(pki.root.cert,),
        intermediates=(pki.citizen_ca.cert,),
        ocsp=OcspSettings(mode="require", timeout=2, max_age=600),
        allowed_origins=(ORIGIN,),
    )
    return EidVerifier(settings, http=http, clock=clock, ocsp_cache=MemoryCache(clock))


def refused(verifier: EidVerifier, tok: dict, challenge: str, origin: str = ORIGIN) -> str:
    with pytest.raises(ConnectorError) as err:
        verifier.verify(tok, expected_challenge=challenge, origin=origin)
    return err.value.code


def test_web_eid_token_proves_the_national_number_and_names_of_the_certificate(verifier, card):
    challenge = new_challenge()
    tok = card.web_eid_token(ORIGIN, challenge)
    identity = verifier.verify(tok, expected_challenge=challenge, origin=ORIGIN)
    assert identity.method == "eid" and identity.level == "high"
    assert identity.amr == ("hwk", "pin", "sc")
    assert identity.national_number == card.citizen.national_number
    assert identity.claims == {"given_name": card.citizen.given_names, "family_name": card.citizen.surname}
    assert identity.subject.startswith("cert-sha256:")
    assert card.citizen.national_number not in identity.subject
    assert identity.card_number is None


@pytest.mark.parametrize("fmt", ["web-eid:1", "web-eid:1.0", "web-eid:1.1"])
def test_every_web_eid_1_format_is_accepted(verifier, card, fmt):
    challenge = new_challenge()
    tok = {**card.web_eid_token(ORIGIN, challenge), "format": fmt}
    assert verifier.verify(tok, expected_challenge=challenge, origin=ORIGIN).national_number


@pytest.mark.parametrize(
    "change",
    [
        {"format": "web-eid:2.0"},
        {"format": "web-eid:10"},
        {"unverifiedCertificate": "not base64!"},
        {"unverifiedCertificate": None},
        {"signature": ""},
        {"algorithm": "none"},
        {"algorithm": "HS256"},
        {"appVersion": 7},
        {"challenge": None},
    ],
)
def test_malformed_web_eid_tokens_are_refused(verifier, card, change):
    challenge = new_challenge()
    assert refused(verifier, {**card.web_eid_token(ORIGIN, challenge), **change}, challenge) == "malformed"


def test_web_eid_token_signed_for_another_origin_is_refused(verifier, card):
    challenge = new_challenge()
    tok = card.web_eid_token("https://evil.example.com", challenge)
    assert refused(verifier, tok, challenge) == "bad_signature"


def test_web_eid_token_signed_over_another_challenge_is_refused(verifier, card):
    challenge = new_challenge()
    tok = {**card.web_eid_token(ORIGIN, new_challenge()), "challenge": challenge}
    assert refused(verifier, tok, challenge) == "bad_signature"


def test_web_eid_token_from_a_card_of_another_pki_is_refused(verifier, responder):
    stranger = EidPki(responder.url, name="Other")
    responder.add_authority(stranger.authority())
    challenge = new_challenge()
    tok = stranger.card().web_eid_token(ORIGIN, challenge)
    assert refused(verifier, tok, challenge) == "untrusted_certificate"


def test_web_eid_token_made_with_the_signature_certificate_is_refused(verifier, card):
    challenge = new_challenge()
    tok = card.web_eid_token(ORIGIN, challenge, use=card.signature)
    assert refused(verifier, tok, challenge) == "wrong_certificate"
