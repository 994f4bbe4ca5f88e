"""Self-registration (the help page's "Comment m'inscrire ?") and the ``[registration]`` settings.

The flow, one page per step, its state in the server-side browser session:

1. identify: card number + date of birth matched to a customer record
   (``mode = "customer"``), or name, date of birth and mobile number
   (``mode = "open"``). The answer is the same whether or not a record
   matched (no enumeration, OWASP ASVS V2.2 / NIST SP 800-63B §5.2.2);
2. an SMS code to the customer's mobile *on file* (the typed one in open mode);
3. username and password (the policy is shown live by ``static/js/password_policy.js``
   calling :func:`password_policy`; paste allowed, ``autocomplete="new-password"``);
4. e-mail twice and the versioned terms;
5. a confirmation link by e-mail (random, stored hashed, ``link_ttl``); following
   it activates the account.

"I never got the link": starting again always works. A customer has at most
one pending registration (a new one replaces the old, whose link stops
working) and at most one account; confirming consumes the pending row
atomically, so a link can never make a second account. Forms carry only
their own fields (mass assignment): verified flags, the customer link and
the terms version are set here, never from the request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
import time
from dataclasses import dataclass, field

from flask import Blueprint, Flask, current_app, jsonify, redirect, render_template, request, session, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from sqlalchemy import BigInteger, Integer, String, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column
from wtforms import BooleanField, DateField, EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Length

from connectors.base import ConfigTable

from .storage import Account, db

log = logging.getLogger(__name__)
bp = Blueprint("registration", __name__, url_prefix="/register")

MODES = ("customer", "open")


# ---------------------------------------------------------------------------
# Settings: the [registration] table (with [registration.letter] and [registration.recovery])
# ---------------------------------------------------------------------------


def _messages(t: ConfigTable, name: str) -> dict[str, str]:
    table = t.table(name)
    out = {}
    for lang in list(table.data):
        value = table.str(lang)
        if value is not None:
            out[lang] = value
    table.finish()
    return out


@dataclass(frozen=True)
class LetterSettings:
    """``[registration.letter]``: first registration with a contract number and a code sent by post."""

    enabled: bool = False
    disabled_message: dict[str, str] = field(default_factory=dict)
    code_ttl_days: int = 60
    max_attempts: int = 5
    lockout: int = 3600  # seconds a contract number stays blocked after max_attempts failures

    @classmethod
    def from_table(cls, t: ConfigTable) -> LetterSettings:
        out = cls(
            enabled=t.bool("enabled", False),
            disabled_message=_messages(t, "disabled_message"),
            code_ttl_days=t.int("code_ttl_days", 60, min=1, max=365),
            max_attempts=t.int("max_attempts", 5, min=1, max=100),
            lockout=t.int("lockout", 3600, min=60, max=30 * 86400),
        )
        t.finish()
        return out


@dataclass(frozen=True)
class RecoverySettings:
    """``[registration.recovery]``: forgotten password and forgotten username."""

    reset_link_ttl: int = 1800
    # Every forgot-password answer takes at least this long, so that sending the
    # e-mail (only done for existing accounts) does not show in the timing.
    response_time_floor_ms: int = 600

    @classmethod
    def from_table(cls, t: ConfigTable) -> RecoverySettings:
        out = cls(
            reset_link_ttl=t.int("reset_link_ttl", 1800, min=300, max=3600),
            response_time_floor_ms=t.int("response_time_floor_ms", 600, min=0, max=5000),
        )
        t.finish()
        return out


@dataclass(frozen=True)
class RegistrationSettings:
    """``[registration]``."""

    enabled: bool = True
    mode: str = "customer"
    terms_version: str = "2026-01"
    terms_url: str | None = None
    disabled_message: dict[str, str] = field(default_factory=dict)
    link_ttl: int = 86400
    letter: LetterSettings = field(default_factory=LetterSettings)
    recovery: RecoverySettings = field(default_factory=RecoverySettings)

    @classmethod
    def from_table(cls, t: ConfigTable) -> RegistrationSettings:
        terms_url = t.str("terms_url", None)
        if terms_url and not terms_url.startswith(("https://", "http://", "/")):
            t.error("terms_url", "must be an http(s) URL or a path on this server")
        terms_version = t.str("terms_version", "2026-01")
        if terms_version is not None and not (1 <= len(terms_version) <= 32):
            t.error("terms_version", "must be 1 to 32 characters")
        out = cls(
            enabled=t.bool("enabled", True),
            mode=t.str("mode", "customer", choices=MODES),
            terms_version=terms_version or "2026-01",
            terms_url=terms_url,
            disabled_message=_messages(t, "disabled_message"),
            link_ttl=t.int("link_ttl", 86400, min=300, max=7 * 86400),
            letter=LetterSettings.from_table(t.table("letter")),
            recovery=RecoverySettings.from_table(t.table("recovery")),
        )
        t.finish()
        return out


def registration_settings() -> RegistrationSettings:
    return current_app.extensions["idp.settings"].sections.get("registration") or RegistrationSettings()
