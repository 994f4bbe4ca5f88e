"""A password login of an account with no confirmed mobile number, when the operator allows
it (``[otp] first_number_at_login``): the person types a mobile number, gets a code by SMS to
it, and the confirmed code is the login's second factor and the account's verified number.

Off (the default), :func:`idp.login.second_factor.start_second_factor` shows the support
contact and the other methods instead: binding the first number on the strength of a
password alone lets whoever has the password choose the second factor.
"""

from __future__ import annotations

from flask import Blueprint, Flask, redirect, render_template, request, url_for
from flask_babel import gettext as _

from idp.core.phones import mask_phone
from idp.login import otp
from idp.login.contacts import CodeForm, PhoneForm, phone_binding, phone_code_step, send_new_phone_code
from idp.login.second_factor import second_factor_done
from idp.login.transaction import expired_page, get_pending, load_tx, pending_account, save_pending

bp = Blueprint("first_number", __name__, url_prefix="/login")

STAGE = "first_number"


def _state(tx_id: str):
    tx, ok = load_tx(tx_id)
    pending = get_pending(tx_id)
    account = pending_account(pending)
    if not ok or account is None or pending["stage"] != STAGE or account.phone_verified:
        return None, None
    return pending, account


@bp.route("/<tx_id>/number", methods=["GET", "POST"])
def number(tx_id: str):
    pending, account = _state(tx_id)
    if account is None:
        return expired_page()
    form = PhoneForm()
    error, status = None, 200
    if form.validate_on_submit():
        typed, error = send_new_phone_code(account, form.phone.data, pending["binding"])
        if typed:
            pending["phone"] = typed
            save_pending(tx_id, pending)
            return redirect(url_for("first_number.code", tx_id=tx_id), 303)
        status = 400
    elif request.method == "POST":
        error, status = _("Please type your mobile number."), 400
    return render_template("login/number.html", form=form, tx_id=tx_id, error=error), status


@bp.route("/<tx_id>/number/code", methods=["GET", "POST"])
def code(tx_id: str):
    pending, account = _state(tx_id)
    if account is None:
        return expired_page()
    typed = pending.get("phone")
    if not typed:
        return redirect(url_for("first_number.number", tx_id=tx_id), 303)
    form = CodeForm()
    confirmed, error, status = phone_code_step(account, typed, pending["binding"], form)
    if confirmed:
        return second_factor_done(account, tx_id, pending, "sms")
    return render_template(
        "login/number_code.html",
        form=form,
        tx_id=tx_id,
        error=error,
        phone=mask_phone(typed),
        resend_wait=otp.resend_wait("verify_phone", phone_binding(pending["binding"], typed)),
    ), status


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
