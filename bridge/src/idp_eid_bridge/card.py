"""The Belgian eID card as a PKCS#11 token, for the bridge.

Card layout per the eID middleware (``Fedict/eid-mw`` ``beidlabels.h``,
``pkcs15.cpp``): token label ``BELPIC``; certificates labelled
``Authentication``, ``Signature``, ``CA``, ``Root``; private keys sharing the
certificates' ``CKA_ID``; public ``CKO_DATA`` objects holding the raw card
files (``DATA_FILE``, ``ADDRESS_FILE``, ``SIGN_DATA_FILE``,
``SIGN_ADDRESS_FILE``, ``CERT_RN_FILE`` ...), returned only when the search
template names ``CKA_CLASS``.

The data objects are read with the same template and labels the ``eidreader``
package uses (``CKA_CLASS=CKO_DATA``, one object per label). ``eidreader``
itself is not called: its ``eid2dict`` loads its own copy of the module, sets
``PYKCS11LIB`` in the process environment, merges the objects of every slot
into one dictionary, and cannot read through the session in which the bridge
has found the ``BELPIC`` token and logs in to sign.

PyKCS11 is imported lazily: without it the bridge still starts and its status says "no middleware".
"""

from __future__ import annotations

import contextlib
import logging
import platform
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from idp_eid_bridge import VERSION
from idp_eid_bridge import signing as token

log = logging.getLogger(__name__)

CARD_LABEL = "BELPIC"
AUTH_LABEL = "Authentication"
IDENTITY_OBJECTS = {
    "data_file": "DATA_FILE",
    "data_signature": "SIGN_DATA_FILE",
    "address_file": "ADDRESS_FILE",
    "address_signature": "SIGN_ADDRESS_FILE",
    "rrn_certificate": "CERT_RN_FILE",
}
# DER DigestInfo prefixes (RFC 8017 §9.2 note 1) for CKM_RSA_PKCS over a precomputed hash.
_DIGEST_INFO = {
    "SHA256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "SHA384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "SHA512": bytes.fromhex("3051300d060960864801650304020305000440"),
}

# HTTP status for each error code the bridge returns.
STATUS = {
    "bad_request": 400,
    "pin_wrong": 401,
    "origin_not_allowed": 403,
    "not_found": 404,
    "no_card": 409,
    "pin_cancelled": 409,
    "unsupported_card": 422,
    "pin_blocked": 423,
    "card_error": 500,
    "no_middleware": 503,
    "no_reader": 503,
}


class BridgeError(Exception):
    """A failure the web page is told about, as ``{"error": code, ...extra}``."""

    def __init__(self, code: str, message: str = "", **extra: Any) -> None:
        super().__init__(message or code)
        self.code = code
        self.message = message
        self.extra = extra

    @property
    def status(self) -> int:
        return STATUS[self.code]

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.extra}


@dataclass(frozen=True)
class PinRequest:
    """What a PIN prompt may show: who asks, and how many tries are left when the card says."""

    origin: str
    tries_left: int | None = None


PinPrompt = Callable[[PinRequest], "str | None"]  # the PIN, or None when the holder cancelled


def default_module() -> str:
    """The official eID middleware's PKCS#11 module for this operating system."""
    system = platform.system()
    if system == "Darwin":
        return "/Library/Belgium Identity Card/Pkcs11/libbeidpkcs11.dylib"
    if system == "Windows":
        return "beidpkcs11.dll"
    return "libbeidpkcs11.so.0"


def _algorithm(cert: x509.Certificate) -> str:
    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        algorithm = {256: "ES256", 384: "ES384", 521: "ES512"}.get(key.curve.key_size)
        if algorithm:
            return algorithm
    if isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048:
        return "RS256"  # applet 1.7; applet 1.1 (RSA-1024) cards are no longer supported
    raise BridgeError("unsupported_card", "the card's authentication key is not supported")


class CardReader:
    """Card access through one PKCS#11 module; one operation at a time."""

    def __init__(self, module: str) -> None:
        self.module = module
        self._lib: Any = None
        self._lock = threading.Lock()

    # -- module and slots ----------------------------------------------------
    def _pkcs11(self) -> tuple[Any, Any]:
        try:
            from PyKCS11 import PyKCS11, PyKCS11Error
        except ImportError as exc:
            raise BridgeError("no_middleware", "PyKCS11 is not installed") from exc
        if self._lib is None:
            lib = PyKCS11.PyKCS11Lib()
            try:
                lib.load(self.module)
            except PyKCS11Error as exc:
                raise BridgeError("no_middleware", "the eID middleware is not installed") from exc
            self._lib = lib
        return PyKCS11, self._lib

    def _slot(self, p11: Any, lib: Any) -> Any:
        slots = lib.getSlotList(tokenPresent=False)
        if not slots:
            raise BridgeError("no_reader", "no card reader found")
        other_card = False
        for slot in lib.getSlotList(tokenPresent=True):
            info = lib.getTokenInfo(slot)
            if info.label.strip() == CARD_LABEL:
                return slot
            other_card = other_card or bool(info.flags & p11.CKF_TOKEN_INITIALIZED)
        if other_card:
            raise BridgeError("unsupported_card", "the card in the reader is not a Belgian eID card")
        raise BridgeError("no_card", "no eID card in the reader")

    # -- operations ----------------------------------------------------------
    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = {"middleware": False, "reader": False, "card": False, "applet": None}
        with self._lock:
            try:
                p11, lib = self._pkcs11()
                result["middleware"] = True
                result["reader"] = bool(lib.getSlotList(tokenPresent=False))
                slot = self._slot(p11, lib)
                result["card"] = True
                session = lib.openSession(slot)
                try:
                    cert, _ = _authentication_certificate(p11, session)
                    result["applet"] = (
                        "1.8" if isinstance(cert.public_key(), ec.EllipticCurvePublicKey) else "1.7"
                    )
                finally:
                    session.closeSession()
            except BridgeError:
                pass
            except Exception as exc:  # a status probe must answer, whatever the card does
                log.warning("eid bridge: status probe failed (%s)", type(exc).__name__)
        return result

    def authenticate(self, origin: str, challenge: str, prompt: PinPrompt) -> dict[str, Any]:
        """Sign ``hash(origin) ‖ hash(challenge)`` with the Authentication key; return the token."""
        with self._lock:
            p11, lib = self._pkcs11()
            try:
                slot = self._slot(p11, lib)
                session = lib.openSession(slot)
            except p11.PyKCS11Error as exc:
                raise _card_error(p11, exc) from exc
            try:
                return self._authenticate(p11, lib, slot, session, origin, challenge, prompt)
            except p11.PyKCS11Error as exc:
                raise _card_error(p11, exc) from exc
            finally:
                with contextlib.suppress(p11.PyKCS11Error):
                    session.logout()
                with contextlib.suppress(p11.PyKCS11Error):
                    session.closeSession()

    def _authenticate(
        self, p11: Any, lib: Any, slot: Any, session: Any, origin: str, challenge: str, prompt: PinPrompt
    ) -> dict[str, Any]:
        cert, key_id = _authentication_certificate(p11, session)
        algorithm = _algorithm(cert)
        files = {name: _data_object(p11, session, label) for name, label in IDENTITY_OBJECTS.items()}
        _login(p11, lib, slot, session, origin, prompt)
        keys = session.findObjects([(p11.CKA_CLASS, p11.CKO_PRIVATE_KEY), (p11.CKA_ID, key_id)])
        if not keys:
            raise BridgeError("unsupported_card", "the card has no authentication key")
        hash_alg = token.hash_algorithm(algorithm)
        digest = token.digest(token.signed_payload(origin, challenge, algorithm), hash_alg)
        if algorithm.startswith("ES"):
            raw = bytes(session.sign(keys[0], digest, p11.Mechanism(p11.CKM_ECDSA, None)))
            signature = token.raw_ecdsa_to_der(raw)
        else:
            data = _DIGEST_INFO[hash_alg.name.upper()] + digest
            signature = bytes(session.sign(keys[0], data, p11.Mechanism(p11.CKM_RSA_PKCS, None)))
        return {
            "format": token.FORMAT,
            "certificate": token.b64encode(cert.public_bytes(Encoding.DER)),
            "algorithm": algorithm,
            "signature": token.b64encode(signature),
            "challenge": challenge,
            "identity": {name: token.b64encode(value) for name, value in files.items()},
            "app_version": VERSION,
        }


def _authentication_certificate(p11: Any, session: Any) -> tuple[x509.Certificate, bytes]:
    found = session.findObjects([(p11.CKA_CLASS, p11.CKO_CERTIFICATE), (p11.CKA_LABEL, AUTH_LABEL)])
    if not found:
        raise BridgeError("unsupported_card", "the card has no authentication certificate")
    value, key_id = session.getAttributeValue(found[0], [p11.CKA_VALUE, p11.CKA_ID])
    try:
        return x509.load_der_x509_certificate(bytes(value)), bytes(key_id)
    except ValueError as exc:
        raise BridgeError("unsupported_card", "the authentication certificate does not parse") from exc


def _data_object(p11: Any, session: Any, label: str) -> bytes:
    found = session.findObjects([(p11.CKA_CLASS, p11.CKO_DATA), (p11.CKA_LABEL, label)])
    if not found:
        raise BridgeError("unsupported_card", f"the card has no {label}")
    return bytes(session.getAttributeValue(found[0], [p11.CKA_VALUE])[0])


PIN_TRIES = 3  # the Belgian eID cardholder PIN blocks after three wrong entries


def tries_left(p11: Any, flags: int) -> int | None:
    """What the token flags say of the PIN tries left (None when they say nothing).

    PKCS#11 sets ``CKF_USER_PIN_FINAL_TRY`` with one try left and ``CKF_USER_PIN_COUNT_LOW``
    after a wrong entry; on a three-try card the latter alone means two.
    """
    if flags & p11.CKF_USER_PIN_LOCKED:
        return 0
    if flags & p11.CKF_USER_PIN_FINAL_TRY:
        return 1
    if flags & p11.CKF_USER_PIN_COUNT_LOW:
        return PIN_TRIES - 1
    return None


def _login(p11: Any, lib: Any, slot: Any, session: Any, origin: str, prompt: PinPrompt) -> None:
    info = lib.getTokenInfo(slot)
    if info.flags & p11.CKF_USER_PIN_LOCKED:
        raise BridgeError("pin_blocked", "the PIN is blocked")
    if info.flags & p11.CKF_PROTECTED_AUTHENTICATION_PATH:
        pin = None  # pinpad reader: the reader asks for the PIN
    else:
        pin = prompt(PinRequest(origin=origin, tries_left=tries_left(p11, info.flags)))
        if pin is None:
            raise BridgeError("pin_cancelled", "PIN entry cancelled")
    try:
        session.login(pin)
    except p11.PyKCS11Error as exc:
        if exc.value == p11.CKR_USER_ALREADY_LOGGED_IN:
            return
        if exc.value in (p11.CKR_PIN_INCORRECT, p11.CKR_PIN_INVALID, p11.CKR_PIN_LEN_RANGE):
            flags = lib.getTokenInfo(slot).flags
            if flags & p11.CKF_USER_PIN_LOCKED:
                raise BridgeError("pin_blocked", "the PIN is now blocked") from exc
            left = tries_left(p11, flags)
            extra = {"tries_left": left} if left else {}
            raise BridgeError("pin_wrong", "wrong PIN", **extra) from exc
        raise


def _card_error(p11: Any, exc: Any) -> BridgeError:
    code = getattr(exc, "value", None)
    if code == p11.CKR_PIN_LOCKED:
        return BridgeError("pin_blocked", "the PIN is blocked")
    if code == p11.CKR_FUNCTION_CANCELED:
        return BridgeError("pin_cancelled", "PIN entry cancelled on the reader")
    if code in (p11.CKR_TOKEN_NOT_PRESENT, p11.CKR_DEVICE_REMOVED, p11.CKR_SESSION_HANDLE_INVALID):
        return BridgeError("no_card", "the card was removed")
    return BridgeError("card_error", f"the card answered {p11.CKR.get(code, code)}")
