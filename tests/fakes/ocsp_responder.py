"""A real OCSP responder (RFC 6960 over HTTP POST) running in a thread for the eID tests.

Answers are built and signed with cryptography. ``behaviour`` picks what the
next answers look like: ``normal``, ``down`` (the connection is closed without
an answer), ``http_error`` (HTTP 503), ``try_later`` (OCSP tryLater),
``stale`` (thisUpdate a day old), ``expired_next_update`` (nextUpdate past),
``wrong_key`` (signed by an impostor certificate that copies the responder's
names but was not issued by the CA), ``unauthorised``
(a responder certificate without EKU OCSPSigning). ``statuses`` sets a
certificate's answer: good (default), revoked or unknown.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

BEHAVIOURS = (
    "normal",
    "down",
    "http_error",
    "try_later",
    "stale",
    "expired_next_update",
    "wrong_key",
    "unauthorised",
)


@dataclass
class Authority:
    """A CA the responder answers for and the key that signs its answers."""

    ca_cert: x509.Certificate
    signer_cert: x509.Certificate
    signer_key: ec.EllipticCurvePrivateKey
    unauthorised_cert: x509.Certificate | None = None
    unauthorised_key: ec.EllipticCurvePrivateKey | None = None


def _impostor(cert: x509.Certificate) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate that copies ``cert``'s names and extensions around a key of its own."""
    key = ec.generate_private_key(ec.SECP384R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(cert.subject)
        .issuer_name(cert.issuer)
        .public_key(key.public_key())
        .serial_number(cert.serial_number)
        .not_valid_before(cert.not_valid_before_utc)
        .not_valid_after(cert.not_valid_after_utc)
    )
    for ext in cert.extensions:
        if not isinstance(ext.value, x509.SubjectKeyIdentifier | x509.AuthorityKeyIdentifier):
            builder = builder.add_extension(ext.value, ext.critical)
    return builder.sign(key, hashes.SHA384()), key


class OcspResponder:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.behaviour = "normal"
        self.statuses: dict[int, str] = {}  # serial -> good | revoked | unknown (default good)
        self.authorities: dict[bytes, Authority] = {}
        self.requests = 0
        self.validity = dt.timedelta(hours=1)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/ocsp"

    def start(self) -> OcspResponder:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def add_authority(self, authority: Authority) -> None:
        key_hash = x509.SubjectKeyIdentifier.from_public_key(authority.ca_cert.public_key()).digest
        self.authorities[key_hash] = authority

    def revoke(self, cert: x509.Certificate) -> None:
        self.statuses[cert.serial_number] = "revoked"

    def mark_unknown(self, cert: x509.Certificate) -> None:
        self.statuses[cert.serial_number] = "unknown"

    # -- answering -----------------------------------------------------------
    def answer(self, body: bytes) -> bytes:
        if self.behaviour == "try_later":
            return ocsp.OCSPResponseBuilder.build_unsuccessful(
                ocsp.OCSPResponseStatus.TRY_LATER
            ).public_bytes(serialization.Encoding.DER)
        try:
            request = ocsp.load_der_ocsp_request(body)
        except ValueError:
            return ocsp.OCSPResponseBuilder.build_unsuccessful(
                ocsp.OCSPResponseStatus.MALFORMED_REQUEST
            ).public_bytes(serialization.Encoding.DER)
        authority = self.authorities.get(request.issuer_key_hash)
        if authority is None:
            return ocsp.OCSPResponseBuilder.build_unsuccessful(
                ocsp.OCSPResponseStatus.UNAUTHORIZED
            ).public_bytes(serialization.Encoding.DER)
        now = dt.datetime.fromtimestamp(self.clock(), dt.UTC).replace(microsecond=0)
        this_update = now - dt.timedelta(seconds=5)
        next_update = now + self.validity
        if self.behaviour == "stale":
            this_update = now - dt.timedelta(days=1)
        elif self.behaviour == "expired_next_update":
            this_update, next_update = now - dt.timedelta(seconds=120), now - dt.timedelta(seconds=60)
        status_name = self.statuses.get(request.serial_number, "good")
        status = {
            "good": ocsp.OCSPCertStatus.GOOD,
            "revoked": ocsp.OCSPCertStatus.REVOKED,
            "unknown": ocsp.OCSPCertStatus.UNKNOWN,
        }[status_name]
        signer_cert, signer_key = authority.signer_cert, authority.signer_key
        if self.behaviour == "wrong_key":
            signer_cert, signer_key = _impostor(authority.signer_cert)
        elif self.behaviour == "unauthorised":
            assert authority.unauthorised_cert is not None and authority.unauthorised_key is not None
            signer_cert, signer_key = authority.unauthorised_cert, authority.unauthorised_key
        builder = (
            ocsp.OCSPResponseBuilder()
            .add_response_by_hash(
                issuer_name_hash=request.issuer_name_hash,
                issuer_key_hash=request.issuer_key_hash,
                serial_number=request.serial_number,
                algorithm=request.hash_algorithm,
                cert_status=status,
                this_update=this_update,
                next_update=next_update,
                revocation_time=now - dt.timedelta(days=1) if status_name == "revoked" else None,
                revocation_reason=x509.ReasonFlags.key_compromise if status_name == "revoked" else None,
            )
            .responder_id(ocsp.OCSPResponderEncoding.HASH, signer_cert)
        )
        if signer_cert is not authority.ca_cert:
            builder = builder.certificates([signer_cert])
        try:
            nonce = request.extensions.get_extension_for_class(x509.OCSPNonce).value
            builder = builder.add_extension(nonce, critical=False)
        except x509.ExtensionNotFound:
            pass
        return builder.sign(signer_key, hashes.SHA384()).public_bytes(serialization.Encoding.DER)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        responder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                responder.requests += 1
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if responder.behaviour == "down":
                    self.close_connection = True
                    self.connection.close()
                    return
                if responder.behaviour == "http_error":
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                der = responder.answer(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/ocsp-response")
                self.send_header("Content-Length", str(len(der)))
                self.end_headers()
                self.wfile.write(der)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        return Handler
