"""Accounts: creation, lookup and the rules for usernames and contacts.

Usernames follow one rule, :mod:`idp.accounts.usernames`: they compare in
their PRECIS form (stored in ``username_norm``, unique), invisible and
direction-changing characters are refused, and a new name that looks like an
existing one (same ``username_skeleton``) is refused. Registration, renaming,
login, forgot-password and the account import all go through
:func:`normalize_username`, :func:`check_new_username` and :func:`set_username`.
Login methods that prove an identity (itsme, eID) link to accounts here as
well (see :func:`link_identity`).
"""

from __future__ import annotations

import secrets

from email_validator import EmailNotValidError, validate_email
from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from idp.accounts.usernames import normalize_username, skeleton, username_problem
from idp.core import audit
from idp.core.phones import PhoneError, normalize_phone
from idp.core.sessions import end_sso
from idp.core.storage import Account, SsoSession, db

# What the pages say for each reason a username is refused (check_new_username's codes).
USERNAME_MESSAGES = {
    "length": _l("A username has 3 to 64 characters and no spaces."),
    "spaces": _l("A username has 3 to 64 characters and no spaces."),
    "invisible": _l("A username cannot contain invisible, control or direction-changing characters."),
    "characters": _l("This username contains characters we do not accept, such as symbols or emoji."),
    "taken": _l("This username is already taken. Please choose another one."),
    "lookalike": _l(
        "This username looks too much like one that is already taken. Please choose another one."
    ),
}

# The same reasons for the command line and the import (no request, no page language).
USERNAME_REASONS = {
    "length": "3 to 64 characters",
    "spaces": "no spaces",
    "invisible": "no invisible, control or direction-changing characters",
    "characters": "characters such as symbols or emoji are not accepted",
    "taken": "that username is taken",
    "lookalike": "it looks too much like an existing username",
}


class AccountError(Exception):
    pass


def check_new_username(username: str, account_id: int | None = None) -> str | None:
    """Why ``username`` cannot become (account ``account_id``'s) username, as a code of
    :data:`USERNAME_MESSAGES`; None when it can."""
    problem = username_problem(username)
    if problem is not None:
        return problem
    norm = normalize_username(username)
    other = db.session.scalar(select(Account.id).where(Account.username_norm == norm))
    if other is not None and other != account_id:
        return "taken"
    alike = db.session.scalar(
        select(Account.id).where(
            Account.username_skeleton == skeleton(username), Account.id != (account_id or -1)
        )
    )
    return "lookalike" if alike is not None else None


def set_username(account: Account, username: str) -> None:
    """Give ``account`` this (already checked) username, with its comparison form and skeleton."""
    username = username.strip()
    account.username = username
    account.username_norm = normalize_username(username)
    account.username_skeleton = skeleton(username)


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
    problem = check_new_username(username)
    if problem is not None:
        raise AccountError(f"username refused: {USERNAME_REASONS[problem]}")
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
        email=email,
        email_verified=bool(email),
        phone=phone,
        phone_verified=bool(phone),
        password_hash=passwords.hash(password),
        given_name=given_name,
        family_name=family_name,
        status="active",
    )
    set_username(account, username)
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
