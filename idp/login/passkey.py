"""Sign in with a passkey (W3C WebAuthn §7.2): the chooser's button and conditional UI.

The page (and the password page, whose username field carries
``autocomplete="username webauthn"``) asks for options — a challenge kept in
the shared store, single use, bound to this browser session — and posts the
assertion back. :mod:`idp.accounts.passkeys` verifies it (origin and RP id
from the issuer, user verification required, the counter moving forward).

A passkey with user verification is two factors in one gesture (possession +
the fingerprint, face or device PIN): ``amr`` is ``hwk`` (device-bound) or
``swk`` (synced) with ``user`` and ``mfa`` (RFC 8176), at ``[methods.passkey]
level`` (``substantial`` by default; ``high`` only at clients with
``passkey_high``). Where a client sets ``passkey_satisfies_sms = false`` the
SMS code still follows, as after a password.

Every failure gets the same answer (no hint whether a passkey is known).
"""

from __future__ import annotations

from flask import Blueprint, Flask, current_app, jsonify, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from idp.accounts import passkeys
from idp.core import audit
from idp.core.sessions import current_sso
from idp.login.chooser import method_choices
from idp.login.completion import complete_login
from idp.login.second_factor import start_second_factor
from idp.login.transaction import expired_page, load_tx, throttled

bp = Blueprint("passkey", __name__, url_prefix="/login")


def _usable(tx: dict | None) -> bool:
    return any(c["name"] == "passkey" and c["enabled"] for c in method_choices(tx))


def _error(message: str, status: int = 400):
    return jsonify(error=message), status


def failed_message() -> str:
    return _("This passkey could not be used. Try again, or log in another way.")


@bp.route("/<tx_id>/passkey")
def start(tx_id: str):
    tx, ok = load_tx(tx_id)
    if not ok:
        return expired_page()
    if not _usable(tx):
        return redirect(url_for("login.choose", tx_id=tx_id), 303)
    return render_template("login/passkey.html", tx_id=tx_id)


@bp.route("/<tx_id>/passkey/options", methods=["POST"])
def options(tx_id: str):
    tx, ok = load_tx(tx_id)
    if not ok or not _usable(tx):
        return _error(_("This sign-in has expired. Please start again from the application."))
    if throttled("passkey_options"):
        return _error(_("Too many attempts from your network. Please wait a minute and try again."), 429)
    return jsonify(options=current_app.json.loads(passkeys.authentication_options()))


@bp.route("/<tx_id>/passkey/verify", methods=["POST"])
def verify(tx_id: str):
    tx, ok = load_tx(tx_id)
    if not ok or not _usable(tx):
        return _error(_("This sign-in has expired. Please start again from the application."))
    if throttled("passkey"):
        return _error(_("Too many attempts from your network. Please wait a minute and try again."), 429)
    body = request.get_json(silent=True)
    credential = body.get("credential") if isinstance(body, dict) else None
    client_id = tx["client_id"] if tx else None
    if not isinstance(credential, dict):
        return _error(failed_message())
    try:
        result = passkeys.authenticate(credential)
    except passkeys.PasskeyError as exc:
        audit.record("login", "failure", client_id=client_id, method="passkey", reason=exc.code)
        if exc.code == "cloned":
            audit.record(
                "passkey_clone_signal",
                "failure",
                account_id=exc.account_id,
                client_id=client_id,
                policy="refuse",
            )
        return _error(failed_message())
    account = result.account
    if result.clone_warning:
        audit.record(
            "passkey_clone_signal",
            account_id=account.id,
            client_id=client_id,
            passkey=result.passkey.id,
            policy="flag",
        )
    response = _finish(account, result, tx, tx_id)
    if isinstance(response, tuple):  # the SMS code is needed here and the account has no number
        message = " ".join(
            [
                _("Your account has no confirmed mobile number"),
                _(
                    "Log in with itsme® or your eID card: you can then add your mobile number "
                    "in your account settings."
                ),
            ]
        )
        return _error(message, 403)
    return jsonify(redirect=response.location)


def _finish(account, result: passkeys.PasskeyLogin, tx: dict | None, tx_id: str):
    settings = current_app.extensions["idp.settings"]
    client = current_app.extensions["idp.clients"].get(tx["client_id"]) if tx else None
    level = settings.method_level("passkey", client.settings if client else None)
    if client is not None and not client.settings.passkey_satisfies_sms:
        # This operator keeps the SMS code after a passkey: the passkey stands in for the password.
        amr = [a for a in result.amr if a != "mfa"]  # the code adds "mfa" after it
        return start_second_factor(account, tx_id=tx_id, method="passkey", level=level, amr=amr)
    return complete_login(
        account, level=level, methods=["passkey"], amr=list(result.amr), tx_id=tx_id, method="passkey"
    )


# ---------------------------------------------------------------------------
# The offer after a password + SMS login: "next time, use your fingerprint or face"
# ---------------------------------------------------------------------------


@bp.route("/passkey/offer")
def offer():
    target = session.get("passkey_offer_next")
    sso = current_sso()
    if not (isinstance(target, str) and target.startswith("/") and not target.startswith("//")):
        target = url_for("account.home")
    if sso is None:
        return redirect(target, 303)
    passkeys.mark_offered(sso[1])
    return render_template("login/passkey_offer.html", next_url=target)


@bp.route("/passkey/offer/skip", methods=["POST"])
def offer_skip():
    target = session.pop("passkey_offer_next", None)
    if not (isinstance(target, str) and target.startswith("/") and not target.startswith("//")):
        target = url_for("account.home")
    return redirect(target, 303)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
