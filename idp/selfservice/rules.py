"""What registration, recovery, activation and the account pages share: the
``[registration]`` settings (with ``[registration.letter]`` and
``[registration.recovery]``), and the username and password rules (NIST SP 800-63B
§5.1.1.2: length, a blocklist, no composition rules), with the pending registrations
whose usernames are reserved until their e-mail link expires.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import BigInteger, Integer, String, select
from sqlalchemy.orm import Mapped, mapped_column

from connectors.config import ConfigTable
from idp.accounts.users import USERNAME_MESSAGES, check_new_username, normalize_username
from idp.core.hashing import digest
from idp.core.storage import db
from idp.selfservice import challenge

MODES = ("customer", "open")


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
            disabled_message=t.messages("disabled_message"),
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
            disabled_message=t.messages("disabled_message"),
            link_ttl=t.int("link_ttl", 86400, min=300, max=7 * 86400),
            letter=LetterSettings.from_table(t.table("letter")),
            recovery=RecoverySettings.from_table(t.table("recovery")),
        )
        t.finish()
        return out


def registration_settings() -> RegistrationSettings:
    return current_app.extensions["idp.settings"].sections.get("registration") or RegistrationSettings()


token_hash = digest  # a confirmation link is stored as its digest


PROBLEM_MESSAGES = {
    "too_short": _l("Use at least %(min)s characters."),
    "too_long": _l("Use at most %(max)s characters."),
    "common": _l("This password is too common: attackers try it first. Choose another one."),
    "contains_username": _l("The password must not contain your username."),
    "contains_email": _l("The password must not contain your e-mail address."),
    "contains_service_name": _l("The password must not contain the name of the service."),
}


def password_problem_messages(problems: list[str]) -> list[str]:
    """The reasons a password is refused, in the person's language (NIST SP 800-63B §5.1.1.2)."""
    policy = current_app.extensions["idp.passwords"].settings
    out = []
    for code in problems:
        message = PROBLEM_MESSAGES.get(code)
        out.append(str(message) % {"min": policy.min_length, "max": policy.max_length} if message else code)
    return out


def check_password(password: str, *, username: str = "", email: str = "") -> list[str]:
    settings = current_app.extensions["idp.settings"]
    problems = current_app.extensions["idp.passwords"].problems(
        password or "", username=username or "", email=email or "", service_name=settings.service_name
    )
    return password_problem_messages(problems)


class PendingRegistration(db.Model):
    """A registration waiting for its e-mail link. One per customer (or per mobile
    number in open mode): a new one replaces the old, whose link stops working."""

    __tablename__ = "pending_registrations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(96), unique=True)  # "customer:<id>" | "phone:<e164>"
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[int | None] = mapped_column(Integer)
    username: Mapped[str] = mapped_column(String(128))
    username_norm: Mapped[str] = mapped_column(String(128), index=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    email: Mapped[str] = mapped_column(String(320))
    phone: Mapped[str] = mapped_column(String(32))
    given_name: Mapped[str | None] = mapped_column(String(200))
    family_name: Mapped[str | None] = mapped_column(String(200))
    birthdate: Mapped[str | None] = mapped_column(String(10))
    locale: Mapped[str | None] = mapped_column(String(8))
    terms_version: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)


def username_problem(username: str, owner: str | None = None) -> str | None:
    """Why this username cannot be chosen (the accounts' rule, or a live pending registration's name)."""
    problem = check_new_username(username)
    if problem is not None:
        return str(USERNAME_MESSAGES[problem])
    other = db.session.scalar(
        select(PendingRegistration.id).where(
            PendingRegistration.username_norm == normalize_username(username),
            PendingRegistration.expires_at > challenge.now(),
            PendingRegistration.owner != (owner or ""),
        )
    )
    if other is not None:
        return str(USERNAME_MESSAGES["taken"])
    return None
