"""Password hashing, verification and the password policy.

Implements NIST SP 800-63B §3.1.1.2 (memorized secret verifiers) and OWASP
ASVS 4.0 V2.1 / V2.4:

* Argon2id (RFC 9106) for every new hash; cost parameters at least one of the
  OWASP Password Storage Cheat Sheet configurations.
* Legacy hashes imported from the previous portal verify and report
  :meth:`Passwords.needs_rehash` so the host re-hashes them at the next login:
  bcrypt (``$2a$``/``$2b$``/``$2y$``), PBKDF2 in Django format
  (``pbkdf2_sha256$iterations$salt$hash``) and in passlib format
  (``$pbkdf2-sha256$rounds$salt$hash``, also ``-sha512`` and sha1 ``$pbkdf2$``).
* Policy: minimum and maximum length, a blocklist of common passwords and of
  context words (username, e-mail, service name), no composition rules.
  Passwords are normalised with Unicode NFKC (800-63B §5.1.1.2) before they are
  measured, checked and hashed; length counts Unicode code points of the
  normalised text. Nothing is ever truncated.

Unknown accounts are verified against a dummy Argon2 hash of the same cost so
that the time taken does not reveal whether the account exists.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import hmac
import logging
import secrets
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import argon2
import bcrypt
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Flask

from connectors.config import ConfigTable

log = logging.getLogger(__name__)

BUILTIN_BLOCKLIST = Path(__file__).resolve().parent / "data" / "common-passwords.txt"

# OWASP Password Storage Cheat Sheet: the weakest acceptable Argon2id settings
# trade memory for passes; all of them cost at least this many KiB x passes.
OWASP_MIN_MEMORY_KIB = 7168
OWASP_MIN_MEMORY_X_TIME = 35840

# Context words shorter than this would flag too many honest passwords
# (a username "al" inside "totally").
MIN_CONTEXT_WORD = 3

# bcrypt only ever looked at the first 72 bytes; a legacy hash is checked the
# way the old system made it, then replaced by an Argon2id hash of the whole password.
BCRYPT_MAX_BYTES = 72

# A corrupt import must not pin a worker for minutes.
MAX_PBKDF2_ITERATIONS = 10_000_000

PBKDF2_DJANGO = {"pbkdf2_sha256": "sha256", "pbkdf2_sha1": "sha1"}
PBKDF2_PASSLIB = {"pbkdf2": "sha1", "pbkdf2-sha256": "sha256", "pbkdf2-sha512": "sha512"}


@dataclass(frozen=True)
class PasswordSettings:
    """The ``[passwords]`` table."""

    min_length: int = 8
    max_length: int = 128
    blocklist_file: Path | None = None
    # RFC 9106 "second recommended option" (argon2-cffi's default): 64 MiB, 3 passes, 4 lanes.
    time_cost: int = 3
    memory_cost: int = 65536
    parallelism: int = 4

    @classmethod
    def from_table(cls, t: ConfigTable) -> PasswordSettings:
        """Read and finish the ``[passwords]`` table; errors go to ``t.errors``."""
        d = cls()
        min_length = t.int("min_length", d.min_length, min=8, max=64)
        max_length = t.int("max_length", d.max_length, min=64, max=4096)
        blocklist_file = t.path_value("blocklist_file", None)
        a = t.table("argon2")
        time_cost = a.int("time_cost", d.time_cost, min=1, max=20)
        memory_cost = a.int("memory_cost", d.memory_cost, min=OWASP_MIN_MEMORY_KIB, max=4 * 1024 * 1024)
        parallelism = a.int("parallelism", d.parallelism, min=1, max=16)
        if (
            isinstance(time_cost, int)
            and isinstance(memory_cost, int)
            and memory_cost >= OWASP_MIN_MEMORY_KIB
            and time_cost * memory_cost < OWASP_MIN_MEMORY_X_TIME
        ):
            a.error(
                "time_cost",
                f"time_cost x memory_cost must be at least {OWASP_MIN_MEMORY_X_TIME} "
                "(OWASP minimum, e.g. memory_cost = 19456 with time_cost = 2)",
            )
        a.finish()
        t.finish()
        return cls(
            min_length=min_length,
            max_length=max_length,
            blocklist_file=blocklist_file,
            time_cost=time_cost,
            memory_cost=memory_cost,
            parallelism=parallelism,
        )


def normalize(password: str) -> str:
    """The form of a password that is measured, checked and hashed (NFKC)."""
    return unicodedata.normalize("NFKC", password)


@functools.cache
def load_blocklist(path: Path) -> frozenset[str]:
    """Lower-cased entries of a blocklist file, one per line; read once per process."""
    with path.open(encoding="utf-8") as f:
        return frozenset(normalize(line.strip()).casefold() for line in f if line.strip())


class Passwords:
    """Hashes, verifies and judges passwords under one :class:`PasswordSettings`."""

    def __init__(self, settings: PasswordSettings) -> None:
        self.settings = settings
        self._hasher = argon2.PasswordHasher(
            time_cost=settings.time_cost,
            memory_cost=settings.memory_cost,
            parallelism=settings.parallelism,
            type=argon2.Type.ID,
        )
        self._dummy: str | None = None

    # -- hashing -----------------------------------------------------------
    def hash(self, password: str) -> str:
        """An Argon2id hash (PHC string) of the NFKC-normalised password."""
        return self._hasher.hash(normalize(password))

    def verify(self, stored: str | None, password: str) -> bool:
        """Whether ``password`` matches ``stored``.

        ``stored`` None (no such account, or no password set) runs a dummy
        Argon2 verification of the same cost and returns False.
        """
        if stored is None:
            self._burn(password)
            return False
        if stored.startswith("$argon2"):
            try:
                return self._hasher.verify(stored, normalize(password))
            except (VerificationError, InvalidHashError):
                return False
        if stored.startswith(("$2a$", "$2b$", "$2y$")):
            return _legacy_matches(password, lambda pw: _bcrypt_matches(stored, pw))
        scheme = stored.split("$", 1)[0]
        if scheme in PBKDF2_DJANGO:
            return _legacy_matches(password, lambda pw: _django_pbkdf2_matches(stored, pw))
        if stored.startswith("$pbkdf2"):
            return _legacy_matches(password, lambda pw: _passlib_pbkdf2_matches(stored, pw))
        log.warning("password verification against an unrecognised hash format")
        self._burn(password)
        return False

    def needs_rehash(self, stored: str) -> bool:
        """True for every legacy format and for Argon2 hashes with other parameters."""
        if not stored.startswith("$argon2id$"):
            return True
        try:
            return self._hasher.check_needs_rehash(stored)
        except (InvalidHashError, ValueError):
            return True

    def _burn(self, password: str) -> None:
        if self._dummy is None:
            self._dummy = self._hasher.hash(secrets.token_urlsafe(16))
        with contextlib.suppress(VerificationError):
            self._hasher.verify(self._dummy, normalize(password))

    # -- policy ------------------------------------------------------------
    def problems(
        self, password: str, *, username: str = "", email: str = "", service_name: str = ""
    ) -> list[str]:
        """Stable codes for what is wrong with a new password; empty when it is acceptable.

        ``too_short``/``too_long`` count Unicode code points after NFKC
        normalisation. ``common``: on the blocklist (case-insensitive).
        ``contains_username``/``contains_email``/``contains_service_name``:
        the password contains that word (case-insensitive, spaces ignored).
        """
        pw = normalize(password)
        found = []
        if len(pw) < self.settings.min_length:
            found.append("too_short")
        if len(pw) > self.settings.max_length:
            found.append("too_long")
        if self.is_common(pw):
            found.append("common")
        folded = _fold(pw)
        local_part = email.rsplit("@", 1)[0] if "@" in email else email
        for code, words in (
            ("contains_username", (username,)),
            ("contains_email", (email, local_part)),
            ("contains_service_name", (service_name,)),
        ):
            if any(_contains(folded, word) for word in words):
                found.append(code)
        return found

    def is_common(self, password: str) -> bool:
        folded = normalize(password).casefold()
        if folded in load_blocklist(BUILTIN_BLOCKLIST):
            return True
        extra = self.settings.blocklist_file
        return extra is not None and folded in load_blocklist(extra)


def _fold(text: str) -> str:
    return "".join(normalize(text).casefold().split())


def _contains(folded_password: str, word: str) -> bool:
    w = _fold(word)
    return len(w) >= MIN_CONTEXT_WORD and w in folded_password


# -- legacy formats ----------------------------------------------------------


def _legacy_matches(password: str, check: Callable[[str], bool]) -> bool:
    # The old system hashed whatever the user typed, un-normalised; accept that
    # form first, then the NFKC form in case it normalised.
    try:
        if check(password):
            return True
        normalized = normalize(password)
        return normalized != password and check(normalized)
    except (ValueError, TypeError, UnicodeError):
        log.warning("password verification against a malformed legacy hash")
        return False


def _bcrypt_matches(stored: str, password: str) -> bool:
    return bcrypt.checkpw(password.encode("utf-8")[:BCRYPT_MAX_BYTES], stored.encode("ascii"))


def _pbkdf2_matches(digest: str, password: str, salt: bytes, iterations: int, expected: bytes) -> bool:
    if not 1 <= iterations <= MAX_PBKDF2_ITERATIONS or not expected:
        return False
    actual = hashlib.pbkdf2_hmac(digest, password.encode("utf-8"), salt, iterations, len(expected))
    return hmac.compare_digest(actual, expected)


def _django_pbkdf2_matches(stored: str, password: str) -> bool:
    scheme, iterations, salt, encoded = stored.split("$")
    expected = base64.b64decode(encoded, validate=True)
    return _pbkdf2_matches(PBKDF2_DJANGO[scheme], password, salt.encode("utf-8"), int(iterations), expected)


def _ab64_decode(text: str) -> bytes:
    # passlib's "adapted base64": "." instead of "+", no padding.
    text = text.replace(".", "+")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _passlib_pbkdf2_matches(stored: str, password: str) -> bool:
    _, scheme, rounds, salt, encoded = stored.split("$")
    if scheme not in PBKDF2_PASSLIB:
        raise ValueError("unknown pbkdf2 variant")
    expected = _ab64_decode(encoded)
    return _pbkdf2_matches(PBKDF2_PASSLIB[scheme], password, _ab64_decode(salt), int(rounds), expected)


def init_app(app: Flask) -> None:
    app.extensions["idp.passwords"] = Passwords(app.extensions["idp.settings"].passwords)
