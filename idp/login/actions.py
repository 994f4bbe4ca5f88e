"""Required actions after any login (password, itsme, eID, contract number).

Before returning to the relying party the person must change a password marked for
change (for example after an import), add and confirm an e-mail address (link) and a
mobile number (SMS code) when the account has no verified one, and accept the current
terms. Until then the login waits in the session, bound to its transaction, and no SSO
session exists (:func:`idp.login.completion.complete_login`). The changes themselves are
:mod:`idp.login.contacts`'s, shared with the account pages.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Flask, abort, current_app, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_wtf import FlaskForm
from wtforms import BooleanField

from idp.core import audit
from idp.core.phones import mask_phone
from idp.core.storage import Account, db
from idp.login import otp
from idp.login import transaction as login
from idp.login.completion import finish_login, required, terms_url, terms_version
from idp.login.contacts import (
    CodeForm,
    EmailForm,
    NewPasswordForm,
    PhoneForm,
    email_typed_twice,
    password_problems,
    phone_binding,
    phone_code_step,
    send_email_link,
    send_new_phone_code,
    set_password,
)

log = logging.getLogger(__name__)
bp = Blueprint("actions", __name__, url_prefix="/login")


# ---------------------------------------------------------------------------
# Pages
# ---------------------------------------------------------------------------


class TermsForm(FlaskForm):
    accept = BooleanField()


def _state(tx_id: str) -> tuple[dict, Account]:
    pending = login.get_pending(tx_id)
    account = login.pending_account(pending)
    if account is None or pending["stage"] != "actions":
        abort(current_app.make_response(login.expired_page()))
    return pending, account


@bp.route("/<tx_id>/actions")
def next_action(tx_id: str):
    pending, account = _state(tx_id)
    todo = required(account)
    if not todo:
        final = pending["final"]
        audit.record("required_actions_done", account_id=account.id)
        return finish_login(account, tx_id=tx_id, **final)
    return redirect(url_for(f"actions.{todo[0]}", tx_id=tx_id), 303)


def _progress(account: Account, current: str) -> dict:
    todo = required(account)
    return {"steps": todo, "current": current}


@bp.route("/<tx_id>/actions/password", methods=["GET", "POST"])
def password(tx_id: str):
    _pending, account = _state(tx_id)
    if "password" not in required(account):
        return redirect(url_for("actions.next_action", tx_id=tx_id), 303)
    form = NewPasswordForm()
    errors: list[str] = []
    if form.validate_on_submit():
        if form.password.data != form.confirm.data:
            errors = [_("The two passwords are not the same.")]
        else:
            errors = password_problems(account, form.password.data)
        if not errors:
            set_password(account, form.password.data, reason="required")
            session.regenerate()
            return redirect(url_for("actions.next_action", tx_id=tx_id), 303)
    elif request.method == "POST":
        errors = [_("Please type your new password twice.")]
    return render_template(
        "actions/password.html",
        form=form,
        tx_id=tx_id,
        errors=errors,
        min_length=current_app.extensions["idp.passwords"].settings.min_length,
        **_progress(account, "password"),
    ), (400 if errors else 200)


@bp.route("/<tx_id>/actions/email", methods=["GET", "POST"])
def email(tx_id: str):
    pending, account = _state(tx_id)
    if "email" not in required(account):
        return redirect(url_for("actions.next_action", tx_id=tx_id), 303)
    form = EmailForm()
    if request.method == "GET" and account.email:
        form.email.data = form.confirm.data = account.email
    error = None
    if form.validate_on_submit():
        try:
            address = email_typed_twice(form.email.data, form.confirm.data)
        except ValueError as exc:
            error = str(exc)
        else:
            if login.throttled("email_link"):
                error = _("Too many attempts from your network. Please wait a minute and try again.")
            elif send_email_link(account, address, change=False):
                pending["email_sent_to"] = address
                login.save_pending(tx_id, pending)
                return redirect(url_for("actions.email_sent", tx_id=tx_id), 303)
            else:
                error = _("We could not send an e-mail to this address. Check it, or try again later.")
    elif request.method == "POST":
        error = _("Please type your e-mail address twice.")
    return render_template(
        "actions/email.html", form=form, tx_id=tx_id, error=error, **_progress(account, "email")
    ), (400 if error else 200)


@bp.route("/<tx_id>/actions/email/sent", methods=["GET", "POST"])
def email_sent(tx_id: str):
    pending, account = _state(tx_id)
    form = FlaskForm()
    if "email" not in required(account):
        return redirect(url_for("actions.next_action", tx_id=tx_id), 303)
    notice = None
    if form.validate_on_submit():
        # "I have clicked the link": not yet, as the account says.
        notice = _("Your address is not confirmed yet. Open the link in the e-mail, then continue.")
        if request.form.get("resend") and pending.get("email_sent_to"):
            if login.throttled("email_link") or not send_email_link(
                account, pending["email_sent_to"], change=False
            ):
                notice = _("We could not send the e-mail again. Please try again later.")
            else:
                notice = _("We sent a new link. Only the newest link works.")
    return render_template(
        "actions/email_sent.html",
        form=form,
        tx_id=tx_id,
        address=pending.get("email_sent_to"),
        notice=notice,
        **_progress(account, "email"),
    )


@bp.route("/<tx_id>/actions/phone", methods=["GET", "POST"])
def phone(tx_id: str):
    pending, account = _state(tx_id)
    if "phone" not in required(account):
        return redirect(url_for("actions.next_action", tx_id=tx_id), 303)
    form = PhoneForm()
    if request.method == "GET" and account.phone:
        form.phone.data = account.phone
    error = None
    if form.validate_on_submit():
        number, error = send_new_phone_code(account, form.phone.data, pending["binding"])
        if number is not None:
            pending["phone"] = number
            login.save_pending(tx_id, pending)
            return redirect(url_for("actions.phone_code", tx_id=tx_id), 303)
    elif request.method == "POST":
        error = _("Please type your mobile number.")
    return render_template(
        "actions/phone.html", form=form, tx_id=tx_id, error=error, **_progress(account, "phone")
    ), (400 if error else 200)


@bp.route("/<tx_id>/actions/phone/code", methods=["GET", "POST"])
def phone_code(tx_id: str):
    pending, account = _state(tx_id)
    number = pending.get("phone")
    if "phone" not in required(account) or not number:
        return redirect(url_for("actions.next_action", tx_id=tx_id), 303)
    form = CodeForm()
    confirmed, error, status = phone_code_step(account, number, pending["binding"], form)
    if confirmed:
        session.regenerate()
        return redirect(url_for("actions.next_action", tx_id=tx_id), 303)
    return render_template(
        "actions/phone_code.html",
        form=form,
        tx_id=tx_id,
        error=error,
        phone=mask_phone(number),
        resend_wait=otp.resend_wait("verify_phone", phone_binding(pending["binding"], number)),
        **_progress(account, "phone"),
    ), status


@bp.route("/<tx_id>/actions/terms", methods=["GET", "POST"])
def terms(tx_id: str):
    _pending, account = _state(tx_id)
    version = terms_version()
    if "terms" not in required(account):
        return redirect(url_for("actions.next_action", tx_id=tx_id), 303)
    form = TermsForm()
    error = None
    if form.validate_on_submit():
        if form.accept.data:
            account.terms_version = version
            db.session.commit()
            audit.record("terms_accepted", account_id=account.id, version=version)
            return redirect(url_for("actions.next_action", tx_id=tx_id), 303)
        error = _("To go on, please accept the terms of use.")
    return render_template(
        "actions/terms.html",
        form=form,
        tx_id=tx_id,
        error=error,
        terms_url=terms_url(),
        version=version,
        first_time=account.terms_version is None,
        **_progress(account, "terms"),
    ), (400 if error else 200)


def pending_for_account(account_id: int) -> str | None:
    """The transaction of this browser's login waiting for ``account_id``'s actions, if any."""
    for tx_id in session.get("pending") or {}:
        p = login.get_pending(tx_id)
        if p and p["account"] == account_id and p["stage"] == "actions":
            return tx_id
    return None


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
