"""Belgian eID login: the page, the challenge and the verification of the bridge's token.

The host side of the Web eID model (``docs/bridge.md``; ``web-eid-system-
architecture-doc``, "Authentication"): the page asks for a challenge (32
random bytes, base64), which is kept in the shared store under a key bound to
this browser session and this login transaction for ``challenge_ttl`` seconds;
the Web eID extension or the bridge has the card sign ``hash(origin) ‖ hash(challenge)``; the page posts
the bridge's token back and the challenge is taken out of the store atomically
(single use) before :class:`connectors.eid.EidVerifier` checks the rest. The
origin the signature must cover is the provider's own, derived from the
configured issuer — never from the request's Host header.

Every refusal is a JSON ``{"error": code, "message": sentence}`` with a 4xx
status and an audit record; the page shows the sentence.
"""

from __future__ import annotations

import logging
import secrets
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from connectors.base import ConnectorError
from connectors.eid import (
    CHALLENGE_EXPIRED,
    CHALLENGE_REPLAYED,
    MALFORMED,
    EidVerifier,
    new_challenge,
)
from idp.accounts.federation import FederationError, resolve_identity
from idp.core import audit, metrics
from idp.core.errors import register_json_endpoints
from idp.core.hashing import digest
from idp.core.inputs import request_json_object
from idp.login.chooser import method_choices
from idp.login.completion import complete_login
from idp.login.eid_page import install_links, page_messages, server_messages
from idp.login.transaction import expired_page, load_tx

log = logging.getLogger(__name__)

bp = Blueprint("eid", __name__, url_prefix="/login")

# Codes of the host (the verifier's are in connectors.eid.ERROR_CODES).
CHALLENGE_OTHER_SESSION = "challenge_other_session"
LOGIN_EXPIRED = "login_expired"
METHOD_UNAVAILABLE = "method_unavailable"
SESSION_INVALID = "session_invalid"
TOO_MANY_ATTEMPTS = "too_many_attempts"
SERVER_ERROR = "server_error"

# Challenges one browser may ask for per login transaction within challenge_ttl.
MAX_CHALLENGES = 20
_JSON_ENDPOINTS = ("eid.challenge", "eid.verify")


# -- helpers ------------------------------------------------------------------------


def provider_origin(issuer: str) -> str:
    """The web origin of the issuer (RFC 6454 §6.1): what the browser sends as ``Origin``."""
    parts = urlsplit(issuer)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is None or port == {"https": 443, "http": 80}.get(scheme):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


class KvOcspCache:
    """The verifier's OCSP cache in the shared store, so every worker reuses a good answer."""

    def __init__(self, app: Flask) -> None:
        self._app = app

    def get(self, key: str) -> bytes | None:
        return self._app.extensions["idp.kv"].get(key)

    def set(self, key: str, value: bytes, ttl: int) -> None:
        self._app.extensions["idp.kv"].set(key, value, ttl)


def build_verifier(app: Flask) -> EidVerifier:
    """The app's one verifier, its OCSP answers cached in the shared store."""
    settings = app.extensions["idp.settings"]
    # settings.load_settings already refused an allowlist without the provider's own origin.
    return EidVerifier(
        settings.connectors["eid"], http=metrics.UpstreamSession("ocsp"), ocsp_cache=KvOcspCache(app)
    )


def _settings():
    return current_app.extensions["idp.settings"].connectors["eid"]


def _binding(tx_id: str) -> str:
    """A name for (this browser session, this login transaction) that reveals neither."""
    secret = session.get("eid_binding")
    if not isinstance(secret, str):
        secret = session["eid_binding"] = secrets.token_urlsafe(24)
    return digest(f"{secret}\x00{tx_id}")


def _challenge_key(binding: str) -> str:
    return f"eid:challenge:{binding}"


def _state_key(challenge: str) -> str:
    # Where a challenge was issued and whether it was used: tells a replay from an expiry.
    return "eid:challenge-state:" + digest(challenge)


class Refused(Exception):
    def __init__(self, code: str, status: int = 400) -> None:
        super().__init__(code)
        self.code = code
        self.status = status


def refuse(code: str, status: int = 400, tx: dict | None = None):
    """The JSON answer to a failed step, with its audit record."""
    messages = server_messages()
    audit.record("login", "failure", client_id=(tx or {}).get("client_id"), method="eid", reason=code)
    return jsonify(error=code, message=messages.get(code, messages[SERVER_ERROR])), status


def _usable_tx(tx_id: str) -> dict | None:
    """The transaction if the eID login may go on in it; Refused otherwise."""
    tx, ok = load_tx(tx_id)
    if not ok:
        raise Refused(LOGIN_EXPIRED)
    if "eid" not in current_app.extensions["idp.settings"].connectors or not any(
        c["name"] == "eid" and c["enabled"] for c in method_choices(tx)
    ):
        raise Refused(METHOD_UNAVAILABLE, 403)
    return tx


def take_challenge(binding: str, presented: object) -> str:
    """This browser's challenge for this transaction, removed from the store; Refused otherwise."""
    kv = current_app.extensions["idp.kv"]
    expected = kv.pop(_challenge_key(binding))
    if not isinstance(presented, str) or not presented:
        raise Refused(MALFORMED)
    if expected is not None and secrets.compare_digest(expected, presented.encode("utf-8")):
        kv.set(_state_key(presented), b"used", _settings().challenge_ttl)
        return presented
    state = kv.get(_state_key(presented))
    if state == b"used":
        raise Refused(CHALLENGE_REPLAYED)
    if state is not None and not secrets.compare_digest(state, b"issued:" + binding.encode()):
        raise Refused(CHALLENGE_OTHER_SESSION)
    # Never issued, timed out, or replaced by a newer challenge for this same page.
    raise Refused(CHALLENGE_EXPIRED)


# -- views --------------------------------------------------------------------------


@bp.route("/<tx_id>/eid")
def start(tx_id: str):
    tx, ok = load_tx(tx_id)
    if not ok:
        return expired_page()
    try:
        _usable_tx(tx_id)
    except Refused:
        return redirect(url_for("login.choose", tx_id=tx_id), 303)
    page = _settings().page
    return render_template(
        "eid/login.html",
        tx_id=tx_id,
        page=page,
        install=install_links(page, request.headers.get("User-Agent", ""), url_for("eid.help")),
        register_url=_register_url(),
        messages=page_messages(),
    )


def _register_url() -> str | None:
    """The registration page when this provider has one (a link, not an import of the layer above)."""
    if "registration.start" not in current_app.view_functions:
        return None
    return url_for("registration.start")


@bp.route("/eid/help", endpoint="help")
def help_page():
    page = _settings().page if "eid" in current_app.extensions["idp.settings"].connectors else None
    return render_template(
        "eid/help.html",
        page=page,
        install=install_links(page, request.headers.get("User-Agent", ""), url_for("eid.help"))
        if page
        else None,
        origin=provider_origin(current_app.extensions["idp.settings"].issuer),
    )


@bp.route("/<tx_id>/eid/challenge", methods=["POST"])
def challenge(tx_id: str):
    tx = None
    try:
        tx = _usable_tx(tx_id)
        ttl = _settings().challenge_ttl
        binding = _binding(tx_id)
        kv = current_app.extensions["idp.kv"]
        if kv.incr(f"eid:challenges:{binding}", ttl) > MAX_CHALLENGES:
            raise Refused(TOO_MANY_ATTEMPTS, 429)
    except Refused as exc:
        return refuse(exc.code, exc.status, tx)
    metrics.login_started("eid")
    value = new_challenge()
    kv.set(_state_key(value), b"issued:" + binding.encode(), ttl)
    kv.set(_challenge_key(binding), value.encode(), ttl)
    return jsonify(challenge=value, expires_in=ttl)


@bp.route("/<tx_id>/eid/verify", methods=["POST"])
def verify(tx_id: str):
    tx = None
    token = request_json_object()
    try:
        tx = _usable_tx(tx_id)
        if not isinstance(token, dict):
            raise Refused(MALFORMED)
        expected = take_challenge(_binding(tx_id), token.get("challenge"))
    except Refused as exc:
        return refuse(exc.code, exc.status, tx)
    settings = current_app.extensions["idp.settings"]
    verifier: EidVerifier = current_app.extensions["idp.eid"]
    try:
        identity = verifier.verify(
            token, expected_challenge=expected, origin=provider_origin(settings.issuer)
        )
    except ConnectorError as exc:
        # The connector's details name no person (no national numbers): they tell operators why.
        log.info("eid verify refused: %s (%s)", exc.code, exc.detail)
        return refuse(exc.code, 400, tx)
    except Exception:  # a token we failed to foresee must not become a 500 or a login
        log.exception("eid verify: unexpected failure")
        return refuse(MALFORMED, 400, tx)
    try:
        account = resolve_identity(identity, register=settings.methods["eid"].register)
    except FederationError as exc:
        return refuse(exc.code, 403, tx)
    response = complete_login(
        account,
        level=identity.level,
        methods=["eid"],
        amr=list(identity.amr),
        tx_id=tx_id,
        method="eid",
    )
    return jsonify(redirect=response.location)


# -- errors of the JSON endpoints ---------------------------------------------------------


def _json_error(kind: str, status: int):
    """How the bridge's endpoints answer a failure (through :mod:`idp.core.errors`)."""
    if kind == "csrf":
        return refuse(SESSION_INVALID, 400)
    if kind == "bad_request":
        return refuse(MALFORMED, status if 400 <= status < 500 else 400)
    return refuse(SERVER_ERROR, status)


def init_app(app: Flask) -> None:
    if "eid" in app.extensions["idp.settings"].connectors:
        app.extensions["idp.eid"] = build_verifier(app)
    app.register_blueprint(bp)
    register_json_endpoints(app, _JSON_ENDPOINTS, _json_error)


__all__ = [
    "CHALLENGE_OTHER_SESSION",
    "KvOcspCache",
    "bp",
    "build_verifier",
    "init_app",
    "page_messages",
    "provider_origin",
    "server_messages",
    "take_challenge",
]
