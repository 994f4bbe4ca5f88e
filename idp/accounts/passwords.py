"""Password hashing, verification and the password policy.

Implements NIST SP 800-63B §3.1.1.2 (memorized secret verifiers) and OWASP
ASVS 4.0 V2.1 / V2.4:

* Argon2id (RFC 9106) for every new hash; cost parameters at least one of the
  OWASP Password Storage Cheat Sheet configurations.
* Legacy hashes imported from the previous system (bcrypt, PBKDF2, Argon2,
  scrypt, SHA-crypt and, only with ``allow_weak_legacy_hashes``, salted SHA;
  see :mod:`idp.accounts.legacy_hashes`) verify and report
  :meth:`Passwords.needs_rehash` so the host re-hashes them at the next login.
* Policy: minimum and maximum length, a blocklist of common passwords and of
  context words (username, e-mail, service name), no composition rules.
  Passwords are normalised with Unicode NFKC (800-63B §5.1.1.2) before they are
  measured, checked and hashed; length counts Unicode code points of the
  normalised text. Nothing is ever truncated.

Unknown accounts are verified against a dummy Argon2 hash of the same cost so
that the time taken does not reveal whether the account exists.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import secrets
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import argon2
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Flask

from connectors.config import ConfigTable
from idp.accounts import legacy_hashes

log = logging.getLogger(__name__)

BUILTIN_BLOCKLIST = Path(__file__).resolve().parent / "data" / "common-passwords.txt"

# OWASP Password Storage Cheat Sheet: the weakest acceptable Argon2id settings
# trade memory for passes; all of them cost at least this many KiB x passes.
OWASP_MIN_MEMORY_KIB = 7168
OWASP_MIN_MEMORY_X_TIME = 35840

# Context words shorter than this would flag too many honest passwords
# (a username "al" inside "totally").
MIN_CONTEXT_WORD = 3


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
    # Fast salted SHA hashes ({SSHA}...) from an old system: refused unless the operator opts in.
    allow_weak_legacy_hashes: bool = False

    @classmethod
    def from_table(cls, t: ConfigTable) -> PasswordSettings:
        """Read and finish the ``[passwords]`` table; errors go to ``t.errors``."""
        d = cls()
        min_length = t.int("min_length", d.min_length, min=8, max=64)
        max_length = t.int("max_length", d.max_length, min=64, max=4096)
        blocklist_file = t.path_value("blocklist_file", None)
        allow_weak = t.bool("allow_weak_legacy_hashes", d.allow_weak_legacy_hashes)
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
            allow_weak_legacy_hashes=allow_weak,
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
        try:
            return _legacy_matches(
                password,
                lambda pw: legacy_hashes.matches(
                    stored, pw, allow_weak=self.settings.allow_weak_legacy_hashes
                ),
            )
        except legacy_hashes.HashFormatError:
            pass
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

    def current_prefix(self) -> str:
        """How every hash that needs no re-hash begins (Argon2id with this provider's parameters)."""
        s = self.settings
        version = argon2.low_level.ARGON2_VERSION
        return f"$argon2id$v={version}$m={s.memory_cost},t={s.time_cost},p={s.parallelism}$"

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


def init_app(app: Flask) -> None:
    app.extensions["idp.passwords"] = Passwords(app.extensions["idp.settings"].passwords)
