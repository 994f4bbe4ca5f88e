"""The signed-challenge token exchanged between the bridge and the provider.

Follows the Web eID model (``web-eid-system-architecture-doc``, "Authentication
token format"): the card's Authentication key signs ``hash(origin) ‖
hash(challenge)``, where both hashes use the hash function of the signature
algorithm, the origin is ``scheme://host[:port]`` without a trailing slash and
the challenge is hashed as the UTF-8 bytes of its base64 text. Hashing each
part separately keeps the two fields apart.

The bridge and the verifier both import this module, so the signed bytes are
defined in exactly one place.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

FORMAT = "eid-bridge/1"
# The Web eID extension's token (``web-eid.js`` ``ExtensionAuthenticateResponse``): "web-eid:1.0" today;
# any 1.x is the same shape (the Java validator accepts the major version alone as well).
WEB_EID_FORMAT = "web-eid:1"


def is_web_eid_format(value: object) -> bool:
    return isinstance(value, str) and (value == WEB_EID_FORMAT or value.startswith(WEB_EID_FORMAT + "."))


# JOSE names -> hash algorithm. ES* are ECDSA, RS* RSASSA-PKCS1-v1_5, PS* RSASSA-PSS.
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
ALGORITHMS = tuple(HASHES)


def hash_algorithm(algorithm: str) -> hashes.HashAlgorithm:
    return HASHES[algorithm]()


def digest(data: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
    h = hashes.Hash(algorithm)
    h.update(data)
    return h.finalize()


def signed_payload(origin: str, challenge: str, algorithm: str) -> bytes:
    """``hash(origin) ‖ hash(challenge)``: the bytes the algorithm signs (and hashes once more)."""
    alg = hash_algorithm(algorithm)
    return digest(origin.encode("utf-8"), alg) + digest(challenge.encode("utf-8"), alg)


def raw_ecdsa_to_der(signature: bytes) -> bytes:
    """PKCS#11 ``CKM_ECDSA`` returns ``r ‖ s``; cryptography wants DER."""
    half = len(signature) // 2
    r = int.from_bytes(signature[:half], "big")
    s = int.from_bytes(signature[half:], "big")
    return encode_dss_signature(r, s)


def b64decode(value: object, max_bytes: int) -> bytes:
    """Strict standard base64 of at most ``max_bytes`` decoded bytes; ValueError otherwise."""
    if not isinstance(value, str) or not value:
        raise ValueError("not a non-empty string")
    if len(value) > (max_bytes + 2) // 3 * 4:
        raise ValueError("too long")
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError("not base64") from exc


def b64encode(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")
