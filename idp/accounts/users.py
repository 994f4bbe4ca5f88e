"""Accounts: creation, lookup and the rules for usernames and contacts.

Usernames are unique without regard to case (stored folded in
``username_norm``). Login methods that prove an identity (itsme, eID) link to
accounts here as well (see :func:`link_identity`).
"""

from __future__ import annotations

import secrets

from email_validator import EmailNotValidError, validate_email
from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from idp.core import audit
from idp.core.phones import PhoneError, normalize_phone
from idp.core.sessions import end_sso
from idp.core.storage import Account, SsoSession, db


class AccountError(Exception):
    pass


def normalize_username(username: str) -> str:
    return (username or "").strip().casefold()


def find_by_username(username: str) -> Account | None:
    return db.session.scalar(select(Account).where(Account.username_norm == normalize_username(username)))


def create_local_account(
    username: str,
    *,
    password: str | None,
    email: str | None = None,
    phone: str | None = None,
    given_name: str | None = None,
    family_name: str | None = None,
) -> Account:

    username = (username or "").strip()
    if not (3 <= len(username) <= 64) or any(c.isspace() for c in username):
        raise AccountError("username must be 3 to 64 characters without spaces")
    passwords = current_app.extensions["idp.passwords"]
    settings = current_app.extensions["idp.settings"]
    if password is None or password == "":
        raise AccountError("a password is required (--password-stdin)")
    problems = passwords.problems(
        password, username=username, email=email or "", service_name=settings.service_name
    )
    if problems:
        raise AccountError("password refused: " + ", ".join(problems))
    if email:
        try:
            email = validate_email(email, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise AccountError(f"e-mail address: {exc}") from None
    if phone:
        try:
            phone = normalize_phone(phone)
        except PhoneError as exc:
            raise AccountError(f"mobile number: {exc.code}") from None
    account = Account(
        sub=secrets.token_hex(16),
        username=username,
        username_norm=normalize_username(username),
        email=email,
        email_verified=bool(email),
        phone=phone,
        phone_verified=bool(phone),
        password_hash=passwords.hash(password),
        given_name=given_name,
        family_name=family_name,
        status="active",
    )
    db.session.add(account)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise AccountError("that username is taken") from None
    return account


def disable_account(account: Account, actor: str = "operator") -> None:

    account.status = "disabled"
    db.session.commit()
    audit.record("account_disabled", account_id=account.id, actor=actor)
    for row in db.session.scalars(
        select(SsoSession).where(SsoSession.account_id == account.id, SsoSession.ended_at.is_(None))
    ):
        end_sso(row, reason="account_disabled")


def enable_account(account: Account, actor: str = "operator") -> bool:
    """Let a disabled account log in again; False when it was not disabled."""
    if account.status != "disabled":
        return False
    account.status = "active"
    db.session.commit()
    audit.record("account_enabled", account_id=account.id, actor=actor)
    return True
