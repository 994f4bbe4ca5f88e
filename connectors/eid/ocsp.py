"""Revocation check of an eID certificate by OCSP (RFC 6960).

The request is built with :mod:`cryptography.x509.ocsp` and POSTed to the
certificate's AIA OCSP URL (or a configured override). cryptography parses the
answer but checks neither its signature nor the responder's authority, so
this module does (RFC 6960 §4.2.2.2, §3.2): the responder is the issuing CA
itself or a certificate issued directly by that CA with EKU OCSPSigning; the
response signature verifies with the responder's key; there is exactly one
SingleResponse and it is for our certificate; thisUpdate is recent and not in
the future; nextUpdate, when present, is not past.

Policy (``mode``): ``require`` fails closed whenever no valid answer is
available; ``prefer`` accepts the certificate only when the responder cannot
be reached (connection error, timeout, HTTP error, "try later"); an answer
that arrives but is invalid, stale, ``revoked`` or ``unknown`` is always
refused; ``off`` skips the check. Good answers are cached until nextUpdate or
until they would no longer be fresh, whichever comes first.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from connectors.base import ConnectorError

log = logging.getLogger(__name__)

CERTIFICATE_REVOKED = "certificate_revoked"
REVOCATION_UNKNOWN = "revocation_unknown"
REVOCATION_UNAVAILABLE = "revocation_unavailable"

MODES = ("require", "prefer", "off")
MAX_RESPONSE_BYTES = 64 * 1024
CLOCK_SKEW = dt.timedelta(seconds=60)


class Cache(Protocol):
    """Where good OCSP answers are kept; the host passes a Redis-backed one in production."""

    def get(self, key: str) -> bytes | None: ...

    def set(self, key: str, value: bytes, ttl: int) -> None: ...


class MemoryCache:
    """A process-local :class:`Cache` with expiry on the injected clock."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._items: dict[str, tuple[float, bytes]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            if item[0] <= self._clock():
                del self._items[key]
                return None
            return item[1]

    def set(self, key: str, value: bytes, ttl: int) -> None:
        with self._lock:
            self._items[key] = (self._clock() + ttl, value)


@dataclass(frozen=True)
class OcspSettings:
    mode: str = "require"
    timeout: float = 3
    max_age: int = 600
    url_override: str | None = None


class _Unreachable(Exception):
    """The responder could not be asked (the only failure ``prefer`` forgives)."""


class _Invalid(Exception):
    """An answer arrived but cannot be trusted."""


def ocsp_url(cert: x509.Certificate) -> str | None:
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return None
    for desc in aia:
        if desc.access_method == AuthorityInformationAccessOID.OCSP and isinstance(
            desc.access_location, x509.UniformResourceIdentifier
        ):
            return desc.access_location.value
    return None


def verify_signature(public_key: object, signature: bytes, data: bytes, hash_alg: object) -> None:
    """Verify an X.509-style signature (certificate, OCSP response); InvalidSignature otherwise."""
    if isinstance(public_key, ec.EllipticCurvePublicKey) and isinstance(hash_alg, hashes.HashAlgorithm):
        public_key.verify(signature, data, ec.ECDSA(hash_alg))
    elif isinstance(public_key, rsa.RSAPublicKey) and isinstance(hash_alg, hashes.HashAlgorithm):
        public_key.verify(signature, data, padding.PKCS1v15(), hash_alg)
    elif isinstance(public_key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        public_key.verify(signature, data)
    else:
        raise InvalidSignature("unsupported responder key or algorithm")


class OcspChecker:
    def __init__(
        self,
        settings: OcspSettings,
        http: requests.Session,
        clock: Callable[[], float],
        cache: Cache,
    ) -> None:
        self.settings = settings
        self.http = http
        self.clock = clock
        self.cache = cache

    def check(self, cert: x509.Certificate, issuer: x509.Certificate) -> None:
        """Return when ``cert`` is known good (or the policy forgives); raise ConnectorError otherwise."""
        if self.settings.mode == "off":
            return
        serial = cert.serial_number.to_bytes((cert.serial_number.bit_length() + 8) // 8, "big")
        key = "eid-ocsp:" + hashlib.sha256(issuer.fingerprint(hashes.SHA256()) + serial).hexdigest()
        cached = self.cache.get(key)
        if cached is not None:
            try:
                self._evaluate(cached, cert, issuer, nonce=None, cache_key=None)
                return
            except _Invalid:
                pass  # no longer fresh: ask again
        try:
            der, nonce = self._fetch(cert, issuer)
            self._evaluate(der, cert, issuer, nonce=nonce, cache_key=key)
        except _Unreachable as exc:
            if self.settings.mode == "prefer":
                log.warning("eid ocsp: responder unreachable, accepted under mode=prefer (%s)", exc)
                return
            raise ConnectorError(REVOCATION_UNAVAILABLE, f"responder unreachable: {exc}") from exc
        except _Invalid as exc:
            raise ConnectorError(REVOCATION_UNAVAILABLE, f"invalid OCSP response: {exc}") from exc

    # -- fetching ------------------------------------------------------------
    def _fetch(self, cert: x509.Certificate, issuer: x509.Certificate) -> tuple[bytes, bytes]:
        url = self.settings.url_override or ocsp_url(cert)
        if not url:
            raise _Invalid("certificate names no OCSP responder and no url_override is set")
        nonce = os.urandom(16)
        request = (
            ocsp.OCSPRequestBuilder()
            .add_certificate(cert, issuer, hashes.SHA1())  # noqa: S303 - CertID hash, RFC 6960 §4.1.1 default
            .add_extension(x509.OCSPNonce(nonce), critical=False)
            .build()
        )
        try:
            resp = self.http.post(
                url,
                data=request.public_bytes(Encoding.DER),
                headers={"Content-Type": "application/ocsp-request", "Accept": "application/ocsp-response"},
                timeout=self.settings.timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise _Unreachable(type(exc).__name__) from exc
        if resp.status_code >= 500:
            raise _Unreachable(f"HTTP {resp.status_code}")
        if resp.status_code != 200:
            raise _Invalid(f"HTTP {resp.status_code}")
        if len(resp.content) > MAX_RESPONSE_BYTES:
            raise _Invalid("response too large")
        return resp.content, nonce

    # -- validation ----------------------------------------------------------
    def _evaluate(
        self,
        der: bytes,
        cert: x509.Certificate,
        issuer: x509.Certificate,
        nonce: bytes | None,
        cache_key: str | None,
    ) -> None:
        try:
            response = ocsp.load_der_ocsp_response(der)
        except ValueError as exc:
            raise _Invalid("not an OCSP response") from exc
        status = response.response_status
        if status in (ocsp.OCSPResponseStatus.TRY_LATER, ocsp.OCSPResponseStatus.INTERNAL_ERROR):
            raise _Unreachable(f"responder answered {status.name}")
        if status != ocsp.OCSPResponseStatus.SUCCESSFUL:
            raise _Invalid(f"responder answered {status.name}")
        now = dt.datetime.fromtimestamp(self.clock(), dt.UTC)
        self._check_signer(response, issuer, now)
        single = self._single_response(response, cert, issuer)
        if nonce is not None:
            self._check_nonce(response, nonce)
        this_update = single.this_update_utc
        next_update = single.next_update_utc
        if this_update > now + CLOCK_SKEW:
            raise _Invalid("thisUpdate is in the future")
        fresh_until = this_update + dt.timedelta(seconds=self.settings.max_age)
        if fresh_until < now:
            raise _Invalid("response is stale (thisUpdate too old)")
        if next_update is not None and next_update < now:
            raise _Invalid("nextUpdate is past")
        cert_status = single.certificate_status
        if cert_status == ocsp.OCSPCertStatus.REVOKED:
            raise ConnectorError(CERTIFICATE_REVOKED, "OCSP: revoked")
        if cert_status != ocsp.OCSPCertStatus.GOOD:
            raise ConnectorError(REVOCATION_UNKNOWN, "OCSP: unknown")
        if cache_key is not None and next_update is not None:
            ttl = int((min(next_update, fresh_until) - now).total_seconds())
            if ttl > 0:
                self.cache.set(cache_key, der, ttl)

    @staticmethod
    def _check_signer(response: ocsp.OCSPResponse, issuer: x509.Certificate, now: dt.datetime) -> None:
        def names(candidate: x509.Certificate) -> bool:
            if response.responder_key_hash is not None:
                skid = x509.SubjectKeyIdentifier.from_public_key(candidate.public_key()).digest  # type: ignore[arg-type]
                return skid == response.responder_key_hash
            return candidate.subject == response.responder_name

        signer = next((c for c in [issuer, *response.certificates] if names(c)), None)
        if signer is None:
            raise _Invalid("responder is neither the issuing CA nor a certificate it included")
        if signer is not issuer:
            # Delegated responder: issued by the same CA, EKU OCSPSigning, valid now (RFC 6960 §4.2.2.2).
            try:
                signer.verify_directly_issued_by(issuer)
            except (ValueError, TypeError, InvalidSignature) as exc:
                raise _Invalid("responder certificate not issued by the certificate's CA") from exc
            try:
                eku = signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            except x509.ExtensionNotFound:
                eku = None
            if eku is None or ExtendedKeyUsageOID.OCSP_SIGNING not in eku:
                raise _Invalid("responder certificate lacks EKU OCSPSigning")
            if not signer.not_valid_before_utc <= now <= signer.not_valid_after_utc:
                raise _Invalid("responder certificate is not valid now")
        try:
            verify_signature(
                signer.public_key(),
                response.signature,
                response.tbs_response_bytes,
                response.signature_hash_algorithm,
            )
        except (InvalidSignature, ValueError) as exc:
            raise _Invalid("response signature does not verify") from exc

    @staticmethod
    def _single_response(
        response: ocsp.OCSPResponse, cert: x509.Certificate, issuer: x509.Certificate
    ) -> ocsp.OCSPSingleResponse:
        singles = list(response.responses)
        if len(singles) != 1:
            raise _Invalid(f"{len(singles)} single responses, expected exactly one")
        single = singles[0]
        try:
            expected = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, single.hash_algorithm).build()
        except (ValueError, TypeError) as exc:
            raise _Invalid("unsupported CertID hash") from exc
        if (
            single.serial_number != cert.serial_number
            or single.issuer_key_hash != expected.issuer_key_hash
            or single.issuer_name_hash != expected.issuer_name_hash
        ):
            raise _Invalid("response is for another certificate")
        return single

    @staticmethod
    def _check_nonce(response: ocsp.OCSPResponse, nonce: bytes) -> None:
        try:
            echoed = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        except x509.ExtensionNotFound:
            return  # responders serving pre-signed answers omit the nonce; freshness is checked instead
        if echoed != nonce:
            raise _Invalid("nonce mismatch")
