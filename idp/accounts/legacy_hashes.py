"""Password hashes exported by older systems: recognised, checked at import, verified at login.

Every format here is replaced by an Argon2id hash at the first successful
login (:meth:`idp.accounts.passwords.Passwords.needs_rehash`). The formats and
the library that verifies each one:

============================  ============================================  ==========================
format                        example prefix                                verified by
============================  ============================================  ==========================
bcrypt                        ``$2a$`` ``$2b$`` ``$2y$``                     ``bcrypt``
Argon2                        ``$argon2id$`` ``$argon2i$`` ``$argon2d$``     ``argon2-cffi``
PBKDF2, Django                ``pbkdf2_sha256$`` ``pbkdf2_sha1$``            ``hashlib.pbkdf2_hmac``
PBKDF2, modular (passlib)     ``$pbkdf2-sha256$`` ``-sha512`` ``$pbkdf2$``   ``hashlib.pbkdf2_hmac``
PBKDF2, Keycloak credential   JSON ``secretData`` + ``credentialData``       ``hashlib.pbkdf2_hmac``
scrypt, modular (passlib)     ``$scrypt$ln=…,r=…,p=…$``                      ``hashlib.scrypt``
scrypt, Django                ``scrypt$``                                    ``hashlib.scrypt``
SHA-crypt (Drepper)           ``$5$`` ``$6$``                                ``libpass`` (see below)
salted SHA (weak)             ``{SSHA}`` ``{SSHA256}`` ``{SSHA512}``         ``hashlib`` + ``hmac``
============================  ============================================  ==========================

SHA-crypt is verified with ``libpass``, the maintained fork of passlib
(passlib itself has had no release since 2020 and breaks on recent Python);
the standard library's ``crypt`` module is deprecated and gone in Python 3.13,
and re-implementing the 20-step algorithm of the spec is easy to get subtly
wrong. The tests check it against the spec's own test vectors.

Keycloak's credential (``{"secretData": "{\\"value\\": …, \\"salt\\": …}",
"credentialData": "{\\"hashIterations\\": …, \\"algorithm\\": \\"pbkdf2-sha256\\"}"}``)
is rewritten at import into the equivalent modular string
``$pbkdf2-sha256$ITERATIONS$SALT$HASH`` (adapted base64): the same salt,
iterations and derived key, one column.

Salted SHA-1/SHA-256/SHA-512 in the OpenLDAP ``{SSHA}`` layout (RFC 2307
``userPassword``: base64 of ``digest(password + salt) + salt``) is one fast
hash: it is accepted only with ``allow_weak_legacy_hashes`` and the importer
marks such accounts to change their password after the next login.

Cost parameters are bounded (:data:`LIMITS`) so that a corrupt or hostile
import cannot pin a worker at login. Nothing here logs a hash or a password.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from dataclasses import dataclass

import argon2
import bcrypt
from argon2.exceptions import InvalidHashError, VerificationError
from passlib.hash import sha256_crypt, sha512_crypt

# bcrypt only ever looked at the first 72 bytes.
BCRYPT_MAX_BYTES = 72

LIMITS = {
    "pbkdf2_iterations": 10_000_000,
    "bcrypt_cost": 16,
    "argon2_memory_kib": 1024 * 1024,
    "argon2_time_cost": 20,
    "scrypt_memory_bytes": 256 * 1024 * 1024,
    "sha_crypt_rounds": 5_000_000,
}

PBKDF2_DJANGO = {"pbkdf2_sha256": "sha256", "pbkdf2_sha1": "sha1"}
PBKDF2_MODULAR = {"pbkdf2": "sha1", "pbkdf2-sha256": "sha256", "pbkdf2-sha512": "sha512"}
KEYCLOAK_PBKDF2 = {"pbkdf2": "pbkdf2", "pbkdf2-sha256": "pbkdf2-sha256", "pbkdf2-sha512": "pbkdf2-sha512"}
SALTED_SHA = {"{SSHA}": ("sha1", 20), "{SSHA256}": ("sha256", 32), "{SSHA512}": ("sha512", 64)}

_BCRYPT = re.compile(r"^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$")
_SHA_CRYPT = re.compile(r"^\$([56])\$(?:rounds=(\d{1,10})\$)?[^$:\n]{0,16}\$[./0-9A-Za-z]{43,86}$")
_AB64 = re.compile(r"^[./+A-Za-z0-9]*={0,2}$")


class HashFormatError(ValueError):
    """The text is not a password hash this provider can verify; ``str()`` says why (never the hash)."""


@dataclass(frozen=True)
class LegacyHash:
    """A hash accepted at import: the string to store, its format, and whether it is a weak one."""

    stored: str
    scheme: str
    weak: bool = False


# ---------------------------------------------------------------------------
# Import: recognise and check
# ---------------------------------------------------------------------------


def parse(value: str | dict, *, allow_weak: bool = False) -> LegacyHash:
    """Recognise an exported hash (or a Keycloak credential object) and check its structure.

    Returns what to store; raises :class:`HashFormatError` with a reason that
    never repeats the hash.
    """
    if isinstance(value, dict) or (isinstance(value, str) and value.lstrip().startswith('{"')):
        return LegacyHash(_keycloak_to_modular(value), "keycloak-pbkdf2")
    if not isinstance(value, str) or not value.strip():
        raise HashFormatError("required")
    text = value.strip()
    scheme = scheme_of(text)
    if scheme is None:
        raise HashFormatError("not a recognised password hash format (see docs/migration.md)")
    if scheme == "salted-sha" and not allow_weak:
        raise HashFormatError(
            "salted SHA hashes are weak; set allow_weak_legacy_hashes = true in [passwords] to import them"
        )
    _check(scheme, text)
    return LegacyHash(text, scheme, weak=scheme == "salted-sha")


def scheme_of(stored: str) -> str | None:
    """The format of a stored hash, by its prefix; None when unknown."""
    if stored.startswith(("$argon2id$", "$argon2i$", "$argon2d$")):
        return "argon2"
    if stored.startswith(("$2a$", "$2b$", "$2y$")):
        return "bcrypt"
    if stored.split("$", 1)[0] in PBKDF2_DJANGO:
        return "django-pbkdf2"
    if stored.startswith("$pbkdf2"):
        return "pbkdf2"
    if stored.startswith("$scrypt$"):
        return "scrypt"
    if stored.startswith("scrypt$"):
        return "django-scrypt"
    if stored.startswith(("$5$", "$6$")):
        return "sha-crypt"
    if any(stored.startswith(p) for p in SALTED_SHA):
        return "salted-sha"
    return None


def _check(scheme: str, text: str) -> None:
    try:
        CHECKS[scheme](text)
    except HashFormatError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, binascii.Error):
        raise HashFormatError(f"not a well-formed {scheme} hash") from None


def _check_bcrypt(text: str) -> None:
    m = _BCRYPT.match(text)
    if not m:
        raise HashFormatError("not a well-formed bcrypt hash ($2b$NN$ + 53 characters)")
    if not 4 <= int(m.group(1)) <= LIMITS["bcrypt_cost"]:
        raise HashFormatError(f"bcrypt cost must be 4 to {LIMITS['bcrypt_cost']}")


def _check_argon2(text: str) -> None:
    try:
        p = argon2.extract_parameters(text)
    except InvalidHashError:
        raise HashFormatError("not a well-formed Argon2 hash (PHC string)") from None
    if p.memory_cost > LIMITS["argon2_memory_kib"] or p.time_cost > LIMITS["argon2_time_cost"]:
        raise HashFormatError("Argon2 cost parameters are beyond the limits of this provider")


def _check_iterations(n: int) -> None:
    if not 1 <= n <= LIMITS["pbkdf2_iterations"]:
        raise HashFormatError(f"PBKDF2 iterations must be 1 to {LIMITS['pbkdf2_iterations']}")


def _check_django_pbkdf2(text: str) -> None:
    _scheme, iterations, salt, encoded = text.split("$")
    _check_iterations(int(iterations))
    if not salt or not base64.b64decode(encoded, validate=True):
        raise ValueError


def _check_pbkdf2(text: str) -> None:
    _, scheme, rounds, salt, encoded = text.split("$")
    if scheme not in PBKDF2_MODULAR:
        raise HashFormatError(f"unknown PBKDF2 variant {scheme!r} (pbkdf2, pbkdf2-sha256, pbkdf2-sha512)")
    _check_iterations(int(rounds))
    if not ab64_decode(encoded):
        raise ValueError
    ab64_decode(salt)


def _scrypt_modular_params(text: str) -> tuple[int, int, int, bytes, bytes]:
    _, _scheme, params, salt, encoded = text.split("$")
    values = dict(item.split("=", 1) for item in params.split(","))
    if set(values) != {"ln", "r", "p"}:
        raise ValueError
    return 1 << int(values["ln"]), int(values["r"]), int(values["p"]), ab64_decode(salt), ab64_decode(encoded)


def _scrypt_django_params(text: str) -> tuple[int, int, int, bytes, bytes]:
    _scheme, n, salt, r, p, encoded = text.split("$")
    return int(n), int(r), int(p), salt.encode("utf-8"), base64.b64decode(encoded, validate=True)


def _check_scrypt_params(n: int, r: int, p: int, expected: bytes) -> None:
    if n < 2 or n & (n - 1) or not 1 <= r <= 64 or not 1 <= p <= 16 or not expected:
        raise HashFormatError("scrypt parameters are not valid (N a power of 2, r 1-64, p 1-16)")
    if _scrypt_maxmem(n, r, p) > LIMITS["scrypt_memory_bytes"]:
        raise HashFormatError("scrypt parameters need more memory than this provider allows (256 MiB)")


def _check_scrypt(text: str) -> None:
    n, r, p, _salt, expected = _scrypt_modular_params(text)
    _check_scrypt_params(n, r, p, expected)


def _check_django_scrypt(text: str) -> None:
    n, r, p, _salt, expected = _scrypt_django_params(text)
    _check_scrypt_params(n, r, p, expected)


def _check_sha_crypt(text: str) -> None:
    m = _SHA_CRYPT.match(text)
    if not m:
        raise HashFormatError("not a well-formed SHA-crypt hash ($5$ or $6$, optional rounds=N$, salt, hash)")
    rounds = int(m.group(2) or 5000)
    if not 1000 <= rounds <= LIMITS["sha_crypt_rounds"]:
        raise HashFormatError(f"SHA-crypt rounds must be 1000 to {LIMITS['sha_crypt_rounds']}")
    handler = sha256_crypt if m.group(1) == "5" else sha512_crypt
    handler.from_string(text)  # the library's own parser: checksum length and alphabet


def _check_salted_sha(text: str) -> None:
    prefix = text[: text.index("}") + 1]
    _algorithm, size = SALTED_SHA[prefix]
    raw = base64.b64decode(text[len(prefix) :], validate=True)
    if len(raw) <= size:
        raise HashFormatError(f"{prefix} value too short: base64 of the digest followed by a salt")


CHECKS = {
    "argon2": _check_argon2,
    "bcrypt": _check_bcrypt,
    "django-pbkdf2": _check_django_pbkdf2,
    "pbkdf2": _check_pbkdf2,
    "scrypt": _check_scrypt,
    "django-scrypt": _check_django_scrypt,
    "sha-crypt": _check_sha_crypt,
    "salted-sha": _check_salted_sha,
}


def _keycloak_to_modular(value: str | dict) -> str:
    """Keycloak's exported password credential as ``$pbkdf2-sha256$iterations$salt$hash``."""
    try:
        credential = json.loads(value) if isinstance(value, str) else value
        secret = _json_field(credential, "secretData")
        data = _json_field(credential, "credentialData")
        algorithm = data.get("algorithm", "pbkdf2-sha256")
        iterations = int(data["hashIterations"])
        salt = base64.b64decode(secret["salt"], validate=True)
        digest = base64.b64decode(secret["value"], validate=True)
    except (ValueError, TypeError, KeyError, AttributeError, binascii.Error):
        raise HashFormatError(
            "not a Keycloak password credential (secretData with value and salt, "
            "credentialData with hashIterations and algorithm)"
        ) from None
    if algorithm not in KEYCLOAK_PBKDF2:
        raise HashFormatError(
            f"Keycloak algorithm {str(algorithm)[:32]!r} is not supported "
            "(pbkdf2, pbkdf2-sha256, pbkdf2-sha512)"
        )
    _check_iterations(iterations)
    if not digest or not salt:
        raise HashFormatError("Keycloak credential has an empty salt or value")
    return f"${KEYCLOAK_PBKDF2[algorithm]}${iterations}${ab64_encode(salt)}${ab64_encode(digest)}"


def _json_field(credential: dict, name: str) -> dict:
    field = credential[name]
    field = json.loads(field) if isinstance(field, str) else field
    if not isinstance(field, dict):
        raise TypeError
    return field


# ---------------------------------------------------------------------------
# Login: verify
# ---------------------------------------------------------------------------


def matches(stored: str, password: str, *, allow_weak: bool = False) -> bool:
    """Whether ``password`` (exactly as typed) matches the legacy hash ``stored``.

    Raises :class:`HashFormatError` for a format it does not know or may not
    use (a weak hash with ``allow_weak`` off), ``ValueError`` for a malformed one.
    """
    scheme = scheme_of(stored)
    if scheme is None:
        raise HashFormatError("unknown format")
    if scheme == "salted-sha" and not allow_weak:
        raise HashFormatError("weak hashes are not allowed")
    CHECKS[scheme](stored)  # the same bounds at login as at import
    return VERIFIERS[scheme](stored, password)


def _argon2_matches(stored: str, password: str) -> bool:
    try:
        return argon2.PasswordHasher().verify(stored, password)
    except VerificationError:
        return False


def _bcrypt_matches(stored: str, password: str) -> bool:
    return bcrypt.checkpw(password.encode("utf-8")[:BCRYPT_MAX_BYTES], stored.encode("ascii"))


def _pbkdf2_matches(digest: str, password: str, salt: bytes, iterations: int, expected: bytes) -> bool:
    actual = hashlib.pbkdf2_hmac(digest, password.encode("utf-8"), salt, iterations, len(expected))
    return hmac.compare_digest(actual, expected)


def _django_pbkdf2_matches(stored: str, password: str) -> bool:
    scheme, iterations, salt, encoded = stored.split("$")
    expected = base64.b64decode(encoded, validate=True)
    return _pbkdf2_matches(PBKDF2_DJANGO[scheme], password, salt.encode("utf-8"), int(iterations), expected)


def _modular_pbkdf2_matches(stored: str, password: str) -> bool:
    _, scheme, rounds, salt, encoded = stored.split("$")
    expected = ab64_decode(encoded)
    return _pbkdf2_matches(PBKDF2_MODULAR[scheme], password, ab64_decode(salt), int(rounds), expected)


def _scrypt_maxmem(n: int, r: int, p: int) -> int:
    return 128 * r * (n + p + 2) + 1024 * 1024


def _scrypt_matches(n: int, r: int, p: int, salt: bytes, expected: bytes, password: str) -> bool:
    maxmem = _scrypt_maxmem(n, r, p)
    actual = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=len(expected)
    )
    return hmac.compare_digest(actual, expected)


def _modular_scrypt_matches(stored: str, password: str) -> bool:
    return _scrypt_matches(*_scrypt_modular_params(stored), password)


def _django_scrypt_matches(stored: str, password: str) -> bool:
    return _scrypt_matches(*_scrypt_django_params(stored), password)


def _sha_crypt_matches(stored: str, password: str) -> bool:
    handler = sha256_crypt if stored.startswith("$5$") else sha512_crypt
    return handler.verify(password, stored)


def _salted_sha_matches(stored: str, password: str) -> bool:
    prefix = stored[: stored.index("}") + 1]
    algorithm, size = SALTED_SHA[prefix]
    raw = base64.b64decode(stored[len(prefix) :], validate=True)
    digest, salt = raw[:size], raw[size:]
    return hmac.compare_digest(hashlib.new(algorithm, password.encode("utf-8") + salt).digest(), digest)


VERIFIERS = {
    "argon2": _argon2_matches,
    "bcrypt": _bcrypt_matches,
    "django-pbkdf2": _django_pbkdf2_matches,
    "pbkdf2": _modular_pbkdf2_matches,
    "scrypt": _modular_scrypt_matches,
    "django-scrypt": _django_scrypt_matches,
    "sha-crypt": _sha_crypt_matches,
    "salted-sha": _salted_sha_matches,
}


# ---------------------------------------------------------------------------
# passlib's "adapted base64": "." instead of "+", no padding
# ---------------------------------------------------------------------------


def ab64_decode(text: str) -> bytes:
    if not _AB64.match(text):
        raise ValueError("not adapted base64")
    text = text.rstrip("=").replace(".", "+")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def ab64_encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=").replace("+", ".")
