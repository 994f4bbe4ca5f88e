"""The connector contract shared by every login method.

A connector is opened from its configuration table, turns one browser
interaction into an :class:`Identity` and raises :class:`ConnectorError`
otherwise. It knows nothing of the provider's storage, sessions or tokens:
the host passes in what it needs (an HTTP session, a clock, key material).

This module also holds :class:`ConfigTable`, the strict reader used for every
TOML table of the provider and of the connectors, so that one validation pass
reports every error with file, key and reason and rejects unknown keys.
"""

from __future__ import annotations

import builtins
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from stdnum.be import nn as belgian_national_number

# Assurance levels, lowest first. Connectors map their upstream's strength to
# one of these names; the provider maps names to the ``acr`` values it issues.
LEVELS = ("low", "substantial", "high")


def level_rank(level: str) -> int:
    """Position of ``level`` in :data:`LEVELS` (unknown levels rank lowest)."""
    try:
        return LEVELS.index(level)
    except ValueError:
        return -1


def valid_national_number(value: str) -> bool:
    """A Belgian national register number as the card and itsme give it: exactly 11 digits
    that pass python-stdnum's check (birth date, mod 97 for births before and after 2000)."""
    return (
        isinstance(value, str)
        and value.isascii()
        and value.isdigit()
        and len(value) == 11
        and (belgian_national_number.is_valid(value))
    )


@dataclass(frozen=True)
class Identity:
    """What a connector proved about the person at the keyboard.

    ``subject`` is stable for (``method``, ``issuer``). ``national_number`` is
    the Belgian national register number when the method proved it; the host
    stores it only as a keyed hash and never logs it. ``claims`` are OIDC
    standard claims (``given_name``, ``family_name``, ``birthdate``, ``email``,
    ``phone_number``, ``address`` ...). ``connector_data`` is opaque to clients.
    """

    method: str
    issuer: str
    subject: str
    level: str
    amr: tuple[str, ...]
    claims: Mapping[str, Any] = field(default_factory=dict)
    national_number: str | None = None
    card_number: str | None = None
    connector_data: Mapping[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:  # never print the national number or claims
        return f"Identity(method={self.method!r}, issuer={self.issuer!r}, level={self.level!r})"


class ConnectorError(Exception):
    """A login attempt failed for a reason the user should be told.

    ``code`` is a stable machine name (``cancelled``, ``upstream_unavailable``,
    ``invalid_state``, ``invalid_token`` ...) that the host turns into a page in
    the user's language and an audit record. ``detail`` is for the log only
    and must not contain secrets or national register numbers.
    """

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


class Clock(Protocol):
    def __call__(self) -> float: ...


system_clock: Clock = time.time


# ---------------------------------------------------------------------------
# Strict configuration reading
# ---------------------------------------------------------------------------


@dataclass
class ConfigError:
    file: str
    key: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key}: {self.reason}"


class ConfigErrors(Exception):
    """Every configuration error found in one validation pass."""

    def __init__(self, errors: list[ConfigError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors


_MISSING = object()


class ConfigTable:
    """A TOML table read strictly: typed getters, errors collected, unknown keys reported.

    Every getter records a problem in the shared ``errors`` list instead of
    raising, and returns the default so validation can go on. Call
    :meth:`finish` once all keys were read: any key nobody asked for is an
    error. Secrets are read with :meth:`secret` and must be written
    ``env:NAME`` or ``file:/path``; a literal value is refused.
    """

    def __init__(
        self,
        data: Mapping[str, Any],
        file: str,
        path: str = "",
        errors: list[ConfigError] | None = None,
        base_dir: Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.data = dict(data)
        self.file = file
        self.path = path
        self.errors = errors if errors is not None else []
        self.base_dir = base_dir or Path(file).resolve().parent
        self.environ = os.environ if environ is None else environ
        self._seen: set[str] = set()

    # -- helpers -----------------------------------------------------------
    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def error(self, name: str, reason: str) -> None:
        self.errors.append(ConfigError(self.file, self.key(name), reason))

    def has(self, name: str) -> bool:
        return name in self.data

    def _get(self, name: str, default: Any, kinds: tuple[type, ...], what: str) -> Any:
        self._seen.add(name)
        if name not in self.data:
            if default is _MISSING:
                self.error(name, "is required")
                return None
            return default
        value = self.data[name]
        if isinstance(value, bool) and bool not in kinds:
            self.error(name, f"must be {what}, not a boolean")
            return None if default is _MISSING else default
        if not isinstance(value, kinds):
            self.error(name, f"must be {what}")
            return None if default is _MISSING else default
        return value

    # -- typed getters -----------------------------------------------------
    def str(self, name: str, default: Any = _MISSING, choices: tuple[str, ...] | None = None) -> Any:
        value = self._get(name, default, (str,), "a string")
        if choices and value is not None and value not in choices and name in self.data:
            self.error(name, f"must be one of {', '.join(choices)}")
            return None if default is _MISSING else default
        return value

    def int(self, name: str, default: Any = _MISSING, min: int | None = None, max: int | None = None) -> Any:
        value = self._get(name, default, (int,), "an integer")
        if isinstance(value, int) and name in self.data:
            if min is not None and value < min:
                self.error(name, f"must be at least {min}")
            if max is not None and value > max:
                self.error(name, f"must be at most {max}")
        return value

    def float(
        self,
        name: str,
        default: Any = _MISSING,
        min: builtins.float | None = None,
        max: builtins.float | None = None,
    ) -> Any:
        """A number (integer or decimal) as a float; out of bounds is an error and gives the default."""
        value = self._get(name, default, (builtins.int, builtins.float), "a number")
        if not isinstance(value, builtins.int | builtins.float):
            return value
        if name in self.data:
            low = min is not None and value < min
            high = max is not None and value > max
            if (low or high) and min is not None and max is not None:
                self.error(name, f"must be between {min} and {max}")
            elif low:
                self.error(name, f"must be at least {min}")
            elif high:
                self.error(name, f"must be at most {max}")
            if low or high:
                return None if default is _MISSING else default
        return builtins.float(value)

    def bool(self, name: str, default: Any = _MISSING) -> Any:
        return self._get(name, default, (bool,), "true or false")

    def list(self, name: str, default: Any = _MISSING, item: type = builtins.str) -> Any:
        value = self._get(name, default, (list,), "a list")
        if isinstance(value, list) and name in self.data:
            for i, v in enumerate(value):
                if not isinstance(v, item) or (isinstance(v, bool) and item is not bool):
                    self.error(f"{name}[{i}]", f"must be a {item.__name__}")
                    return [] if default is _MISSING else default
        return value

    def table(self, name: str, required: bool = False) -> ConfigTable:
        self._seen.add(name)
        value = self.data.get(name, {})
        if name not in self.data and required:
            self.error(name, "is required")
        if not isinstance(value, dict):
            self.error(name, "must be a table")
            value = {}
        return ConfigTable(value, self.file, self.key(name), self.errors, self.base_dir, self.environ)

    def tables(self, name: str) -> list[ConfigTable]:
        """An array of tables (``[[name]]``)."""
        self._seen.add(name)
        value = self.data.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.error(name, "must be an array of tables")
            return []
        return [
            ConfigTable(v, self.file, f"{self.key(name)}[{i}]", self.errors, self.base_dir, self.environ)
            for i, v in enumerate(value)
        ]

    def path_value(self, name: str, default: Any = _MISSING, must_exist: bool = True) -> Path | None:
        """A file path, relative paths taken from the config file's folder."""
        value = self.str(name, default)
        if value is None:
            return None
        p = Path(value)
        if not p.is_absolute():
            p = self.base_dir / p
        if must_exist and name in self.data and not p.exists():
            self.error(name, f"file not found: {p}")
        return p

    def secret(self, name: str, default: Any = _MISSING) -> Any:
        """A secret written as ``env:NAME`` or ``file:/path``; returns the value as text."""
        raw = self._get(name, default, (str,), "a string env:NAME or file:/path")
        if raw is None or name not in self.data:
            return raw
        return resolve_secret(raw, lambda reason: self.error(name, reason), self.base_dir, self.environ)

    def finish(self) -> None:
        for name in self.data:
            if name not in self._seen:
                self.error(name, "unknown key")


def resolve_secret(
    raw: str,
    report: Callable[[str], None],
    base_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> str | None:
    """Resolve ``env:NAME`` / ``file:/path``; report and return None otherwise."""
    environ = os.environ if environ is None else environ
    if raw.startswith("env:"):
        name = raw[4:]
        if not name:
            report("env: needs a variable name")
            return None
        if name not in environ or environ[name] == "":
            report(f"environment variable {name} is not set")
            return None
        return environ[name]
    if raw.startswith("file:"):
        p = Path(raw[5:])
        if not p.is_absolute() and base_dir is not None:
            p = base_dir / p
        try:
            return p.read_text(encoding="utf-8").strip()
        except OSError as exc:
            report(f"cannot read secret file {p}: {exc.strerror or exc}")
            return None
    report("secrets must be written env:NAME or file:/path, never as a literal value")
    return None
