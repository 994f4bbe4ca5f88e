"""Belgian eID login: the page, the challenge and the verification of the bridge's token.

The host side of the Web eID model (``docs/bridge.md``; ``web-eid-system-
architecture-doc``, "Authentication"): the page asks for a challenge (32
random bytes, base64), which is kept in the shared store under a key bound to
this browser session and this login transaction for ``challenge_ttl`` seconds;
the bridge has the card sign ``hash(origin) ‖ hash(challenge)``; the page posts
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
    session,
    url_for,
)
from flask_babel import gettext as _

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
from idp.login.transaction import expired_page, load_tx

log = logging.getLogger(__name__)

bp = Blueprint("eid", __name__, url_prefix="/login")

DEFAULT_BRIDGE_URL = "http://127.0.0.1:35963"  # connectors.eid.bridge.DEFAULT_PORT
HELP_URL_CONFIG = "EID_BRIDGE_HELP_URL"
BRIDGE_URL_CONFIG = "EID_BRIDGE_URL"

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


def server_messages() -> dict[str, str]:
    """The sentence shown for each code the provider answers, in the page's language."""
    retry = _("Please try again.")
    return {
        MALFORMED: _(
            "The eID bridge sent an answer the server does not understand. Please update the bridge."
        ),
        "challenge_mismatch": _("This login attempt is no longer valid.") + " " + retry,
        CHALLENGE_EXPIRED: _("The login took too long and has expired.") + " " + retry,
        CHALLENGE_REPLAYED: _("This card signature was already used.") + " " + retry,
        CHALLENGE_OTHER_SESSION: _("This card signature was made for another browser window and is refused."),
        "origin_not_allowed": _(
            "The eID login is not set up for this web site. Please contact customer service."
        ),
        "wrong_certificate": _(
            "The card did not use its authentication certificate. Please update the eID bridge."
        ),
        "certificate_expired": _("Your eID card has expired. Please use a valid card."),
        "untrusted_certificate": _("This card was not issued by the Belgian eID authorities."),
        "certificate_revoked": _("Your eID card has been revoked and can no longer be used to log in."),
        "revocation_unknown": _("The validity of your eID card could not be confirmed."),
        "revocation_unavailable": _(
            "The validity of your eID card cannot be checked right now. Please try again in a few minutes."
        ),
        "bad_signature": _("The card's signature is not valid.") + " " + retry,
        "identity_file_invalid": _("The identity data on the card could not be verified."),
        "national_number_mismatch": _("The identity data on the card does not match its certificate."),
        "no_account": _(
            "No account is linked to this eID card. Please log in another way or contact customer service."
        ),
        "account_disabled": _("This account is disabled. Please contact customer service."),
        LOGIN_EXPIRED: _(
            "This sign-in took too long or was already used. Please start again from the application."
        ),
        METHOD_UNAVAILABLE: _("The eID login is not available for this application."),
        SESSION_INVALID: _("Your session expired. Please reload the page and try again."),
        TOO_MANY_ATTEMPTS: _("Too many attempts. Please wait a few minutes and try again."),
        SERVER_ERROR: _("Something went wrong on our side. Please try again in a moment."),
    }


def page_messages() -> dict[str, str]:
    """What the page script says: progress, the bridge's errors and the provider's (by code)."""
    return {
        "checking": _("Looking for the eID bridge on this computer…"),
        "ready": _(
            "Your card is ready. Click “Log in with eID”, then enter your PIN in the eID bridge window."
        ),
        "waiting_pin": _(
            "Enter your PIN in the eID bridge window or on your reader's keypad. Never type it in this page."
        ),
        "verifying": _("Checking your card…"),
        "redirecting": _("You are logged in. Continuing…"),
        "bridge_not_running": _(
            "The eID bridge is not running on this computer. Install and start it, then try again."
        ),
        "no_middleware": _(
            "The eID software (middleware) is not installed. Install it from eid.belgium.be, then try again."
        ),
        "no_reader": _("No card reader was found. Connect your card reader, then try again."),
        "no_card": _("No eID card was found. Insert your eID card in the reader, then try again."),
        "pin_cancelled": _("You cancelled the PIN entry."),
        "pin_wrong": _("Wrong PIN."),
        "pin_wrong_tries": _("Wrong PIN. Tries left before your PIN is blocked: {tries}."),
        "pin_blocked": _("Your PIN is blocked. Unblock it with your PUK code at your municipality."),
        "unsupported_card": _("This card is not supported. Please use a Belgian eID card."),
        "card_error": _("The card could not be read. Take it out, insert it again and try again."),
        "bridge_error": _("The eID bridge could not handle the request. Please restart it and try again."),
        "network": _("The server could not be reached. Check your connection and try again."),
        **server_messages(),
    }


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
    return render_template(
        "eid/login.html",
        tx_id=tx_id,
        bridge_url=current_app.config.get(BRIDGE_URL_CONFIG) or DEFAULT_BRIDGE_URL,
        help_url=current_app.config.get(HELP_URL_CONFIG) or url_for("eid.help"),
        messages=page_messages(),
    )


@bp.route("/eid/help", endpoint="help")
def help_page():
    return render_template(
        "eid/help.html",
        bridge_url=current_app.config.get(BRIDGE_URL_CONFIG) or DEFAULT_BRIDGE_URL,
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
    app.config.setdefault(BRIDGE_URL_CONFIG, DEFAULT_BRIDGE_URL)
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
