"""Server-side verification of a Belgian eID login made through the bridge.

Implements the Web eID authentication-token validation
(``web-eid-authtoken-validation-java``: format, certificate purpose, chain,
revocation, signature) plus the National Register checks the eID viewer makes
(``Fedict/eid-mw`` ``plugins_tools/eid-viewer/verify.c``): the RRN
certificate chains to a trusted root and its signatures over the identity and
address files verify. Each check raises :class:`ConnectorError` with its own
code, in the order of :data:`ERROR_CODES`.

The national register number returned comes from the validated certificate
only; the identity file must agree with it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from connectors.base import ConnectorError, Identity, valid_national_number
from connectors.eid import identity_files, token
from connectors.eid.identity_files import CardIdentity, IdentityFileError
from connectors.eid.ocsp import (
    CERTIFICATE_REVOKED,
    REVOCATION_UNAVAILABLE,
    REVOCATION_UNKNOWN,
    Cache,
    MemoryCache,
    OcspChecker,
)
from connectors.eid.settings import EidSettings

log = logging.getLogger(__name__)

ISSUER = "urn:be:fedict:eid"
METHOD = "eid"
# RFC 8176: the card is a hardware-secured key ("hwk") on a smart card ("sc"), unlocked by a PIN ("pin").
AMR = ("hwk", "pin", "sc")

MALFORMED = "malformed"
CHALLENGE_MISMATCH = "challenge_mismatch"
ORIGIN_NOT_ALLOWED = "origin_not_allowed"
WRONG_CERTIFICATE = "wrong_certificate"
CERTIFICATE_EXPIRED = "certificate_expired"
UNTRUSTED_CERTIFICATE = "untrusted_certificate"
BAD_SIGNATURE = "bad_signature"
IDENTITY_FILE_INVALID = "identity_file_invalid"
NATIONAL_NUMBER_MISMATCH = "national_number_mismatch"
# Raised by the host, which owns the challenge store (single use, expiry, binding to the browser).
CHALLENGE_EXPIRED = "challenge_expired"
CHALLENGE_REPLAYED = "challenge_replayed"

ERROR_CODES = (
    MALFORMED,
    CHALLENGE_MISMATCH,
    ORIGIN_NOT_ALLOWED,
    WRONG_CERTIFICATE,
    CERTIFICATE_EXPIRED,
    UNTRUSTED_CERTIFICATE,
    CERTIFICATE_REVOKED,
    REVOCATION_UNKNOWN,
    REVOCATION_UNAVAILABLE,
    BAD_SIGNATURE,
    IDENTITY_FILE_INVALID,
    NATIONAL_NUMBER_MISMATCH,
)

# Decoded size limits (bytes): generous for real cards, small enough to refuse junk early.
_LIMITS = {
    "certificate": 8192,
    "signature": 1024,
    "data_file": 4096,
    "data_signature": 1024,
    "address_file": 1024,
    "address_signature": 1024,
    "rrn_certificate": 8192,
}
IDENTITY_FIELDS = ("data_file", "data_signature", "address_file", "address_signature", "rrn_certificate")


def new_challenge() -> str:
    """A fresh challenge: base64 of 32 random bytes (44 characters)."""
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")


@dataclass(frozen=True)
class _Token:
    certificate: x509.Certificate
    algorithm: str
    signature: bytes
    challenge: str
    # The card's identity files (bridge tokens); None for Web eID, which reads only the certificate.
    files: Mapping[str, bytes] | None


class EidVerifier:
    method = METHOD

    def __init__(
        self,
        settings: EidSettings,
        http: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
        ocsp_cache: Cache | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._store = Store(list(settings.trust_anchors))
        self._ocsp = OcspChecker(
            settings.ocsp, http or requests.Session(), clock, ocsp_cache or MemoryCache(clock)
        )

    def verify(self, token: Mapping, *, expected_challenge: str, origin: str) -> Identity:
        """Check a bridge token for this login; return who it proves or raise ConnectorError."""
        try:
            identity = self._verify(token, expected_challenge, origin)
        except ConnectorError as exc:
            log.info("eid verify: outcome=%s", exc.code)
            raise
        log.info("eid verify: outcome=ok")
        return identity

    def _verify(self, raw: Mapping, expected_challenge: str, origin: str) -> Identity:
        tok = parse_token(raw)
        if not expected_challenge or not hmac.compare_digest(
            tok.challenge.encode("utf-8"), expected_challenge.encode("utf-8")
        ):
            raise ConnectorError(CHALLENGE_MISMATCH)
        if origin not in self.settings.allowed_origins:
            raise ConnectorError(ORIGIN_NOT_ALLOWED, "origin is not configured")
        cert = tok.certificate
        national_number = check_purpose(cert)
        now = dt.datetime.fromtimestamp(self.clock(), dt.UTC)
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise ConnectorError(CERTIFICATE_EXPIRED, "outside the certificate's validity period")
        chain = self._chain(cert, now)
        self._ocsp.check(cert, chain[1])
        check_signature(cert, tok, origin)
        if tok.files is None:
            return self._certificate_identity(cert, national_number)
        card = self._identity_files(tok.files, now)
        if not hmac.compare_digest(card.national_number, national_number):
            raise ConnectorError(NATIONAL_NUMBER_MISMATCH, "identity file and certificate disagree")
        return self._identity(cert, card, national_number)

    def _chain(self, cert: x509.Certificate, now: dt.datetime) -> list[x509.Certificate]:
        # eID certificates carry no SubjectAltName, which the web PKI end-entity policy demands.
        ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
            x509.SubjectAlternativeName, Criticality.AGNOSTIC, None
        )
        verifier = (
            PolicyBuilder()
            .store(self._store)
            .time(now)
            .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ee_policy)
            .build_client_verifier()
        )
        try:
            return verifier.verify(cert, list(self.settings.intermediates)).chain
        except VerificationError as exc:
            raise ConnectorError(UNTRUSTED_CERTIFICATE, "no path to a configured eID root") from exc

    def _identity_files(self, files: Mapping[str, bytes], now: dt.datetime) -> CardIdentity:
        try:
            rrn = x509.load_der_x509_certificate(files["rrn_certificate"])
        except ValueError as exc:
            raise ConnectorError(IDENTITY_FILE_INVALID, "RRN certificate does not parse") from exc
        self._check_rrn_certificate(rrn, now)
        try:
            identity_files.verify_identity_signatures(
                rrn.public_key(),
                files["data_file"],
                files["data_signature"],
                files["address_file"],
                files["address_signature"],
            )
            return identity_files.parse_identity(files["data_file"], files["address_file"])
        except IdentityFileError as exc:
            raise ConnectorError(IDENTITY_FILE_INVALID, str(exc)) from exc

    def _check_rrn_certificate(self, rrn: x509.Certificate, now: dt.datetime) -> None:
        pinned = self.settings.rrn_certificates
        if pinned and rrn.fingerprint(hashes.SHA256()) not in {
            c.fingerprint(hashes.SHA256()) for c in pinned
        }:
            raise ConnectorError(IDENTITY_FILE_INVALID, "RRN certificate is not one of rrn_certificates")
        try:
            if rrn.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
                raise ConnectorError(IDENTITY_FILE_INVALID, "RRN certificate is a CA certificate")
        except x509.ExtensionNotFound:
            pass
        # Issued directly by a trusted root (no intermediates offered); any EKU.
        verifier = (
            PolicyBuilder()
            .store(self._store)
            .time(now)
            .extension_policies(
                ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ExtensionPolicy.permit_all()
            )
            .build_client_verifier()
        )
        try:
            verifier.verify(rrn, [])
        except VerificationError as exc:
            raise ConnectorError(
                IDENTITY_FILE_INVALID, "RRN certificate not issued by a trusted root"
            ) from exc

    def _certificate_identity(self, cert: x509.Certificate, national_number: str) -> Identity:
        """Who a Web eID token proves: the validated certificate's names and national number only."""

        def attribute(oid: x509.ObjectIdentifier) -> str | None:
            values = cert.subject.get_attributes_for_oid(oid)
            return str(values[0].value) if len(values) == 1 else None

        claims = {
            name: value
            for name, value in (
                ("given_name", attribute(NameOID.GIVEN_NAME)),
                ("family_name", attribute(NameOID.SURNAME)),
            )
            if value
        }
        fingerprint = cert.fingerprint(hashes.SHA256()).hex()
        return Identity(
            method=METHOD,
            issuer=ISSUER,
            # No card number without the identity file: the certificate stands for the card (it is
            # renewed with it). The host links people by the keyed hash of national_number.
            subject="cert-sha256:" + fingerprint,
            level=self.settings.level,
            amr=AMR,
            claims=claims,
            national_number=national_number,
            connector_data={
                "certificate_sha256": fingerprint,
                "certificate_not_after": cert.not_valid_after_utc.isoformat(),
                "client": "web-eid",
            },
        )

    def _identity(self, cert: x509.Certificate, card: CardIdentity, national_number: str) -> Identity:
        claims: dict[str, object] = {
            "given_name": card.firstnames,
            "family_name": card.surname,
            "address": {
                "street_address": card.street_address,
                "postal_code": card.postal_code,
                "locality": card.locality,
                "country": "BE",
            },
            "eid_card_validity": {"not_before": card.validity_begin, "not_after": card.validity_end},
        }
        if card.birthdate:
            claims["birthdate"] = card.birthdate
        return Identity(
            method=METHOD,
            issuer=ISSUER,
            # Per card, not per person: the host links people by the keyed hash of national_number.
            subject=card.card_number,
            level=self.settings.level,
            amr=AMR,
            claims=claims,
            national_number=national_number,
            card_number=card.card_number,
            connector_data={
                "certificate_sha256": cert.fingerprint(hashes.SHA256()).hex(),
                "certificate_not_after": cert.not_valid_after_utc.isoformat(),
            },
        )


def parse_token(raw: object) -> _Token:
    """Check the token's shape and decode it; ConnectorError('malformed') otherwise."""
    if not isinstance(raw, Mapping):
        raise ConnectorError(MALFORMED, "token is not an object")
    if token.is_web_eid_format(raw.get("format")):
        return parse_web_eid_token(raw)
    if raw.get("format") != token.FORMAT:
        raise ConnectorError(MALFORMED, "unknown format")
    algorithm = raw.get("algorithm")
    if algorithm not in token.ALGORITHMS:
        raise ConnectorError(MALFORMED, "unsupported algorithm")
    challenge = raw.get("challenge")
    if not isinstance(challenge, str) or not 1 <= len(challenge) <= 256:
        raise ConnectorError(MALFORMED, "challenge")
    app_version = raw.get("app_version")
    if app_version is not None and (not isinstance(app_version, str) or len(app_version) > 64):
        raise ConnectorError(MALFORMED, "app_version")
    identity = raw.get("identity")
    if not isinstance(identity, Mapping):
        raise ConnectorError(MALFORMED, "identity is not an object")
    try:
        cert_der = token.b64decode(raw.get("certificate"), _LIMITS["certificate"])
        signature = token.b64decode(raw.get("signature"), _LIMITS["signature"])
        files = {name: token.b64decode(identity.get(name), _LIMITS[name]) for name in IDENTITY_FIELDS}
    except ValueError as exc:
        raise ConnectorError(MALFORMED, f"field encoding: {exc}") from exc
    try:
        cert = x509.load_der_x509_certificate(cert_der)
    except ValueError as exc:
        raise ConnectorError(MALFORMED, "certificate does not parse") from exc
    return _Token(cert, algorithm, signature, challenge, files)


def parse_web_eid_token(raw: Mapping) -> _Token:
    """A Web eID token (``unverifiedCertificate``, ``algorithm``, ``signature``, ``appVersion``).

    The extension's answer names no challenge: the page adds the one it asked to sign as
    ``challenge`` (it is only a claim; the store's challenge is what the signature must cover).
    """
    algorithm = raw.get("algorithm")
    if algorithm not in token.ALGORITHMS:
        raise ConnectorError(MALFORMED, "unsupported algorithm")
    challenge = raw.get("challenge")
    if not isinstance(challenge, str) or not 1 <= len(challenge) <= 256:
        raise ConnectorError(MALFORMED, "challenge")
    app_version = raw.get("appVersion")
    if app_version is not None and (not isinstance(app_version, str) or len(app_version) > 256):
        raise ConnectorError(MALFORMED, "appVersion")
    try:
        cert_der = token.b64decode(raw.get("unverifiedCertificate"), _LIMITS["certificate"])
        signature = token.b64decode(raw.get("signature"), _LIMITS["signature"])
    except ValueError as exc:
        raise ConnectorError(MALFORMED, f"field encoding: {exc}") from exc
    try:
        cert = x509.load_der_x509_certificate(cert_der)
    except ValueError as exc:
        raise ConnectorError(MALFORMED, "certificate does not parse") from exc
    return _Token(cert, algorithm, signature, challenge, None)


def check_purpose(cert: x509.Certificate) -> str:
    """Refuse anything but an eID Authentication certificate; return its national register number."""
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound as exc:
        raise ConnectorError(WRONG_CERTIFICATE, "no key usage") from exc
    if not ku.digital_signature:
        raise ConnectorError(WRONG_CERTIFICATE, "key usage lacks digitalSignature")
    if ku.content_commitment:
        raise ConnectorError(WRONG_CERTIFICATE, "non-repudiation (Signature) certificate")
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        eku = None
    if eku is not None and ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
        raise ConnectorError(WRONG_CERTIFICATE, "extended key usage lacks clientAuth")
    numbers = cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    if len(numbers) != 1 or not valid_national_number(str(numbers[0].value)):
        raise ConnectorError(WRONG_CERTIFICATE, "subject has no national register number")
    if not isinstance(cert.public_key(), ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise ConnectorError(WRONG_CERTIFICATE, "unsupported key type")
    return str(numbers[0].value)


def check_signature(cert: x509.Certificate, tok: _Token, origin: str) -> None:
    """The card's signature over hash(origin) ‖ hash(challenge)."""
    data = token.signed_payload(origin, tok.challenge, tok.algorithm)
    hash_alg = token.hash_algorithm(tok.algorithm)
    key = cert.public_key()
    try:
        if isinstance(key, ec.EllipticCurvePublicKey) and tok.algorithm.startswith("ES"):
            signature = tok.signature
            if len(signature) == 2 * ((key.curve.key_size + 7) // 8):
                signature = token.raw_ecdsa_to_der(signature)
            key.verify(signature, data, ec.ECDSA(hash_alg))
        elif isinstance(key, rsa.RSAPublicKey) and tok.algorithm.startswith("RS"):
            key.verify(tok.signature, data, padding.PKCS1v15(), hash_alg)
        elif isinstance(key, rsa.RSAPublicKey) and tok.algorithm.startswith("PS"):
            pss = padding.PSS(mgf=padding.MGF1(hash_alg), salt_length=padding.PSS.DIGEST_LENGTH)
            key.verify(tok.signature, data, pss, hash_alg)
        else:
            raise ConnectorError(BAD_SIGNATURE, "algorithm does not match the certificate's key")
    except (InvalidSignature, ValueError) as exc:
        raise ConnectorError(BAD_SIGNATURE, "signature does not verify") from exc
