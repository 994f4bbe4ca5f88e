"""A software WebAuthn authenticator for tests that run without a browser.

It answers the provider's options the way a platform authenticator does
(attestation ``none``, ES256 key, discoverable credential with the user
handle) and can be told to misbehave: another origin, another RP id, no user
verification, a counter that goes backwards. The browser tests use
Chromium's own virtual authenticator instead; :meth:`SoftAuthenticator.from_virtual`
turns a credential exported from it (private key included) into one of these,
to sign what a browser would never sign.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import struct

import cbor2
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SoftAuthenticator:
    def __init__(
        self,
        origin: str,
        rp_id: str,
        aaguid: bytes = bytes(16),
        backed_up: bool = False,
        key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | None = None,
        credential_id: bytes | None = None,
        user_handle: str | None = None,
        sign_count: int = 0,
    ) -> None:
        self.origin = origin
        self.rp_id = rp_id
        self.aaguid = aaguid
        self.backed_up = backed_up
        self.key = key or ec.generate_private_key(ec.SECP256R1())
        self.credential_id = credential_id or secrets.token_bytes(16)
        self.user_handle = user_handle
        self.sign_count = sign_count

    @classmethod
    def from_virtual(cls, credential: dict, origin: str) -> SoftAuthenticator:
        """A credential from CDP ``WebAuthn.getCredentials`` (standard base64 fields)."""
        key = serialization.load_der_private_key(base64.b64decode(credential["privateKey"]), None)
        return cls(
            origin=origin,
            rp_id=credential["rpId"],
            key=key,
            credential_id=base64.b64decode(credential["credentialId"]),
            user_handle=b64url(base64.b64decode(credential["userHandle"])),
            sign_count=credential.get("signCount", 0),
        )

    @property
    def id(self) -> str:
        return b64url(self.credential_id)

    def _cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps(
            {1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")}
        )

    def _flags(self, uv: bool) -> int:
        flags = UP | (UV if uv else 0)
        if self.backed_up:
            flags |= BE | BS
        return flags

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps(
            {"type": kind, "challenge": challenge, "origin": origin or self.origin, "crossOrigin": False}
        ).encode()

    def create(self, options: dict, *, origin: str | None = None, uv: bool = True) -> dict:
        """The answer to ``navigator.credentials.create()`` with these options."""
        assert options["rp"]["id"] == self.rp_id, options["rp"]
        self.user_handle = options["user"]["id"]
        client_data = self._client_data("webauthn.create", options["challenge"], origin)
        auth_data = (
            hashlib.sha256(self.rp_id.encode()).digest()
            + bytes([self._flags(uv) | AT])
            + struct.pack(">I", self.sign_count)
            + self.aaguid
            + struct.pack(">H", len(self.credential_id))
            + self.credential_id
            + self._cose_key()
        )
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {
            "id": self.id,
            "rawId": self.id,
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
        }

    def get(
        self,
        options: dict,
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        uv: bool = True,
        sign_count: int | None = None,
    ) -> dict:
        """The answer to ``navigator.credentials.get()``; the counter goes up unless told otherwise."""
        if sign_count is None:
            self.sign_count += 1
            sign_count = self.sign_count
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        auth_data = (
            hashlib.sha256((rp_id or self.rp_id).encode()).digest()
            + bytes([self._flags(uv)])
            + struct.pack(">I", sign_count)
        )
        signed = auth_data + hashlib.sha256(client_data).digest()
        if isinstance(self.key, ed25519.Ed25519PrivateKey):  # Chromium's virtual authenticator picks EdDSA
            signature = self.key.sign(signed)
        else:
            signature = self.key.sign(signed, ec.ECDSA(hashes.SHA256()))
        return {
            "id": self.id,
            "rawId": self.id,
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
                "userHandle": self.user_handle,
            },
            "clientExtensionResults": {},
        }
