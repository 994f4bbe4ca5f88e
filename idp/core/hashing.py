"""Digests and keys: the one place that hashes secrets and identifiers.

Two kinds of hash, never mixed:

- :func:`digest` — plain SHA-256 of a *high-entropy* secret we issued (an
  authorization code, a refresh token, a reset or confirmation link): the
  database keeps the digest, a stolen database cannot replay it.
- :func:`keyed_digest` — HMAC-SHA256 with a key of its own per purpose, for
  values with little entropy that a person typed or a card holds (national
  register and card numbers, what was typed into a login form, one-time
  codes): without the key, a stolen database or shared store does not give
  them away by brute force.

One key per purpose (RFC 5869 HKDF-SHA256): every key is derived from the
provider's master secret (``provider.secret_key``) with a label naming its
purpose, so the CSRF key, the identifier-hashing key, the code key, the TOTP
encryption key ... are unrelated even though one secret is configured. The
CSRF/session key carries ``provider.session_key_version`` in its label: raising
it rotates that key alone. The identifier-hashing key is versioned too
(``provider.identifier_key_version``) and every stored identifier hash carries the
id of the key that made it (:mod:`idp.accounts.identifiers` finds and re-keys
old ones).
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app

# Every purpose a key is derived for. A typo in a label would silently make a
# new, unrelated key: labels are checked against this list.
PURPOSES = frozenset(
    {
        "session",  # Flask SECRET_KEY: CSRF tokens (versioned)
        "identifier",  # national register and card numbers (versioned)
        "otp",  # SMS one-time codes in the shared store
        "totp",  # encryption of authenticator-app secrets at rest
        "activation-code",  # activation letters' codes
        "throttle",  # lockout and rate-limit keys made of what a person typed
        "pairwise",  # pairwise subject identifiers (OpenID Connect Core 8.1)
        "dpop-nonce",  # the stateless DPoP server nonce (RFC 9449 section 8)
    }
)


def digest(value: str) -> str:
    """SHA-256 (hex) of a high-entropy secret we issued: how codes, tokens and links are stored."""
    return hashlib.sha256(value.encode()).hexdigest()


@lru_cache(maxsize=64)
def _hkdf(master: str, label: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"idp/" + label.encode()).derive(
        master.encode()
    )


def derive_key(purpose: str, version: int | None = None, *, master: str | None = None) -> bytes:
    """The 32-byte key of ``purpose`` (and ``version`` for the versioned ones)."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown key purpose {purpose!r}")
    if master is None:
        master = current_app.extensions["idp.settings"].secret_key
    label = purpose if version is None else f"{purpose}/v{version}"
    return _hkdf(master, label)


def keyed_digest(purpose: str, *parts: str, version: int | None = None, key: bytes | None = None) -> str:
    """HMAC-SHA256 (hex) of ``parts`` (joined by NUL) under the key of ``purpose``."""
    k = key if key is not None else derive_key(purpose, version)
    return hmac.new(k, "\0".join(parts).encode(), hashlib.sha256).hexdigest()


def session_key(master: str, version: int) -> bytes:
    """Flask's ``SECRET_KEY`` (CSRF tokens): rotated alone by raising its version."""
    return derive_key("session", version, master=master)


def _alnum(value: str) -> str:
    return "".join(c for c in value if c.isalnum()).upper()


def identifier_key_version() -> int:
    return current_app.extensions["idp.settings"].identifier_key_version


# Identifier hashes carry the id of the key that made them: "3" (made directly under
# identifier key version 3), "0" (the derivation used before per-purpose keys), or a
# chain "1>3" (a version-1 hash wrapped under version 3 by ``idp keys rehash-identifiers``).
LEGACY_KID = "0"


def legacy_key(label: str) -> bytes:
    """A key as derived before keys per purpose (HMAC of the master secret and a label): only
    to read what was stored with it (authenticator-app secrets, letters, identifier hashes)."""
    master = current_app.extensions["idp.settings"].secret_key.encode()
    return hmac.new(master, label.encode(), hashlib.sha256).digest()


def _legacy_identifier_hash(kind: str, value: str) -> str:
    key = legacy_key("idp-identifier-hash:" + kind)
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def identifier_hash(kind: str, value: str, kid: str | None = None) -> str:
    """Keyed hash of an identifier (``kind``: ``national-number`` or ``card-number``) under
    the key id ``kid`` (default: the current version, directly)."""
    kid = kid or str(identifier_key_version())
    first, *wraps = kid.split(">")
    if first == LEGACY_KID:
        out = _legacy_identifier_hash(kind, _alnum(value))
    else:
        out = keyed_digest("identifier", kind, _alnum(value), version=int(first))
    for version in wraps:
        out = wrap_identifier_hash(kind, out, int(version))
    return out


def wrap_identifier_hash(kind: str, stored: str, version: int) -> str:
    """A stored hash re-keyed under ``version`` without knowing the identifier."""
    return keyed_digest("identifier", kind + "/wrapped", stored, version=version)


def national_number_hash(value: str, version: int | None = None) -> str:
    """Keyed hash of a national register number (under the current identifier key by default)."""
    return identifier_hash("national-number", value, None if version is None else str(version))


def card_number_hash(value: str, version: int | None = None) -> str:
    """Keyed hash of an eID or bank card number (under the current identifier key by default)."""
    return identifier_hash("card-number", value, None if version is None else str(version))
