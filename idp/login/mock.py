"""The development login (:mod:`connectors.mock`): the configured person, at once, through
the same redirect-and-callback steps as itsme, so the provider's side of a federated login
(state bound to the browser, used once; account linking; required actions) runs unchanged.
Only there when ``[connectors.mock]`` is configured, which production refuses.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Flask, current_app, redirect, render_template, request, session, url_for
from flask_babel import get_locale
from flask_babel import gettext as _

from connectors.base import ConnectorError, level_rank
from connectors.mock import MockConnector
from idp.accounts.federation import FederationError, resolve_identity
from idp.core import audit
from idp.core.storage import db
from idp.login.chooser import method_choices
from idp.login.completion import complete_login
from idp.login.transaction import expired_page, load_tx

log = logging.getLogger(__name__)
bp = Blueprint("mock", __name__)

METHOD = "mock"
SESSION_KEY = "mock_pending"  # state -> {"tx_id", "transaction"} in the browser session


def _connector() -> MockConnector | None:
    return current_app.extensions.get("idp.mock")


def _allowed(tx: dict | None) -> bool:
    return _connector() is not None and any(c["name"] == METHOD and c["enabled"] for c in method_choices(tx))


def _failure(code: str, tx: dict | None):
    db.session.rollback()
    audit.record("login", "failure", client_id=tx["client_id"] if tx else None, method=METHOD, reason=code)
    return render_template(
        "error.html",
        title=_("The development login failed"),
        message=_("Please choose another way to log in."),
    ), 400


@bp.route("/login/<tx_id>/mock")
def start(tx_id: str):
    tx, ok = load_tx(tx_id)
    if not ok:
        return expired_page()
    if not _allowed(tx):
        return redirect(url_for("login.choose", tx_id=tx_id), 303)
    try:
        url, transaction = _connector().begin(
            level=tx["required_level"] if tx else "low", locale=str(get_locale())
        )
    except ConnectorError as exc:
        return _failure(exc.code, tx)
    session[SESSION_KEY] = {transaction["state"]: {"tx_id": tx_id, "transaction": transaction}}
    return redirect(url, 303)


@bp.route("/login/mock/callback")
def callback():
    pending = dict(session.get(SESSION_KEY) or {})
    entry = pending.pop(request.args.get("state") or "", None)
    session[SESSION_KEY] = pending
    if entry is None:
        return _failure("invalid_state", None)
    tx_id = entry["tx_id"]
    tx, ok = load_tx(tx_id)
    if not ok:
        return expired_page()
    if not _allowed(tx):
        return _failure("unavailable", tx)
    try:
        identity = _connector().complete(request.args, entry["transaction"])
        account = resolve_identity(identity, register=True)
    except (ConnectorError, FederationError) as exc:
        return _failure(exc.code, tx)
    level = min(identity.level, current_app.extensions["idp.settings"].methods[METHOD].level, key=level_rank)
    if tx and level_rank(level) < level_rank(tx["required_level"]):
        return _failure("insufficient_level", tx)
    return complete_login(
        account, level=level, methods=[METHOD], amr=list(identity.amr), tx_id=tx_id, method=METHOD
    )


def init_app(app: Flask) -> None:
    settings = app.extensions["idp.settings"]
    mock = settings.connectors.get(METHOD)
    if mock is None:
        return
    app.extensions["idp.mock"] = MockConnector(mock, redirect_uri=settings.issuer + "/login/mock/callback")
    app.register_blueprint(bp)
    log.warning(
        "DEVELOPMENT LOGIN: [connectors.mock] logs anyone in as %r; never in production", mock.subject
    )
