"""The second step of a password (or contract-number) login: a one-time code by SMS to
the account's stored, verified number (:mod:`idp.login.otp`), or from the authenticator
app (:mod:`idp.login.totp`) — NIST SP 800-63B §5.1.3. The pending first factor lives in
the server-side session, bound to the login transaction, and the session id changes at
each step. Wrong and expired codes get the same answer.
"""

from __future__ import annotations

import secrets
import time

from flask import Blueprint, Flask, redirect, render_template, request, session, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import DataRequired, Length

from idp.accounts import origins
from idp.core import audit
from idp.core.phones import mask_phone
from idp.core.storage import Account
from idp.login import contacts, otp, totp
from idp.login.chooser import alternatives
from idp.login.completion import complete_login
from idp.login.lockout import locked_message, minutes
from idp.login.transaction import (
    drop_pending,
    expired_page,
    get_pending,
    load_tx,
    pending_account,
    save_pending,
    throttled,
)

bp = Blueprint("second_factor", __name__, url_prefix="/login")


class CodeForm(FlaskForm):
    code = StringField(validators=[DataRequired(), Length(max=16)])


def start_second_factor(account: Account, *, tx_id: str, method: str, level: str, amr: list[str]):
    """The first factor succeeded: on to the SMS code (or the authenticator app).

    Other first factors (the contract number) can use this too. An account
    with neither a verified mobile number nor an authenticator app cannot end
    this login: binding a first number on the strength of a password alone
    would let whoever has the password choose the second factor, so unless the
    operator allows it (``[otp] first_number_at_login``, :mod:`idp.login.first_number`)
    the page points to itsme / eID (after which a number can be added) and to
    the support contact.
    """
    session.regenerate()
    on_record = number_on_record(account)
    pending = {
        "account": account.id,
        "at": int(time.time()),
        "stage": "second_factor",
        "binding": secrets.token_urlsafe(16),
        "first": {"method": method, "level": level, "amr": list(amr)},
        "error": None,
    }
    if not account.phone_verified and not account.totp_secret and not on_record:
        if method == "password" and otp.settings().first_number_at_login:
            pending["stage"] = "first_number"
            save_pending(tx_id, pending)
            return redirect(url_for("first_number.number", tx_id=tx_id), 303)
        tx, _ok = load_tx(tx_id)
        audit.record("login", "failure", account_id=account.id, method=method, reason="no_second_factor")
        return render_template(
            "login/no_second_factor.html", tx_id=tx_id, alternatives=alternatives(tx, tx_id)
        ), 403
    if (account.phone_verified or on_record) and account.phone:
        pending["error"] = send_login_code(account, pending["binding"])
        save_pending(tx_id, pending)
        return redirect(url_for("second_factor.code", tx_id=tx_id), 303)
    save_pending(tx_id, pending)
    return redirect(url_for("second_factor.app_code", tx_id=tx_id), 303)


def number_on_record(account: Account) -> bool:
    """An account brought over from the old system with a mobile number it had not confirmed
    (or that the import marked for re-verification): the login code goes to that number, and
    typing it confirms the number. The number comes from the old system's records, so the
    password alone still does not choose the second factor."""
    return bool(account.phone) and not account.phone_verified and origins.brought_over(account)


def send_login_code(account: Account, binding: str) -> str | None:
    """Send the login code; the error code when it could not be sent."""
    try:
        otp.send_code(
            purpose="login",
            binding=binding,
            phone=account.phone,
            account_id=account.id,
            lang=account.locale or str(get_locale()),
        )
    except otp.OtpError as exc:
        return exc.code
    return None


@bp.route("/<tx_id>/code", methods=["GET", "POST"])
def code(tx_id: str):
    tx, ok = load_tx(tx_id)
    pending = get_pending(tx_id)
    account = pending_account(pending)
    if not ok or account is None or pending["stage"] != "second_factor":
        return expired_page()
    form = CodeForm()
    error, status = otp.send_error_message(pending.get("error")), 200
    resent = bool(pending.get("resent")) and request.method == "GET"
    if error or pending.get("resent"):
        pending["error"] = None
        pending["resent"] = False
        save_pending(tx_id, pending)
    if form.validate_on_submit():
        if throttled("code"):
            error, status = _("Too many attempts from your network. Please wait a minute and try again."), 429
        else:
            try:
                otp.check_code(
                    purpose="login", binding=pending["binding"], code=form.code.data, account_id=account.id
                )
            except otp.OtpError as exc:
                error, status = (
                    otp.code_error(exc.code, exc.retry_after),
                    (429 if exc.code == "locked" else 400),
                )
            else:
                if not account.phone_verified:  # number_on_record: the code proved it
                    contacts.set_phone(account, account.phone, actor="login")
                return second_factor_done(account, tx_id, pending, "sms")
    elif request.method == "POST":
        error, status = _("Please type the code from the SMS."), 400
    delivery = otp.delivery("login", pending["binding"])
    if delivery == "failed" and error is None:
        error = otp.send_error_message("delivery_failed")
    wait = otp.resend_wait("login", pending["binding"])
    return render_template(
        "login/code.html",
        form=form,
        tx_id=tx_id,
        error=error,
        phone=mask_phone(account.phone or ""),
        resend_wait=wait,
        resends_left=otp.resends_left("login", pending["binding"]),
        resent=resent,
        has_app=bool(account.totp_secret),
        alternatives=alternatives(tx, tx_id),
        ttl_minutes=minutes(otp.settings().code_ttl),
        delivery=delivery,
    ), status


@bp.route("/<tx_id>/code/resend", methods=["POST"])
def resend(tx_id: str):
    pending = get_pending(tx_id)
    account = pending_account(pending)
    form = FlaskForm()
    if account is None or pending["stage"] != "second_factor" or not form.validate_on_submit():
        return expired_page()
    if not account.phone_verified and not number_on_record(account):
        return redirect(url_for("second_factor.app_code", tx_id=tx_id), 303)
    pending["error"] = send_login_code(account, pending["binding"])
    pending["resent"] = pending["error"] is None  # the page confirms it once
    save_pending(tx_id, pending)
    return redirect(url_for("second_factor.code", tx_id=tx_id), 303)


@bp.route("/<tx_id>/app", methods=["GET", "POST"])
def app_code(tx_id: str):
    tx, ok = load_tx(tx_id)
    pending = get_pending(tx_id)
    account = pending_account(pending)
    if not ok or account is None or pending["stage"] != "second_factor" or not account.totp_secret:
        return expired_page()
    form = CodeForm()
    error, status = None, 200
    if form.validate_on_submit():
        if throttled("code"):
            error, status = _("Too many attempts from your network. Please wait a minute and try again."), 429
        else:
            try:
                totp.verify(account, form.code.data)
            except totp.TotpError as exc:
                if exc.code == "locked":
                    error, status = locked_message(exc.retry_after or 60), 429
                else:
                    error, status = _("This code is not correct. Type the code your app shows now."), 400
            else:
                return second_factor_done(account, tx_id, pending, "totp")
    elif request.method == "POST":
        error, status = _("Please type the code from your authenticator app."), 400
    return render_template(
        "login/app.html",
        form=form,
        tx_id=tx_id,
        error=error,
        has_phone=bool(account.phone_verified and account.phone),
        alternatives=alternatives(tx, tx_id),
    ), status


def second_factor_done(account: Account, tx_id: str, pending: dict, factor: str):
    first = pending["first"]
    drop_pending(tx_id)
    amr = [*first["amr"], "sms" if factor == "sms" else "otp", "mfa"]
    return complete_login(
        account,
        level=first["level"],
        methods=[first["method"], factor],
        amr=amr,
        tx_id=tx_id,
        method=first["method"],
    )


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
