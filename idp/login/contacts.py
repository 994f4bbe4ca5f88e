"""Changing an account's password, e-mail address and mobile number: the steps that the
required actions after a login and the account pages share.

An e-mail address is confirmed by a link (single use, its token kept only as a digest
in the shared store); a mobile number by an SMS code bound to the number and the page
that asked. ``*_verified`` flags change only here, and the old contact is told.
"""

from __future__ import annotations

import json
import logging
import secrets

from email_validator import EmailNotValidError, validate_email
from flask import abort, current_app, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from idp.core import audit, hashing
from idp.core.phones import PhoneError, mask_phone
from idp.core.storage import Account, db
from idp.login import otp
from idp.login.otp import code_error, send_error_message
from idp.services import notify, queue

log = logging.getLogger(__name__)

EMAIL_LINK_TTL = 86400


def lang_of(account: Account) -> str:
    return account.locale or str(get_locale())


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


def validate_email_address(raw: str) -> str:
    """The normalised address, or ValueError with a message for the person."""

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


def send_email_link(account: Account, address: str, *, change: bool) -> bool:
    """Send a confirmation link to ``address``; the newest link of an account is the only valid one."""
    kv = current_app.extensions["idp.kv"]
    token = secrets.token_urlsafe(32)
    digest = hashing.digest(token)
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
    digest = hashing.digest(token or "")
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
    return None, send_error_message(problem)


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
        return False, send_error_message(send_phone_code(account, number, base)), 200
    if form.validate_on_submit():
        try:
            confirm_phone(account, number, base, form.code.data)
        except otp.OtpError as exc:
            return False, code_error(exc.code, exc.retry_after), (429 if exc.code == "locked" else 400)
        return True, None, 200
    if request.method == "POST":
        return False, _("Please type the code from the SMS."), 400
    if otp.delivery("verify_phone", phone_binding(base, number)) == "failed":
        return False, send_error_message("delivery_failed"), 200
    return False, None, 200


def phone_error_message(exc: PhoneError) -> str:
    return {
        "country_not_allowed": _("We can only send SMS to numbers of the allowed countries."),
        "not_mobile": _("This is not a mobile number: it cannot receive SMS."),
    }.get(exc.code, _("This is not a valid mobile number."))


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
