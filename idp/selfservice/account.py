"""The account pages at the provider: profile and contacts, password, username, authenticator app,
sessions and connected apps.

Reached from the portal and the app; every page needs a live SSO session.
Changing the password, username, e-mail address or mobile number, or the
authenticator app, needs a recent full login (two factors or itsme/eID within
``RECENT_LOGIN`` seconds; NIST SP 800-63B §6.1.2); otherwise the person logs
in again and comes back. A new mobile number is confirmed by an SMS code sent
to it, a new e-mail address by a link sent to it, and the old contact is told.
Every change is audited.
"""

from __future__ import annotations

import functools
import secrets
import time

from flask import Blueprint, Flask, abort, current_app, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from wtforms import BooleanField, PasswordField, StringField
from wtforms.validators import DataRequired, Length

from idp.accounts.users import USERNAME_MESSAGES, check_new_username, set_username
from idp.core import audit
from idp.core.phones import mask_phone
from idp.core.retention import end_idle_sessions
from idp.core.sessions import current_sso, end_sso
from idp.core.storage import Account, Consent, Grant, SsoSession, db
from idp.login import actions, contacts, otp, totp
from idp.login.contacts import CodeForm, EmailForm, PhoneForm
from idp.oidc.tokens import revoke_grant
from idp.selfservice import devices

bp = Blueprint("account", __name__, url_prefix="/account")

RECENT_LOGIN = 600
STRONG_METHODS = ("itsme", "eid")


def recent_full_login(row: SsoSession) -> bool:
    now = int(time.time())
    strong = "mfa" in (row.amr or []) or bool(set(row.methods or []) & set(STRONG_METHODS))
    return strong and now - row.auth_time <= RECENT_LOGIN


def _guard(fresh: bool = True):
    """(sso row, account), or a redirect to log in (again) and come back here."""
    sso = current_sso()
    if sso is not None and (not fresh or recent_full_login(sso[0])):
        return sso, None
    session["after_login"] = request.path
    if sso is not None:
        session["login_reason"] = "reauth"
    return None, redirect(url_for("login.choose", tx_id="-"), 303 if request.method == "POST" else 302)


def login_required(fresh: bool = True, form_post: bool = False):
    """flaskr's ``login_required`` for the account pages: the view gets ``(row, account)``
    of the live SSO session before its URL arguments.

    ``fresh`` pages (changing a password, username, number, e-mail) need a recent full
    login, else the person logs in again and comes back. A ``form_post`` action answers
    400 without a session instead of sending the browser to log in.
    """

    def decorate(view):
        @functools.wraps(view)
        def wrapped(**kwargs):
            if form_post:
                sso = current_sso()
                if sso is None:
                    abort(400)
            else:
                sso, back = _guard(fresh)
                if back:
                    return back
            return view(*sso, **kwargs)

        return wrapped

    return decorate


def _csrf_or_400() -> None:
    if not FlaskForm().validate_on_submit():
        abort(400)


@bp.route("/")
@login_required(fresh=False)
def home(row: SsoSession, account: Account):
    now = int(time.time())
    end_idle_sessions(now, account.id)
    sessions = db.session.scalars(
        select(SsoSession)
        .where(
            SsoSession.account_id == account.id, SsoSession.ended_at.is_(None), SsoSession.expires_at > now
        )
        .order_by(SsoSession.created_at.desc())
    ).all()
    return render_template(
        "account/home.html",
        account=account,
        current=row,
        sessions=[
            {
                "row": r,
                "device": devices.describe(r.user_agent),
                "since": devices.when(r.created_at),
                "seen": devices.when(r.last_seen_at),
            }
            for r in sessions
        ],
        apps=connected_apps(account),
        form=FlaskForm(),
        phone=mask_phone(account.phone) if account.phone else None,
        notice=_notice(),
    )


def connected_apps(account: Account) -> list[dict]:
    """The applications this account gave consent to or that hold a live grant (first-party
    applications skip the consent page, so a grant is all they leave), by name."""
    clients = current_app.extensions["idp.clients"]
    ids = set(db.session.scalars(select(Consent.client_id).where(Consent.account_id == account.id)))
    ids |= set(
        db.session.scalars(
            select(Grant.client_id).where(Grant.account_id == account.id, Grant.revoked_at.is_(None))
        )
    )
    apps = [{"client_id": i, "name": clients.get(i).name if clients.get(i) else i} for i in ids]
    return sorted(apps, key=lambda a: a["name"].casefold())


def _notice() -> str | None:
    texts = {
        "password": _("Your password was changed."),
        "password_others": _("Your password was changed and your other sessions were ended."),
        "username": _("Your username was changed."),
        "phone": _("Your mobile number was changed."),
        "email_sent": _("We sent a link to your new address. Your address changes when you open it."),
        "totp_on": _("Your authenticator app is set up."),
        "totp_off": _("Your authenticator app was removed."),
        "others_ended": _("Your other sessions were ended."),
    }
    return texts.get(session.pop("account_notice", None) or "")


def _done(notice: str):
    session["account_notice"] = notice
    return redirect(url_for("account.home"), 303)


# ---------------------------------------------------------------------------
# Sessions and apps
# ---------------------------------------------------------------------------


@bp.route("/sessions/<sid>/end", methods=["POST"])
@login_required(form_post=True)
def end_session(_row: SsoSession, account: Account, sid: str):
    _csrf_or_400()
    target = db.session.get(SsoSession, sid)
    if target is None or target.account_id != account.id:
        abort(404)

    end_sso(target, reason="ended_by_user")
    return redirect(url_for("account.home"), 303)


def end_other_sessions(account: Account, current: SsoSession, reason: str) -> int:

    others = db.session.scalars(
        select(SsoSession).where(
            SsoSession.account_id == account.id, SsoSession.ended_at.is_(None), SsoSession.id != current.id
        )
    ).all()
    for row in others:
        end_sso(row, reason=reason)
    if others:
        audit.record("sessions_ended", account_id=account.id, count=len(others), reason=reason)
    return len(others)


@bp.route("/sessions/end-others", methods=["POST"])
@login_required(form_post=True)
def end_others(row: SsoSession, account: Account):
    _csrf_or_400()
    end_other_sessions(account, row, "ended_by_user")
    return _done("others_ended")


@bp.route("/apps/<client_id>/revoke", methods=["POST"])
@login_required(form_post=True)
def revoke_app(_row: SsoSession, account: Account, client_id: str):
    _csrf_or_400()
    row = db.session.get(Consent, (account.id, client_id))
    grants = db.session.scalars(
        select(Grant).where(
            Grant.account_id == account.id, Grant.client_id == client_id, Grant.revoked_at.is_(None)
        )
    ).all()
    if row is not None or grants:
        if row is not None:
            db.session.delete(row)
        for grant in grants:
            revoke_grant(grant.id, "consent_revoked")
        db.session.commit()
        audit.record("consent_revoked", account_id=account.id, client_id=client_id)
    return redirect(url_for("account.home"), 303)


# ---------------------------------------------------------------------------
# Password and username
# ---------------------------------------------------------------------------


class ChangePasswordForm(FlaskForm):
    current = PasswordField(validators=[DataRequired(), Length(max=1024)])
    password = PasswordField(validators=[DataRequired(), Length(max=1024)])
    confirm = PasswordField(validators=[DataRequired(), Length(max=1024)])
    end_others = BooleanField(default=True)


@bp.route("/password", methods=["GET", "POST"])
@login_required()
def password(row: SsoSession, account: Account):
    form = ChangePasswordForm()
    errors: list[str] = []
    if form.validate_on_submit():
        passwords = current_app.extensions["idp.passwords"]
        if not account.password_hash or not passwords.verify(account.password_hash, form.current.data):
            errors = [_("Your current password is not correct.")]
            audit.record("password_change", "failure", account_id=account.id, reason="current")
        elif form.password.data != form.confirm.data:
            errors = [_("The two new passwords are not the same.")]
        else:
            errors = contacts.password_problems(account, form.password.data)
        if not errors:
            contacts.set_password(account, form.password.data, reason="user")
            if form.end_others.data:
                end_other_sessions(account, row, "password_changed")
                return _done("password_others")
            return _done("password")
    elif request.method == "POST":
        errors = [_("Please fill in every field.")]
    return render_template(
        "account/password.html",
        form=form,
        errors=errors,
        account=account,
        min_length=current_app.extensions["idp.passwords"].settings.min_length,
    ), (400 if errors else 200)


class UsernameForm(FlaskForm):
    username = StringField(validators=[DataRequired(), Length(max=128)])


def username_problem(account: Account, wanted: str) -> str | None:
    problem = check_new_username(wanted, account.id)
    return None if problem is None else str(USERNAME_MESSAGES[problem])


@bp.route("/username", methods=["GET", "POST"])
@login_required()
def username(_row: SsoSession, account: Account):
    form = UsernameForm()
    if request.method == "GET":
        form.username.data = account.username
    error = None
    if form.validate_on_submit():
        wanted = form.username.data.strip()
        error = username_problem(account, wanted)
        if error is None:
            old = account.username
            set_username(account, wanted)
            try:
                db.session.commit()
            except IntegrityError:
                db.session.rollback()
                error = _("This username is already taken. Please choose another.")
            else:
                audit.record("username_changed", account_id=account.id)
                if old != wanted:
                    contacts.notify_email(account, "account_username_changed", username=wanted)
                return _done("username")
    elif request.method == "POST":
        error = _("Please type a username.")
    return render_template("account/username.html", form=form, error=error), (400 if error else 200)


# ---------------------------------------------------------------------------
# Mobile number and e-mail address
# ---------------------------------------------------------------------------


@bp.route("/phone", methods=["GET", "POST"])
@login_required()
def phone(_row: SsoSession, account: Account):
    form = PhoneForm()
    error = None
    if form.validate_on_submit():
        base = session.get("phone_change_binding") or secrets.token_urlsafe(16)
        number, error = contacts.send_new_phone_code(account, form.phone.data, base)
        if number is not None:
            session["phone_change_binding"] = base
            session["phone_change"] = number
            return redirect(url_for("account.phone_code"), 303)
    elif request.method == "POST":
        error = _("Please type your new mobile number.")
    return render_template(
        "account/phone.html",
        form=form,
        error=error,
        account=account,
        phone=mask_phone(account.phone) if account.phone else None,
    ), (400 if error else 200)


@bp.route("/phone/code", methods=["GET", "POST"])
@login_required()
def phone_code(_row: SsoSession, account: Account):
    number, base = session.get("phone_change"), session.get("phone_change_binding")
    if not number or not base:
        return redirect(url_for("account.phone"), 303)
    form = CodeForm()
    confirmed, error, status = contacts.phone_code_step(account, number, base, form)
    if confirmed:
        session.pop("phone_change", None)
        session.pop("phone_change_binding", None)
        return _done("phone")
    wait = otp.resend_wait("verify_phone", contacts.phone_binding(base, number))
    return render_template(
        "account/phone_code.html", form=form, error=error, phone=mask_phone(number), resend_wait=wait
    ), status


@bp.route("/email", methods=["GET", "POST"])
@login_required()
def email(_row: SsoSession, account: Account):
    form = EmailForm()
    error = None
    if form.validate_on_submit():
        try:
            address = contacts.email_typed_twice(form.email.data, form.confirm.data)
        except ValueError as exc:
            error = str(exc)
        else:
            if account.email_verified and (account.email or "").casefold() == address.casefold():
                error = _("This is already your e-mail address.")
            elif contacts.send_email_link(account, address, change=True):
                return _done("email_sent")
            else:
                error = _("We could not send an e-mail to this address. Check it, or try again later.")
    elif request.method == "POST":
        error = _("Please type your new e-mail address twice.")
    return render_template("account/email.html", form=form, error=error, account=account), (
        400 if error else 200
    )


@bp.route("/email/confirm/<token>", methods=["GET", "POST"])
def confirm_email(token: str):
    """The link in the e-mail. A button first, so that mail scanners opening links confirm nothing."""
    form = FlaskForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            abort(400)
        account = contacts.confirm_email(token)
        if account is None:
            return render_template("account/email_confirmed.html", ok=False), 400
        tx_id = actions.pending_for_account(account.id)
        if tx_id is not None:
            return redirect(url_for("actions.next_action", tx_id=tx_id), 303)
        return render_template("account/email_confirmed.html", ok=True, address=account.email)
    return render_template("account/email_confirm.html", form=form)


# ---------------------------------------------------------------------------
# Authenticator app
# ---------------------------------------------------------------------------


@bp.route("/app", methods=["GET", "POST"])
@login_required()
def authenticator(_row: SsoSession, account: Account):
    form = CodeForm()
    error, status = None, 200
    secret = session.get("totp_enrol")
    if request.method == "POST" and request.form.get("start"):
        _csrf_or_400()
        secret = totp.new_secret()
        session["totp_enrol"] = secret
    elif request.method == "POST" and request.form.get("remove"):
        _csrf_or_400()
        if account.totp_secret:
            account.totp_secret = None
            db.session.commit()
            audit.record("totp_removed", account_id=account.id)
            contacts.notify_email(account, "account_totp_changed", enrolled=False)
        return _done("totp_off")
    elif form.validate_on_submit() and secret:
        if totp.check_secret(secret, form.code.data, account.id):
            account.totp_secret = totp.seal(secret)
            db.session.commit()
            session.pop("totp_enrol", None)
            audit.record("totp_enrolled", account_id=account.id)
            contacts.notify_email(account, "account_totp_changed", enrolled=True)
            return _done("totp_on")
        error, status = _("This code is not correct. Type the code your app shows now."), 400
    qr = uri = None
    if secret and not account.totp_secret:
        uri = totp.provisioning_uri(account, secret)
        qr = totp.qr_data_uri(uri)
    return render_template(
        "account/app.html",
        form=form,
        error=error,
        enrolled=bool(account.totp_secret),
        secret=secret if qr else None,
        qr=qr,
        issuer=totp.issuer(),
    ), status


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)

    @app.route("/")
    def index():
        return redirect(url_for("account.home"), 302)
