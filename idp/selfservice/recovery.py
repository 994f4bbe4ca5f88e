"""Forgotten password and forgotten username (the help pages' "Mot de passe oublié" and
"Nom d'utilisateur oublié").

Forgotten password (NIST SP 800-63B §6.1.2.3, OWASP ASVS V2.5): the username
→ an e-mail with a reset link (32 random bytes, only its SHA-256 stored,
single use, ``[registration.recovery] reset_link_ttl`` = 30 minutes, built
from the configured issuer) → a new password under the policy. A reset never
logs anyone in: the person goes back to the normal login, where the SMS code
is still asked. Every other session of the account ends, its tokens are
revoked, and the account's address is told.

Forgotten username: card number + date of birth → an SMS code to the number
on file → the username by e-mail.

Both answer the same whether or not anything matched, after the same minimum
time (:func:`idp.challenge.equalize`).
"""

from __future__ import annotations

import logging
import secrets
import time

from flask import Blueprint, Flask, current_app, redirect, render_template, request, session, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_wtf import FlaskForm
from sqlalchemy import BigInteger, ForeignKey, String, delete, select, update
from sqlalchemy.orm import Mapped, mapped_column
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from idp.accounts.customers import match_customer
from idp.accounts.users import find_by_username
from idp.core import audit
from idp.core.hashing import digest
from idp.core.sessions import end_sso
from idp.core.storage import Account, Customer, Grant, SsoSession, db
from idp.login.transaction import remember_tx, remembered_tx
from idp.oidc.tokens import revoke_grant
from idp.selfservice import challenge
from idp.selfservice.forms import CodeForm, IdentifyForm, card_error
from idp.selfservice.rules import check_password, registration_settings
from idp.services.notify import external_url, send_email

log = logging.getLogger(__name__)
bp = Blueprint("recovery", __name__, url_prefix="/recover")

RESET_MAILS_PER_HOUR = 5  # per account: the form cannot be used to flood someone's mailbox
STATE = "forgot_username"


class PasswordReset(db.Model):
    __tablename__ = "password_resets"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    used_at: Mapped[int | None] = mapped_column(BigInteger)


class UsernameForm(FlaskForm):
    username = StringField(validators=[DataRequired(), Length(max=128)])


class NewPasswordForm(FlaskForm):
    password = PasswordField(validators=[DataRequired(), Length(max=1024)])
    password_repeat = PasswordField(validators=[DataRequired(), Length(max=1024)])


def _remember_tx() -> None:

    remember_tx("recovery_tx")


def _login_url(endpoint: str = "login.password") -> str:

    return url_for(endpoint, tx_id=remembered_tx("recovery_tx"))


# ---------------------------------------------------------------------------
# Forgotten password
# ---------------------------------------------------------------------------


@bp.route("/password", methods=["GET", "POST"])
def forgot_password():
    if request.method == "GET":
        _remember_tx()
    form = UsernameForm()
    error = None
    if form.validate_on_submit():
        started = time.monotonic()
        _request_reset(form.username.data)
        challenge.equalize(started)
        return redirect(url_for("recovery.password_sent"), 303)
    if request.method == "POST":
        error = _("Please enter your username.")
    return render_template(
        "recovery/forgot_password.html", form=form, error=error, login_url=_login_url("login.choose")
    ), (400 if error else 200)


def _request_reset(username: str) -> None:
    """Mail a reset link when the account exists and can receive it; the same work otherwise."""
    settings = registration_settings().recovery
    now = challenge.now()
    token = secrets.token_urlsafe(32)
    account = find_by_username(username)
    reason = None
    if account is None or account.status != "active":
        reason = "unknown"
    elif not account.email:
        reason = "no_email"
    elif current_app.extensions["idp.kv"].incr(f"recovery:mails:{account.id}:{now // 3600}", 3700) > (
        RESET_MAILS_PER_HOUR
    ):
        reason = "rate_limited"
    if reason:
        audit.record(
            "password_reset_requested", "failure", account_id=account.id if account else None, reason=reason
        )
        return
    # Earlier links stay valid (the last mail may be slow, or never arrive); using any one
    # of them ends the others. Only expired ones are cleaned up here.
    db.session.execute(
        delete(PasswordReset).where(PasswordReset.account_id == account.id, PasswordReset.expires_at <= now)
    )
    db.session.add(
        PasswordReset(
            token_hash=digest(token),
            account_id=account.id,
            created_at=now,
            expires_at=now + settings.reset_link_ttl,
        )
    )
    db.session.commit()
    link = external_url(url_for("recovery.reset_link", token=token))
    sent = send_email(
        account.email,
        "recovery_password_reset",
        account.locale or str(get_locale()),
        link=link,
        minutes=settings.reset_link_ttl // 60,
        username=account.username,
    )
    audit.record(
        "password_reset_requested",
        "success" if sent else "failure",
        account_id=account.id,
        **({} if sent else {"reason": "mail_failed"}),
    )


@bp.route("/password/sent")
def password_sent():
    return render_template("recovery/password_sent.html")


def _valid_reset(token: str | None) -> tuple[PasswordReset, Account] | None:
    if not token or len(token) > 100:
        return None
    row = db.session.get(PasswordReset, digest(token))
    if row is None or row.used_at is not None or row.expires_at <= challenge.now():
        return None
    account = db.session.get(Account, row.account_id)
    if account is None or account.status != "active":
        return None
    return row, account


@bp.route("/password/reset/<token>")
def reset_link(token: str):
    """The link from the e-mail: keep the token in the session, out of the address bar."""
    if _valid_reset(token) is None:
        audit.record("password_reset_completed", "failure", reason="invalid_link")
        return render_template("recovery/link_invalid.html"), 404
    session["reset_token"] = token
    return redirect(url_for("recovery.new_password"), 303)


@bp.route("/password/new", methods=["GET", "POST"])
def new_password():
    token = session.get("reset_token")
    found = _valid_reset(token)
    if found is None:
        return render_template("recovery/link_invalid.html"), 404
    row, account = found
    form = NewPasswordForm()
    errors: list[str] = []
    if form.validate_on_submit():
        if form.password.data != form.password_repeat.data:
            errors.append(_("The two passwords are not the same."))
        errors += check_password(
            form.password.data, username=account.username or "", email=account.email or ""
        )
        if not errors:
            if not _apply_reset(row.token_hash, account, form.password.data):
                return render_template("recovery/link_invalid.html"), 404
            session.pop("reset_token", None)
            return redirect(url_for("recovery.password_done"), 303)
    elif request.method == "POST":
        errors.append(_("Please enter your new password twice."))
    policy = current_app.extensions["idp.passwords"].settings
    return render_template(
        "recovery/new_password.html", form=form, errors=errors, min_length=policy.min_length
    ), (400 if errors else 200)


def _apply_reset(token_hash: str, account: Account, password: str) -> bool:
    """Use the token (once, atomically), set the password, end every session, tell the owner."""

    now = challenge.now()
    used = db.session.execute(
        update(PasswordReset)
        .where(
            PasswordReset.token_hash == token_hash,
            PasswordReset.used_at.is_(None),
            PasswordReset.expires_at > now,
        )
        .values(used_at=now)
    )
    if used.rowcount != 1:
        db.session.rollback()
        return False
    account.password_hash = current_app.extensions["idp.passwords"].hash(password)
    account.must_change_password = False
    db.session.execute(
        delete(PasswordReset).where(
            PasswordReset.account_id == account.id, PasswordReset.token_hash != token_hash
        )
    )
    db.session.commit()
    live = db.session.scalars(
        select(SsoSession).where(SsoSession.account_id == account.id, SsoSession.ended_at.is_(None))
    ).all()
    for row in live:
        end_sso(row, reason="password_reset")
    # Apps kept logged in with offline_access lose their tokens too: whoever knew the old password is out.
    grants = db.session.scalars(
        select(Grant.id).where(Grant.account_id == account.id, Grant.revoked_at.is_(None))
    )
    for grant_id in grants.all():
        revoke_grant(grant_id, "password_reset")
    db.session.commit()
    audit.record("password_reset_completed", account_id=account.id, sessions_ended=len(live))
    if account.email:
        send_email(
            account.email,
            "recovery_password_changed",
            account.locale or str(get_locale()),
            username=account.username,
            forgot_url=external_url(url_for("recovery.forgot_password")),
        )
    return True


@bp.route("/password/done")
def password_done():
    return render_template("recovery/password_done.html", login_url=_login_url())


# ---------------------------------------------------------------------------
# Forgotten username
# ---------------------------------------------------------------------------


@bp.route("/username", methods=["GET", "POST"])
def forgot_username():
    if request.method == "GET":
        _remember_tx()
    form = IdentifyForm()
    error = None
    if form.validate_on_submit():
        started = time.monotonic()
        _identify(form)
        challenge.equalize(started)
        return redirect(url_for("recovery.username_code"), 303)
    if request.method == "POST":
        error = card_error(form) or _("Please enter your card number and your date of birth.")
    return render_template(
        "recovery/forgot_username.html", form=form, error=error, login_url=_login_url("login.choose")
    ), (400 if error else 200)


def _identify(form: IdentifyForm) -> None:

    customer = match_customer(form.card_number.data, form.birthdate.data)
    account = None
    phone = None
    if customer is not None:
        account = db.session.scalar(
            select(Account).where(Account.customer_id == customer.id, Account.status == "active")
        )
        # The account's own verified number is its authenticator; the record's number otherwise.
        phone = (
            account.phone
            if account is not None and account.phone_verified and account.phone
            else customer.phone
        )
    audit.record(
        "username_reminder_requested",
        "success" if phone else "failure",
        account_id=account.id if account else None,
        reason="matched" if phone else ("no_mobile" if customer else "no_match"),
    )
    challenge.start(
        STATE,
        purpose="forgot_username",
        phone=phone,
        account_id=account.id if account else None,
        data={"customer_id": customer.id if customer else None},
        flow="forgot_username",
    )


@bp.route("/username/code", methods=["GET", "POST"])
def username_code():
    state = challenge.get(STATE)
    if state is None:
        return render_template(
            "error.html",
            title=_("Forgotten username"),
            message=_("This step has expired. Please start again."),
        ), 400
    form = CodeForm()
    error = notice = None
    if form.validate_on_submit():
        answer = challenge.answer_code(STATE, form.code.data)
        if answer.verified:
            _send_username(challenge.get(STATE))
            challenge.drop(STATE)
            return redirect(url_for("recovery.username_sent"), 303)
        if answer.ended:
            return render_template("error.html", title=_("Forgotten username"), message=answer.error), 400
        error, notice = answer.error, answer.notice
    return render_template("recovery/username_code.html", form=form, error=error, notice=notice), (
        400 if error else 200
    )


def _send_username(state: dict) -> None:

    account = db.session.get(Account, state["account_id"]) if state["account_id"] else None
    customer = (
        db.session.get(Customer, state["data"]["customer_id"]) if state["data"]["customer_id"] else None
    )
    lang = (account.locale if account else None) or str(get_locale())
    # The account's address first; the address on the customer record otherwise.
    to = (account.email if account else None) or (customer.email if customer else None)
    if to and account is not None and account.username:
        sent = send_email(
            to,
            "recovery_username",
            lang,
            username=account.username,
            login_url=external_url(url_for("login.choose", tx_id="-")),
            forgot_url=external_url(url_for("recovery.forgot_password")),
        )
        audit.record("username_reminder_sent", "success" if sent else "failure", account_id=account.id)
        return
    if to:
        # No username to give (no account yet, or one made with a contract number): say how to get in.
        sent = send_email(
            to,
            "recovery_username_none",
            lang,
            register_url=external_url(url_for("registration.start")),
            has_account=account is not None,
        )
        audit.record(
            "username_reminder_sent",
            "success" if sent else "failure",
            account_id=account.id if account else None,
            reason="no_username",
        )
    else:
        audit.record(
            "username_reminder_sent", "failure", account_id=account.id if account else None, reason="no_email"
        )


@bp.route("/username/sent")
def username_sent():
    return render_template("recovery/username_sent.html", login_url=_login_url("login.choose"))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
