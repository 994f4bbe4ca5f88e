"""Required actions after any login, and the contact and password changes they share with the account pages.

After a login by any method (password, itsme, eID) the person must, before
returning to the relying party: change a password marked for change (for
example after an import), add and confirm an e-mail address (link) and a
mobile number (SMS code) when the account has no verified one, and accept
the current terms. Until then the login waits in the session, bound to its
transaction, and no SSO session exists (:func:`idp.login.complete_login`).

E-mail links are random, stored as SHA-256 digests in the shared store,
single use, valid ``link_ttl`` and built from the configured issuer
(:func:`idp.notify.external_url`); issuing a new link for an account makes
the older one stop working. ``*_verified`` flags change only here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets

from flask import Blueprint, Flask, abort, current_app, redirect, render_template, request, session, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, StringField
from wtforms.validators import DataRequired, Length

from idp.core import audit
from idp.core.phones import PhoneError, mask_phone
from idp.core.storage import Account, db
from idp.login import otp
from idp.login import password as login
from idp.services import notify, queue

log = logging.getLogger(__name__)
bp = Blueprint("actions", __name__, url_prefix="/login")

ORDER = ("password", "email", "phone", "terms")
EMAIL_LINK_TTL = 86400


# ---------------------------------------------------------------------------
# What is required
# ---------------------------------------------------------------------------


def terms_version() -> str | None:
    registration = current_app.extensions["idp.settings"].sections.get("registration")
    return getattr(registration, "terms_version", None) or None


def terms_url() -> str | None:
    registration = current_app.extensions["idp.settings"].sections.get("registration")
    return getattr(registration, "terms_url", None)


def required(account: Account) -> list[str]:
    """The actions this account must complete before a login may go on, in order."""
    todo = []
    if account.must_change_password and account.password_hash:
        todo.append("password")
    if not (account.email and account.email_verified):
        todo.append("email")
    if not (account.phone and account.phone_verified):
        todo.append("phone")
    version = terms_version()
    if version and account.terms_version != version:
        todo.append("terms")
    return todo


def lang_of(account: Account) -> str:
    return account.locale or str(get_locale())


# ---------------------------------------------------------------------------
# Passwords
# ---------------------------------------------------------------------------


def password_problem_messages(codes: list[str]) -> list[str]:
    minimum = current_app.extensions["idp.passwords"].settings.min_length
    texts = {
        "too_short": _("Use at least %(n)d characters.", n=minimum),
        "too_long": _("This password is too long."),
        "common": _("This password is too common: it is one of the first that attackers try."),
        "contains_username": _("Do not use your username in your password."),
        "contains_email": _("Do not use your e-mail address in your password."),
        "contains_service_name": _("Do not use the name of the service in your password."),
    }
    return [texts.get(c, c) for c in codes]


def password_problems(account: Account, new: str, username: str | None = None) -> list[str]:
    passwords = current_app.extensions["idp.passwords"]
    codes = passwords.problems(
        new,
        username=username or account.username or "",
        email=account.email or "",
        service_name=current_app.extensions["idp.settings"].service_name,
    )
    return password_problem_messages(codes)


def set_password(account: Account, new: str, *, reason: str) -> None:
    account.password_hash = current_app.extensions["idp.passwords"].hash(new)
    account.must_change_password = False
    db.session.commit()
    audit.record("password_changed", account_id=account.id, reason=reason)
    notify_email(account, "account_password_changed")


# ---------------------------------------------------------------------------
# E-mail addresses
# ---------------------------------------------------------------------------


def validate_email_address(raw: str) -> str:
    """The normalised address, or ValueError with a message for the person."""
    from email_validator import EmailNotValidError, validate_email

    try:
        return validate_email((raw or "").strip(), check_deliverability=False).normalized
    except EmailNotValidError:
        raise ValueError(_("This is not a valid e-mail address.")) from None


def email_typed_twice(raw: str, repeat: str | None) -> str:
    """The normalised address typed in both fields, or ValueError with a message for the person."""
    address = validate_email_address(raw)
    if address.casefold() != (repeat or "").strip().casefold():
        raise ValueError(_("The two e-mail addresses are not the same."))
    return address


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def send_email_link(account: Account, address: str, *, change: bool) -> bool:
    """Send a confirmation link to ``address``; the newest link of an account is the only valid one."""
    kv = current_app.extensions["idp.kv"]
    token = secrets.token_urlsafe(32)
    digest = _digest(token)
    record = {"account": account.id, "email": address, "exp": otp.now() + EMAIL_LINK_TTL, "change": change}
    kv.set(f"emaillink:{digest}", json.dumps(record).encode(), EMAIL_LINK_TTL)
    kv.set(f"emaillink:account:{account.id}", digest.encode(), EMAIL_LINK_TTL)
    link = notify.external_url(url_for("account.confirm_email", token=token))
    sent = notify.send_email(
        address,
        "account_confirm_email",
        lang_of(account),
        link=link,
        name=account.display_name,
        hours=EMAIL_LINK_TTL // 3600,
    )
    audit.record("email_link_sent", "success" if sent else "failure", account_id=account.id, change=change)
    return sent


def confirm_email(token: str) -> Account | None:
    """Use a confirmation link: the account whose address is now verified, or None."""
    kv = current_app.extensions["idp.kv"]
    digest = _digest(token or "")
    current = kv.get(f"emaillink:account:{_peek_account(kv, digest)}")
    raw = kv.pop(f"emaillink:{digest}")
    if raw is None:
        return None
    record = json.loads(raw)
    account = db.session.get(Account, record["account"])
    if account is None or record["exp"] <= otp.now() or current is None or current.decode() != digest:
        return None
    kv.delete(f"emaillink:account:{account.id}")
    set_email(account, record["email"], actor="user")
    return account


def set_email(account: Account, address: str, *, actor: str) -> None:
    """Make ``address`` the account's verified e-mail address; the old address is told."""
    old = account.email if account.email_verified else None
    account.email = address
    account.email_verified = True
    db.session.commit()
    changed = bool(old) and old.casefold() != address.casefold()
    audit.record("email_changed" if changed else "email_verified", account_id=account.id, actor=actor)
    if changed:
        notify.send_email(
            old, "account_email_changed", lang_of(account), name=account.display_name, new_email=address
        )


def _peek_account(kv, digest: str) -> int | None:
    raw = kv.get(f"emaillink:{digest}")
    return json.loads(raw)["account"] if raw else None


def notify_email(account: Account, template: str, **context) -> None:
    if account.email and account.email_verified:
        notify.send_email(account.email, template, lang_of(account), name=account.display_name, **context)


# ---------------------------------------------------------------------------
# Mobile numbers
# ---------------------------------------------------------------------------


def phone_binding(base: str, number: str) -> str:
    """A code is bound to the number it was sent to: changing the number needs a new code."""
    return f"{base}:{number}"


def send_phone_code(account: Account, number: str, base: str) -> str | None:
    try:
        otp.send_code(
            purpose="verify_phone",
            binding=phone_binding(base, number),
            phone=number,
            account_id=account.id,
            lang=lang_of(account),
        )
    except otp.OtpError as exc:
        return exc.code
    return None


def send_new_phone_code(account: Account, raw: str, base: str) -> tuple[str | None, str | None]:
    """Check a typed mobile number and send it a confirmation code.

    (number, None) when a code is on its way (or one sent moments ago still is);
    (None, message for the person) otherwise.
    """
    try:
        number = otp.normalize_number(raw)
    except PhoneError as exc:
        return None, phone_error_message(exc)
    if number == account.phone and account.phone_verified:
        return None, _("This is already your mobile number.")
    problem = send_phone_code(account, number, base)
    if problem in (None, "resend_too_soon"):
        return number, None
    return None, login.send_error_message(problem)


def confirm_phone(account: Account, number: str, base: str, code: str) -> None:
    """Check the code sent to ``number``; then it is the account's verified number (OtpError otherwise)."""
    otp.check_code(
        purpose="verify_phone", binding=phone_binding(base, number), code=code, account_id=account.id
    )
    set_phone(account, number, actor="user")


def set_phone(account: Account, number: str, *, actor: str) -> None:
    """Make ``number`` the account's verified number; the old number and the e-mail are told."""
    old = account.phone if account.phone_verified else None
    account.phone = number
    account.phone_verified = True
    db.session.commit()
    audit.record(
        "phone_changed" if old and old != number else "phone_verified",
        account_id=account.id,
        to=mask_phone(number),
        actor=actor,
    )
    if old and old != number:
        text = _(
            "Your mobile number for %(service)s was changed to %(number)s. If you did not do this, "
            "contact us at once.",
            service=current_app.extensions["idp.settings"].service_name,
            number=mask_phone(number),
        )
        queue.enqueue("sms", old, {"text": text})
        notify_email(account, "account_phone_changed", number=mask_phone(number))


def phone_code_step(
    account: Account, number: str, base: str, form: FlaskForm
) -> tuple[bool, str | None, int]:
    """One request of a "confirm your mobile number" page: (confirmed, error, HTTP status).

    A POST with ``resend`` sends a new code; a valid ``form`` checks the code
    sent to ``number`` and, when right, makes it the account's verified number.
    """
    if request.method == "POST" and request.form.get("resend"):
        if not FlaskForm().validate_on_submit():
            abort(400)
        return False, login.send_error_message(send_phone_code(account, number, base)), 200
    if form.validate_on_submit():
        try:
            confirm_phone(account, number, base, form.code.data)
        except otp.OtpError as exc:
            return False, login.code_error(exc.code, exc.retry_after), (429 if exc.code == "locked" else 400)
        return True, None, 200
    if request.method == "POST":
        return False, _("Please type the code from the SMS."), 400
    if otp.delivery("verify_phone", phone_binding(base, number)) == "failed":
        return False, login.send_error_message("delivery_failed"), 200
    return False, None, 200


def phone_error_message(exc: PhoneError) -> str:
    return {
        "country_not_allowed": _("We can only send SMS to numbers of the allowed countries."),
        "not_mobile": _("This is not a mobile number: it cannot receive SMS."),
    }.get(exc.code, _("This is not a valid mobile number."))


# ---------------------------------------------------------------------------
# Pages
# ---------------------------------------------------------------------------


class NewPasswordForm(FlaskForm):
    password = PasswordField(validators=[DataRequired(), Length(max=1024)])
    confirm = PasswordField(validators=[DataRequired(), Length(max=1024)])


class EmailForm(FlaskForm):
    email = StringField(validators=[DataRequired(), Length(max=320)])
    confirm = StringField(validators=[DataRequired(), Length(max=320)])


class PhoneForm(FlaskForm):
    phone = StringField(validators=[DataRequired(), Length(max=40)])


class CodeForm(FlaskForm):
    code = StringField(validators=[DataRequired(), Length(max=16)])


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
        return login.finish_login(account, tx_id=tx_id, **final)
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
