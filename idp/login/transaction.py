"""The login transaction: a parked authorization request waiting for a login, and the
state between the steps of one login, both in the server-side browser session.

An authorization request that needs a login is parked as a *transaction* (at most a few
per browser, each expiring after ``session.login_transaction_ttl``); the login pages
find it by its id in their URL and hand it back to the authorization endpoint when done
(:func:`login_completed`). ``NO_TX`` names a login that did not come from a relying party
(the account pages). The *pending* login is what one method's first step proved (the
account, the level) while a second factor or a required action is still to come.
"""

from __future__ import annotations

import time

from flask import current_app, render_template, request, session, url_for
from flask_babel import gettext as _

from idp.core.storage import Account, db
from idp.login import lockout, otp

MAX_TRANSACTIONS = 5


def get_transaction(tx_id: str) -> dict | None:
    txs = session.get("tx") or {}
    tx = txs.get(tx_id)
    settings = current_app.extensions["idp.settings"]
    if tx is None or time.time() - tx["created"] > settings.login_transaction_ttl:
        return None
    return tx


def save_transaction(tx: dict) -> None:
    txs = dict(session.get("tx") or {})
    txs[tx["id"]] = tx
    if len(txs) > MAX_TRANSACTIONS:
        for old in sorted(txs.values(), key=lambda t: t["created"])[: len(txs) - MAX_TRANSACTIONS]:
            txs.pop(old["id"], None)
    session["tx"] = txs


def drop_transaction(tx_id: str) -> None:
    txs = dict(session.get("tx") or {})
    txs.pop(tx_id, None)
    session["tx"] = txs


def login_completed(tx_id: str) -> str:
    """Called by the login pages once the person is logged in; where to go next."""
    tx = get_transaction(tx_id)
    if tx is None:
        return url_for("account.home")
    tx["login_at"] = int(time.time())
    save_transaction(tx)
    return url_for("authorize.resume", tx_id=tx_id)


NO_TX = "-"  # a login that did not come from a relying party (account pages)


def load_tx(tx_id: str) -> tuple[dict | None, bool]:
    if tx_id == NO_TX:
        return None, True
    tx = get_transaction(tx_id)
    return tx, tx is not None


def remember_tx(session_key: str) -> None:
    """Keep the live login transaction named by ``?tx=`` under ``session_key``, so that a side
    flow (registration, recovery, activation) can send the person back to it at the end."""
    tx_id = request.args.get("tx")
    if tx_id and get_transaction(tx_id) is not None:
        session[session_key] = tx_id


def remembered_tx(session_key: str) -> str:
    """The transaction kept by :func:`remember_tx` while it is live; :data:`NO_TX` otherwise."""
    tx_id = session.get(session_key)
    if not tx_id or get_transaction(tx_id) is None:
        return NO_TX
    return tx_id


def expired_page():
    return render_template(
        "error.html",
        title=_("This sign-in has expired"),
        message=_("This sign-in took too long or was already used. Please start again from the application."),
    ), 400


def get_pending(tx_id: str) -> dict | None:
    pending = (session.get("pending") or {}).get(tx_id)
    ttl = current_app.extensions["idp.settings"].login_transaction_ttl
    if pending is None or time.time() - pending["at"] > ttl:
        return None
    return pending


def save_pending(tx_id: str, pending: dict) -> None:
    all_pending = dict(session.get("pending") or {})
    all_pending[tx_id] = pending
    for key in [k for k, v in all_pending.items() if k != tx_id and time.time() - v["at"] > 3600]:
        all_pending.pop(key)
    session["pending"] = all_pending


def drop_pending(tx_id: str) -> None:
    all_pending = dict(session.get("pending") or {})
    if all_pending.pop(tx_id, None) is not None:
        session["pending"] = all_pending


def pending_account(pending: dict | None) -> Account | None:
    if pending is None:
        return None
    account = db.session.get(Account, pending["account"])
    return account if account is not None and account.status == "active" else None


def throttled(bucket: str) -> bool:
    """Per-IP fixed window in the shared store (Redis in production): too many POSTs this minute?"""
    limit = otp.settings().login_per_ip_per_minute
    minute = otp.now() // 60
    key = lockout.key(f"rl:{bucket}:{minute}", typed=request.remote_addr or "-")
    count = current_app.extensions["idp.kv"].incr(key, 120)
    return count > limit


def throttled_page(template: str, status: int = 429, **context):
    message = _("Too many attempts from your network. Please wait a minute and try again.")
    return render_template(template, error=message, **context), status
