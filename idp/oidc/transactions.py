"""Login transactions and the authorization responses (OpenID Connect Core 3.1.2.5, 3.1.2.6).

A request that needs a login (or consent) is parked in the server-side browser
session as a *login transaction*, at most :data:`MAX_TRANSACTIONS` at a time and
for ``login_transaction_ttl`` seconds; the login pages come back to
``authorize.resume`` with its id. Every response to the client carries ``iss``
(RFC 9207), by query or ``form_post``.
"""

from __future__ import annotations

import secrets
import time
from urllib.parse import urlencode

from flask import current_app, g, redirect, render_template, session, url_for
from flask_babel import gettext as _

from idp.core.security import allow_form_action

MAX_TRANSACTIONS = 5


# ---------------------------------------------------------------------------
# Responses
# ---------------------------------------------------------------------------


def respond(redirect_uri: str, params: list[tuple[str, str]], response_mode: str):
    """Deliver the authorization response (query or form_post), always with ``iss``."""
    params = [p for p in params if p[1] is not None] + [
        ("iss", current_app.extensions["idp.settings"].issuer)
    ]
    if response_mode == "form_post":
        allow_form_action(redirect_uri)
        return render_template("authorize/form_post.html", action=redirect_uri, params=params)
    sep = "&" if "?" in redirect_uri else "?"
    return redirect(redirect_uri + sep + urlencode(params), 302)


def error_page(message: str, status: int = 400):
    return render_template("error.html", title=_("This link cannot be used"), message=message), status


# ---------------------------------------------------------------------------
# Login transactions
# ---------------------------------------------------------------------------


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


def new_transaction(params: dict[str, str], client, required_level: str) -> dict:
    settings = current_app.extensions["idp.settings"]
    methods = [m for m in client.settings.methods if m in settings.methods]
    return {
        "id": secrets.token_urlsafe(12),
        "created": int(time.time()),
        "params": params,
        "client_id": client.client_id,
        "required_level": required_level,
        "methods": methods,
        "login_hint": params.get("login_hint"),
        "ui_locale": g.get("ui_locale"),
    }
