"""The bytes the card signs, as the provider checks them (``connectors/eid/token.py`` on the server).

The bridge is its own distribution and never imports the provider's code, so
the few lines that define the signed value live here as well; the test
``tests/connectors/test_bridge_distribution.py`` keeps both in step for every algorithm.
"""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

FORMAT = "eid-bridge/1"

HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "ES256": hashes.SHA256,
    "ES384": hashes.SHA384,
    "ES512": hashes.SHA512,
    "RS256": hashes.SHA256,
    "RS384": hashes.SHA384,
    "RS512": hashes.SHA512,
    "PS256": hashes.SHA256,
    "PS384": hashes.SHA384,
    "PS512": hashes.SHA512,
}


def hash_algorithm(algorithm: str) -> hashes.HashAlgorithm:
    return HASHES[algorithm]()


def digest(data: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
    h = hashes.Hash(algorithm)
    h.update(data)
    return h.finalize()


def signed_payload(origin: str, challenge: str, algorithm: str) -> bytes:
    """``hash(origin) ‖ hash(challenge)`` (the Web eID construction): what the card's key signs."""
    alg = hash_algorithm(algorithm)
    return digest(origin.encode("utf-8"), alg) + digest(challenge.encode("utf-8"), alg)


def raw_ecdsa_to_der(signature: bytes) -> bytes:
    """PKCS#11 ``CKM_ECDSA`` returns ``r ‖ s``; the provider accepts DER."""
    half = len(signature) // 2
    return encode_dss_signature(
        int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big")
    )


def b64encode(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")
