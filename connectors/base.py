"""The connector contract shared by every login method.

A connector is opened from its configuration table, turns one browser
interaction into an :class:`Identity` and raises :class:`ConnectorError`
otherwise. It knows nothing of the provider's storage, sessions or tokens:
the host passes in what it needs (an HTTP session, a clock, key material).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

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


# ---------------------------------------------------------------------------
# The contract: three small shapes, after Dex's CallbackConnector / PasswordConnector
# ---------------------------------------------------------------------------


@runtime_checkable
class RedirectConnector(Protocol):
    """A method that sends the browser to an upstream and takes it back (itsme, mock).

    :meth:`begin` returns the URL to send the browser to and a JSON-serialisable
    transaction holding at least ``state`` and ``created_at``; the host keeps that
    transaction server-side, bound to the browser, and hands it back to
    :meth:`complete` with the query parameters of the callback.
    """

    method: str

    def begin(self, *, level: str, locale: str, login_hint: str | None = None) -> tuple[str, dict]: ...

    def complete(self, params: Mapping[str, str], transaction: dict | None) -> Identity: ...


@runtime_checkable
class ChallengeConnector(Protocol):
    """A method that proves possession of a key by signing the provider's challenge (eID).

    The host keeps the challenge bound to the browser's login transaction, single use;
    :meth:`verify` checks the signed response against it and the page's origin.
    """

    def verify(self, token: Mapping[str, Any], *, expected_challenge: str, origin: str) -> Identity: ...


@runtime_checkable
class PasswordConnector(Protocol):
    """A method that checks a username and a password (the local accounts).

    :meth:`login` returns the :class:`Identity` when the password is right and None
    otherwise, doing the same work either way (no timing oracle).
    """

    method: str

    def login(self, username: str, password: str) -> Identity | None: ...
