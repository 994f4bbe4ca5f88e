"""The account's passkeys: list, create (W3C WebAuthn §7.1), rename, remove.

Creating or removing a passkey changes how the account can log in, so it
needs a recent full login (two factors, a passkey, or itsme/eID within
``RECENT_LOGIN`` seconds), like a new password. Each change is audited and
told to the person by e-mail. Removing a passkey never locks anyone out: the
other methods (password + SMS, itsme, eID) are untouched.
"""

from __future__ import annotations

import datetime as dt

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import format_date
from flask_babel import gettext as _

from idp.accounts import passkeys
from idp.core import audit
from idp.core.sessions import current_sso
from idp.login import contacts
from idp.selfservice.account import recent_full_login

bp = Blueprint("account_passkeys", __name__, url_prefix="/account/passkeys")


def _guard(fresh: bool):
    """(sso row, account), or a redirect to log in (again) and come back to the list."""
    sso = current_sso()
    if sso is not None and (not fresh or recent_full_login(sso[0])):
        return sso, None
    session["after_login"] = url_for("account_passkeys.index")
    if sso is not None:
        session["login_reason"] = "reauth"
    return None, redirect(url_for("login.choose", tx_id="-"), 303 if request.method == "POST" else 302)


def _json_guard():
    sso = current_sso()
    if sso is None or not recent_full_login(sso[0]):
        message = _("For your security, please log in again before changing your details.")
        _sso, back = _guard(fresh=True)
        return None, (jsonify(error=message, redirect=back.location), 401)
    return sso, None


def _notice() -> str | None:
    texts = {
        "added": _("Your passkey was created. Next time, log in with it."),
        "removed": _("The passkey was removed. Your other ways to log in still work."),
        "renamed": _("The passkey was renamed."),
    }
    return texts.get(session.pop("passkey_notice", None) or "")


@bp.route("/")
def index():
    sso, back = _guard(fresh=False)
    if back:
        return back
    _row, account = sso
    session.pop("passkey_offer_next", None)  # an offer left unanswered: adding here stays here
    items = passkeys.list_for(account)
    return render_template(
        "account/passkeys.html",
        items=items,
        can_add=len(items) < passkeys.settings().max_per_account,
        notice=_notice(),
        error=None,
    )


@bp.route("/register/options", methods=["POST"])
def register_options():
    sso, refused = _json_guard()
    if refused:
        return refused
    try:
        options = passkeys.registration_options(sso[1])
    except passkeys.PasskeyError:
        return jsonify(error=_("You have the maximum number of passkeys. Remove one to add another.")), 400
    return jsonify(options=current_app.json.loads(options))


@bp.route("/register/verify", methods=["POST"])
def register_verify():
    sso, refused = _json_guard()
    if refused:
        return refused
    _row, account = sso
    body = request.get_json(silent=True)
    credential = body.get("credential") if isinstance(body, dict) else None
    if not isinstance(credential, dict):
        return jsonify(error=_("The passkey was not created. Please try again.")), 400
    try:
        row = passkeys.register(account, credential)
    except passkeys.PasskeyError as exc:
        audit.record("passkey_added", "failure", account_id=account.id, reason=exc.code)
        messages = {
            "duplicate": _("This device already holds a passkey for your account."),
            "too_many": _("You have the maximum number of passkeys. Remove one to add another."),
        }
        return jsonify(error=messages.get(exc.code, _("The passkey was not created. Please try again."))), 400
    audit.record("passkey_added", account_id=account.id, passkey=row.id, aaguid=row.aaguid)
    contacts.notify_email(account, "account_passkey_changed", added=True, passkey=row.name)
    after = session.pop("passkey_offer_next", None)
    if isinstance(after, str) and after.startswith("/") and not after.startswith("//"):
        return jsonify(redirect=after)
    session["passkey_notice"] = "added"
    return jsonify(redirect=url_for("account_passkeys.index"))


@bp.route("/<int:passkey_id>/remove", methods=["POST"])
def remove(passkey_id: int):
    sso, back = _guard(fresh=True)
    if back:
        return back
    _row, account = sso
    row = passkeys.get_for(account, passkey_id)
    if row is None:
        abort(404)
    name = row.name
    passkeys.remove(row)
    audit.record("passkey_removed", account_id=account.id, passkey=passkey_id)
    contacts.notify_email(account, "account_passkey_changed", added=False, passkey=name)
    session["passkey_notice"] = "removed"
    return redirect(url_for("account_passkeys.index"), 303)


@bp.route("/<int:passkey_id>/rename", methods=["POST"])
def rename(passkey_id: int):
    sso, back = _guard(fresh=False)
    if back:
        return back
    _row, account = sso
    row = passkeys.get_for(account, passkey_id)
    if row is None:
        abort(404)
    name = passkeys.clean_name(request.form.get("name"))
    if not name:
        items = passkeys.list_for(account)
        return render_template(
            "account/passkeys.html",
            items=items,
            can_add=len(items) < passkeys.settings().max_per_account,
            notice=None,
            error=_("Please give the passkey a name."),
        ), 400
    passkeys.rename(row, name)
    audit.record("passkey_renamed", account_id=account.id, passkey=passkey_id)
    session["passkey_notice"] = "renamed"
    return redirect(url_for("account_passkeys.index"), 303)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)

    @app.template_filter("passkey_date")
    def _passkey_date(timestamp: int) -> str:
        return format_date(dt.datetime.fromtimestamp(timestamp, dt.UTC).date(), "medium")
