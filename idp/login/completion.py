"""The end of every login: required actions first, then the SSO session and the way back.

While the account has required actions (:mod:`idp.login.actions`) the login is held in
the session, bound to the transaction, and no SSO session exists, so the authorization
cannot go on; the last action calls :func:`finish_login`.
"""

from __future__ import annotations

import secrets
import time

from flask import current_app, redirect, session, url_for

from idp.accounts import passkeys
from idp.core import audit
from idp.core.branding import branding
from idp.core.sessions import start_sso
from idp.core.storage import Account
from idp.login.transaction import NO_TX, drop_pending, get_transaction, login_completed, save_pending


def terms_version() -> str | None:
    registration = current_app.extensions["idp.settings"].sections.get("registration")
    return getattr(registration, "terms_version", None) or None


def terms_url() -> str | None:
    """``[registration] terms_url``, else the footer's ``[branding] terms_url``."""
    registration = current_app.extensions["idp.settings"].sections.get("registration")
    return getattr(registration, "terms_url", None) or branding().terms_url


def required(account: Account) -> list[str]:
    """The actions this account must complete before a login may go on, in order."""
    todo = []
    if account.must_change_password and account.password_hash:
        todo.append("password")
    if not (account.email and account.email_verified):
        todo.append("email")
    if not (account.phone and account.phone_verified):
        todo.append("phone")
    version = terms_version()
    if version and account.terms_version != version:
        todo.append("terms")
    return todo


def complete_login(
    account: Account, *, level: str, methods: list[str], amr: list[str], tx_id: str, method: str
):
    """The one way every login method ends: required actions, a new SSO session, an audit record, onward.

    While the account has required actions (:mod:`idp.actions`) the login is
    held in the session, bound to the transaction, and no SSO session exists,
    so the authorization cannot go on; the last action calls :func:`finish_login`.
    """
    session.regenerate()
    todo = required(account)
    if todo:
        save_pending(
            tx_id,
            {
                "account": account.id,
                "at": int(time.time()),
                "stage": "actions",
                "binding": secrets.token_urlsafe(16),
                "final": {"level": level, "methods": list(methods), "amr": list(amr), "method": method},
            },
        )
        audit.record("required_actions", account_id=account.id, method=method, actions=todo)
        return redirect(url_for("actions.next_action", tx_id=tx_id), 303)
    return finish_login(account, level=level, methods=methods, amr=amr, tx_id=tx_id, method=method)


def finish_login(
    account: Account, *, level: str, methods: list[str], amr: list[str], tx_id: str, method: str
):
    tx = get_transaction(tx_id) if tx_id != NO_TX else None
    drop_pending(tx_id)
    start_sso(account, level=level, methods=methods, amr=amr)
    audit.record(
        "login", account_id=account.id, client_id=tx["client_id"] if tx else None, method=method, level=level
    )
    if tx:
        target = login_completed(tx_id)
    else:
        target = session.pop("after_login", None)
        if not (isinstance(target, str) and target.startswith("/") and not target.startswith("//")):
            target = url_for("account.home")
    capable = session.pop("passkey_capable", False)
    if method == "password" and {"sms", "otp"} & set(amr) and capable and _offer_passkey(account):
        # "Next time, sign in with your fingerprint or face": once, then on to the same place.
        session["passkey_offer_next"] = target
        target = url_for("passkey.offer")
    return redirect(target, 303)


def _offer_passkey(account: Account) -> bool:
    return "passkey.offer" in current_app.view_functions and passkeys.should_offer(account)
