"""The itsme login pages: send the person to itsme and take them back.

We are an OpenID Connect relying party of itsme (OIDC Core section 3.1, the
authorization code flow); the protocol work is :mod:`connectors.itsme`'s.
This module holds what belongs to the provider:

* ``start`` (``/login/<tx_id>/itsme``): checks that the login transaction
  may use itsme, asks the connector for the authorization URL at the level the
  relying party needs, and keeps the connector's transaction (state, nonce,
  PKCE verifier) in the server-side browser session under its ``state``;
* ``callback`` (``/login/itsme/callback``, the redirect URI registered with
  itsme): takes that transaction back out, once (a missing, reused or foreign
  ``state`` is refused), lets the connector check the answer, finds the
  account (:func:`idp.federation.resolve_identity`) and ends in
  :func:`idp.login.complete_login`;
* ``jwks`` (``/itsme/jwks.json``): our public RP keys, the JWKS URL registered
  with itsme, cacheable for ``jwks_max_age`` seconds.

Every failure is a page in the user's language that offers the other login
methods of the same transaction, plus an audit record; never a login.
"""

from __future__ import annotations

import logging

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import get_locale
from flask_babel import gettext as _

from connectors.base import ConnectorError, level_rank
from connectors.config import ConfigError, ConfigErrors
from connectors.itsme import ItsmeConnector, RPKeyError, RPKeys
from idp.accounts.federation import FederationError, resolve_identity
from idp.core import audit, metrics
from idp.core.hashing import digest
from idp.core.phones import PhoneError, normalize_phone
from idp.core.storage import db
from idp.login.chooser import METHOD_ENDPOINTS, method_choices
from idp.login.completion import complete_login
from idp.login.transaction import expired_page, load_tx

log = logging.getLogger(__name__)
bp = Blueprint("itsme", __name__)

METHOD = "itsme"
SESSION_KEY = "itsme_pending"  # state -> {"tx_id", "transaction"} in the browser session
MAX_PENDING = 5  # itsme logins started in other tabs of the same browser
USED_STATE_TTL = 3600  # longer than the connector accepts a transaction


# ---------------------------------------------------------------------------
# Pages
# ---------------------------------------------------------------------------


@bp.route("/login/<tx_id>/itsme")
def start(tx_id: str):
    tx, ok = load_tx(tx_id)
    if not ok:
        return expired_page()
    connector = _connector()
    if connector is None or not _allowed(tx):
        return redirect(url_for("login.choose", tx_id=tx_id), 303)
    level = tx["required_level"] if tx else "low"
    metrics.login_started(METHOD)
    try:
        url, transaction = connector.begin(level=level, locale=str(get_locale()), login_hint=_phone_hint(tx))
    except ConnectorError as exc:
        return failure(exc.code, tx_id, tx)
    except Exception:  # noqa: BLE001 - a bug must not become a 500 in the middle of a login
        log.exception("itsme: unexpected error while starting a login")
        return failure("upstream_error", tx_id, tx)
    pending = dict(session.get(SESSION_KEY) or {})
    pending[transaction["state"]] = {"tx_id": tx_id, "transaction": transaction}
    for old in sorted(pending, key=lambda s: pending[s]["transaction"]["created_at"])[:-MAX_PENDING]:
        pending.pop(old)
    session[SESSION_KEY] = pending
    return redirect(url, 303)


@bp.route("/login/itsme/callback")
def callback():
    state = request.args.get("state")
    pending = dict(session.get(SESSION_KEY) or {})
    entry = pending.pop(state, None) if state else None
    if entry is None:
        # No login of this browser waits for this answer: missing, used, or started elsewhere.
        return failure("invalid_state", None, None)
    session[SESSION_KEY] = pending
    if not current_app.extensions["idp.kv"].add(_used_state_key(state), b"1", USED_STATE_TTL):
        return failure("invalid_state", None, None)  # the same answer raced in twice
    tx_id = entry["tx_id"]
    tx, ok = load_tx(tx_id)
    if not ok:
        audit.record("login", "failure", method=METHOD, reason="expired")
        return expired_page()
    connector = _connector()
    if connector is None or not _allowed(tx):
        return failure("unavailable", tx_id, tx)
    try:
        identity = connector.complete(request.args, entry["transaction"])
        settings = current_app.extensions["idp.settings"]
        account = resolve_identity(identity, register=settings.methods[METHOD].register)
    except (ConnectorError, FederationError) as exc:
        return failure(exc.code, tx_id, tx)
    except Exception:  # noqa: BLE001 - a bug must not become a 500, and never a login
        log.exception("itsme: unexpected error while completing a login")
        return failure("upstream_error", tx_id, tx)
    # The operator's level for the method caps what itsme's acr maps to.
    level = min(identity.level, settings.methods[METHOD].level, key=level_rank)
    if tx and level_rank(level) < level_rank(tx["required_level"]):
        return failure("insufficient_level", tx_id, tx)
    return complete_login(
        account, level=level, methods=[METHOD], amr=list(identity.amr), tx_id=tx_id, method=METHOD
    )


@bp.route("/itsme/jwks.json")
def jwks():
    keys: RPKeys | None = current_app.extensions.get("idp.itsme.keys")
    if keys is None:
        abort(404)
    max_age = current_app.extensions["idp.settings"].connectors[METHOD].jwks_max_age
    response = Response(keys.public_jwks_bytes(), mimetype="application/json")
    response.headers["Cache-Control"] = f"public, max-age={max_age}"
    return response


# ---------------------------------------------------------------------------
# Failures
# ---------------------------------------------------------------------------

_UPSTREAM = ("upstream_unavailable", "upstream_error", "invalid_token")
_RETRYABLE = (
    "cancelled",
    "upstream_unavailable",
    "upstream_error",
    "invalid_token",
    "invalid_state",
    "insufficient_level",
)


def _messages(code: str) -> tuple[str, str]:
    """(title, message) for a failure code, in the user's language."""
    if code == "cancelled":
        return _("You stopped the itsme login"), _(
            "Nothing was changed. You can try again with itsme or choose another way to log in."
        )
    if code == "upstream_unavailable":
        return _("itsme is not available right now"), _(
            "itsme did not answer in time. Please try again in a few minutes or choose another way to log in."
        )
    if code == "upstream_error":
        return _("itsme could not complete the login"), _(
            "itsme reported a problem with this login. Please try again or choose another way to log in."
        )
    if code == "invalid_token":
        return _("We could not check the answer from itsme"), _(
            "For your safety you were not logged in. Please try again or choose another way to log in."
        )
    if code == "invalid_state":
        return _("This itsme login cannot be completed"), _(
            "The answer from itsme does not belong to a login started in this browser, or it was already "
            "used. Please start again from the application."
        )
    if code == "insufficient_level":
        return _("A stronger itsme confirmation is needed"), _(
            "This application asks you to confirm with your itsme code. Please try again."
        )
    if code == "no_account":
        return _("We do not have an account for you yet"), _(
            "Your identity was confirmed, but no account of ours is linked to it. Please register first or "
            "choose another way to log in."
        )
    if code == "account_disabled":
        return _("This account is disabled"), _("Please contact customer service.")
    return _("itsme login is not available"), _("Please choose another way to log in.")


def failure(code: str, tx_id: str | None, tx: dict | None):
    """The page for a failed itsme login: what happened, and the other ways in."""
    db.session.rollback()  # nothing half-done is committed with the audit record
    audit.record("login", "failure", client_id=tx["client_id"] if tx else None, method=METHOD, reason=code)
    title, message = _messages(code)
    others, retry_url = [], None
    if tx_id is not None:
        for choice in method_choices(tx):
            if choice["enabled"] and choice["name"] != METHOD:
                others.append(
                    {
                        "name": choice["name"],
                        "label": _method_label(choice["name"]),
                        "url": url_for(METHOD_ENDPOINTS[choice["name"]], tx_id=tx_id),
                    }
                )
        if code in _RETRYABLE and _allowed(tx):
            retry_url = url_for("itsme.start", tx_id=tx_id)
    status = 502 if code in _UPSTREAM else 400
    return render_template(
        "itsme/error.html", title=title, message=message, others=others, retry_url=retry_url, code=code
    ), status


def _method_label(name: str) -> str:
    return {"password": _("Username and password"), "eid": _("Belgian eID card")}.get(name, name)


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _connector() -> ItsmeConnector | None:
    return current_app.extensions.get("idp.itsme")


def _allowed(tx: dict | None) -> bool:
    return _connector() is not None and any(c["name"] == METHOD and c["enabled"] for c in method_choices(tx))


def _phone_hint(tx: dict | None) -> str | None:
    """The RP's ``login_hint`` when it is a mobile number, the only hint itsme can use.

    A username or e-mail address would tell itsme something it does not need.
    """
    hint = (tx or {}).get("login_hint")
    if not isinstance(hint, str) or not hint.strip():
        return None

    raw = hint.strip()
    raw = raw[4:] if raw.lower().startswith("tel:") else raw
    try:
        return normalize_phone(raw, allowed_prefixes=())
    except PhoneError:
        return None


def _used_state_key(state: str) -> str:
    return "itsme:state:" + digest(state)


def build_connector(app: Flask) -> None:
    """Open the RP keys and the connector once per app when ``[connectors.itsme]`` exists.

    The keys and the JWKS URL are there as soon as the connector is configured,
    so onboarding with itsme can happen before ``[methods.itsme] enabled``.
    """
    settings = app.extensions["idp.settings"]
    itsme = settings.connectors.get(METHOD)
    if itsme is None:
        return
    try:
        keys = RPKeys.load_or_create(itsme.keys_dir, itsme.keys_passphrase)
    except (RPKeyError, OSError) as exc:
        raise ConfigErrors([ConfigError(settings.source, "connectors.itsme.keys_dir", str(exc))]) from exc
    http = metrics.UpstreamSession("itsme")
    http.headers["User-Agent"] = "idp-itsme-connector"
    app.extensions["idp.itsme.keys"] = keys
    app.extensions["idp.itsme"] = ItsmeConnector(itsme, keys, http=http)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    build_connector(app)
