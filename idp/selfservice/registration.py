"""Self-registration (the help page's "Comment m'inscrire ?") and the ``[registration]`` settings.

The flow, one page per step, its state in the server-side browser session:

1. identify: card number + date of birth matched to a customer record
   (``mode = "customer"``), or name, date of birth and mobile number
   (``mode = "open"``). The answer is the same whether or not a record
   matched (no enumeration, OWASP ASVS V2.2 / NIST SP 800-63B §5.2.2);
2. an SMS code to the customer's mobile *on file* (the typed one in open mode);
3. username and password (the policy is shown live by ``static/js/password_policy.js``
   calling :func:`password_policy`; paste allowed, ``autocomplete="new-password"``);
4. e-mail twice and the versioned terms;
5. a confirmation link by e-mail (random, stored hashed, ``link_ttl``); following
   it activates the account.

"I never got the link": starting again always works. A customer has at most
one pending registration (a new one replaces the old, whose link stops
working) and at most one account; confirming consumes the pending row
atomically, so a link can never make a second account. Forms carry only
their own fields (mass assignment): verified flags, the customer link and
the terms version are set here, never from the request.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from dataclasses import dataclass, field

from flask import Blueprint, Flask, current_app, jsonify, redirect, render_template, request, session, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from sqlalchemy import BigInteger, Integer, String, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column
from wtforms import BooleanField, DateField, EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Length

from connectors.base import ConfigTable
from idp.accounts.users import USERNAME_MESSAGES, check_new_username, normalize_username, set_username
from idp.core import audit
from idp.core.i18n import localized
from idp.core.inputs import request_json_object
from idp.core.settings import read_messages
from idp.core.storage import Account, db
from idp.selfservice import challenge
from idp.services.notify import external_url, send_email

log = logging.getLogger(__name__)
bp = Blueprint("registration", __name__, url_prefix="/register")

MODES = ("customer", "open")


# ---------------------------------------------------------------------------
# Settings: the [registration] table (with [registration.letter] and [registration.recovery])
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LetterSettings:
    """``[registration.letter]``: first registration with a contract number and a code sent by post."""

    enabled: bool = False
    disabled_message: dict[str, str] = field(default_factory=dict)
    code_ttl_days: int = 60
    max_attempts: int = 5
    lockout: int = 3600  # seconds a contract number stays blocked after max_attempts failures

    @classmethod
    def from_table(cls, t: ConfigTable) -> LetterSettings:
        out = cls(
            enabled=t.bool("enabled", False),
            disabled_message=read_messages(t, "disabled_message"),
            code_ttl_days=t.int("code_ttl_days", 60, min=1, max=365),
            max_attempts=t.int("max_attempts", 5, min=1, max=100),
            lockout=t.int("lockout", 3600, min=60, max=30 * 86400),
        )
        t.finish()
        return out


@dataclass(frozen=True)
class RecoverySettings:
    """``[registration.recovery]``: forgotten password and forgotten username."""

    reset_link_ttl: int = 1800
    # Every forgot-password answer takes at least this long, so that sending the
    # e-mail (only done for existing accounts) does not show in the timing.
    response_time_floor_ms: int = 600

    @classmethod
    def from_table(cls, t: ConfigTable) -> RecoverySettings:
        out = cls(
            reset_link_ttl=t.int("reset_link_ttl", 1800, min=300, max=3600),
            response_time_floor_ms=t.int("response_time_floor_ms", 600, min=0, max=5000),
        )
        t.finish()
        return out


@dataclass(frozen=True)
class RegistrationSettings:
    """``[registration]``."""

    enabled: bool = True
    mode: str = "customer"
    terms_version: str = "2026-01"
    terms_url: str | None = None
    disabled_message: dict[str, str] = field(default_factory=dict)
    link_ttl: int = 86400
    letter: LetterSettings = field(default_factory=LetterSettings)
    recovery: RecoverySettings = field(default_factory=RecoverySettings)

    @classmethod
    def from_table(cls, t: ConfigTable) -> RegistrationSettings:
        terms_url = t.str("terms_url", None)
        if terms_url and not terms_url.startswith(("https://", "http://", "/")):
            t.error("terms_url", "must be an http(s) URL or a path on this server")
        terms_version = t.str("terms_version", "2026-01")
        if terms_version is not None and not (1 <= len(terms_version) <= 32):
            t.error("terms_version", "must be 1 to 32 characters")
        out = cls(
            enabled=t.bool("enabled", True),
            mode=t.str("mode", "customer", choices=MODES),
            terms_version=terms_version or "2026-01",
            terms_url=terms_url,
            disabled_message=read_messages(t, "disabled_message"),
            link_ttl=t.int("link_ttl", 86400, min=300, max=7 * 86400),
            letter=LetterSettings.from_table(t.table("letter")),
            recovery=RecoverySettings.from_table(t.table("recovery")),
        )
        t.finish()
        return out


def registration_settings() -> RegistrationSettings:
    return current_app.extensions["idp.settings"].sections.get("registration") or RegistrationSettings()


# ---------------------------------------------------------------------------
# Pending registrations: waiting for the e-mail confirmation
# ---------------------------------------------------------------------------


class PendingRegistration(db.Model):
    """A registration waiting for its e-mail link. One per customer (or per mobile
    number in open mode): a new one replaces the old, whose link stops working."""

    __tablename__ = "pending_registrations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(96), unique=True)  # "customer:<id>" | "phone:<e164>"
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[int | None] = mapped_column(Integer)
    username: Mapped[str] = mapped_column(String(128))
    username_norm: Mapped[str] = mapped_column(String(128), index=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    email: Mapped[str] = mapped_column(String(320))
    phone: Mapped[str] = mapped_column(String(32))
    given_name: Mapped[str | None] = mapped_column(String(200))
    family_name: Mapped[str | None] = mapped_column(String(200))
    birthdate: Mapped[str | None] = mapped_column(String(10))
    locale: Mapped[str | None] = mapped_column(String(8))
    terms_version: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def username_problem(username: str, owner: str | None = None) -> str | None:
    """Why this username cannot be chosen (the accounts' rule, or a live pending registration's name)."""
    problem = check_new_username(username)
    if problem is not None:
        return str(USERNAME_MESSAGES[problem])
    other = db.session.scalar(
        select(PendingRegistration.id).where(
            PendingRegistration.username_norm == normalize_username(username),
            PendingRegistration.expires_at > challenge.now(),
            PendingRegistration.owner != (owner or ""),
        )
    )
    if other is not None:
        return str(USERNAME_MESSAGES["taken"])
    return None


PROBLEM_MESSAGES = {
    "too_short": _l("Use at least %(min)s characters."),
    "too_long": _l("Use at most %(max)s characters."),
    "common": _l("This password is too common: attackers try it first. Choose another one."),
    "contains_username": _l("The password must not contain your username."),
    "contains_email": _l("The password must not contain your e-mail address."),
    "contains_service_name": _l("The password must not contain the name of the service."),
}


def password_problem_messages(problems: list[str]) -> list[str]:
    """The reasons a password is refused, in the person's language (NIST SP 800-63B §5.1.1.2)."""
    policy = current_app.extensions["idp.passwords"].settings
    out = []
    for code in problems:
        message = PROBLEM_MESSAGES.get(code)
        out.append(str(message) % {"min": policy.min_length, "max": policy.max_length} if message else code)
    return out


def check_password(password: str, *, username: str = "", email: str = "") -> list[str]:
    settings = current_app.extensions["idp.settings"]
    problems = current_app.extensions["idp.passwords"].problems(
        password or "", username=username or "", email=email or "", service_name=settings.service_name
    )
    return password_problem_messages(problems)


# ---------------------------------------------------------------------------
# Forms: each carries its own fields and nothing else (mass assignment)
# ---------------------------------------------------------------------------


class IdentifyForm(FlaskForm):
    card_number = StringField(validators=[DataRequired(), Length(max=32)])
    birthdate = DateField(validators=[DataRequired()])


class OpenIdentifyForm(FlaskForm):
    given_name = StringField(validators=[DataRequired(), Length(max=200)])
    family_name = StringField(validators=[DataRequired(), Length(max=200)])
    birthdate = DateField(validators=[DataRequired()])
    mobile = StringField(validators=[DataRequired(), Length(max=40)])


class CodeForm(FlaskForm):
    code = StringField(validators=[Length(max=16)])


class AccountForm(FlaskForm):
    username = StringField(validators=[DataRequired(), Length(max=128)])
    password = PasswordField(validators=[DataRequired(), Length(max=1024)])
    password_repeat = PasswordField(validators=[DataRequired(), Length(max=1024)])


class ContactForm(FlaskForm):
    email = EmailField(validators=[DataRequired(), Length(max=320)])
    email_repeat = EmailField(validators=[DataRequired(), Length(max=320)])
    accept_terms = BooleanField()


# ---------------------------------------------------------------------------
# Pages
# ---------------------------------------------------------------------------

STATE = "registration"  # the session key of the flow


def _disabled_page():
    s = registration_settings()
    message = localized(s.disabled_message) or _(
        "Registration is not available here. Please register with itsme® or eID."
    )
    return render_template("registration/disabled.html", message=message), 403


def _state(step: str | None = None) -> dict | None:
    """The flow's state when the person is at ``step`` (verified code for the later steps)."""
    state = challenge.get(STATE)
    if state is None:
        return None
    if step in ("account", "contact") and not state.get("verified"):
        return None
    if step == "contact" and "password_hash" not in state["data"]:
        return None
    return state


def _restart(message: str | None = None):
    return render_template(
        "error.html",
        title=_("Registration"),
        message=message or _("This registration step has expired. Please start again."),
    ), 400


def _remember_tx() -> None:
    from idp.login.password import remember_tx

    remember_tx("registration_tx")


def _login_url() -> str:
    from idp.login.password import remembered_tx

    return url_for("login.choose", tx_id=remembered_tx("registration_tx"))


@bp.route("/", methods=["GET", "POST"])
def start():
    s = registration_settings()
    if not s.enabled:
        return _disabled_page()
    if request.method == "GET":
        _remember_tx()
    form = OpenIdentifyForm() if s.mode == "open" else IdentifyForm()
    error = None
    if form.validate_on_submit():
        started = time.monotonic()
        if s.mode == "open":
            error = _identify_open(form)
        else:
            _identify_customer(form)
        if error is None:
            challenge.equalize(started)
            return redirect(url_for("registration.code"), 303)
    elif request.method == "POST":
        error = _("Please fill in every field.")
    return render_template("registration/identify.html", form=form, mode=s.mode, error=error), (
        400 if error else 200
    )


def _identify_customer(form: IdentifyForm) -> None:
    from idp.accounts.customers import match_customer

    customer = match_customer(form.card_number.data, form.birthdate.data)
    phone = customer.phone if customer is not None else None
    data = {"customer_id": customer.id if customer else None}
    if customer is not None:
        data.update(
            given_name=customer.given_name,
            family_name=customer.family_name,
            birthdate=customer.birthdate,
            email_on_file=customer.email,
        )
    reason = "matched" if phone else ("no_mobile" if customer else "no_match")
    audit.record(
        "registration_started",
        "success" if phone else "failure",
        method="customer",
        reason=reason,
        customer_id=data["customer_id"],
    )
    challenge.start(STATE, purpose="register", phone=phone, data=data, flow="registration")


def _identify_open(form: OpenIdentifyForm) -> str | None:
    from idp.core.phones import PhoneError
    from idp.login.otp import normalize_number

    try:
        phone = normalize_number(form.mobile.data)
    except PhoneError:
        return _("Please enter a valid mobile number.")
    data = {
        "customer_id": None,
        "given_name": form.given_name.data.strip(),
        "family_name": form.family_name.data.strip(),
        "birthdate": form.birthdate.data.isoformat(),
    }
    audit.record("registration_started", method="open", reason="open")
    challenge.start(STATE, purpose="register", phone=phone, data=data, flow="registration")
    return None


@bp.route("/code", methods=["GET", "POST"])
def code():
    state = _state()
    if state is None:
        return _restart()
    if state.get("verified"):
        return redirect(url_for("registration.account"), 303)
    form = CodeForm()
    error = notice = None
    if form.validate_on_submit():
        answer = challenge.answer_code(STATE, form.code.data)
        if answer.verified:
            return _code_verified(challenge.get(STATE))
        if answer.ended:
            return _restart(answer.error)
        error, notice = answer.error, answer.notice
    return render_template(
        "registration/code.html",
        form=form,
        error=error,
        notice=notice,
        open_mode=state["data"].get("customer_id") is None and registration_settings().mode == "open",
    ), (400 if error else 200)


def _code_verified(state: dict):
    customer_id = state["data"].get("customer_id")
    if customer_id is not None:
        existing = db.session.scalar(select(Account.id).where(Account.customer_id == customer_id))
        if existing is not None:
            challenge.drop(STATE)
            audit.record("registration_started", "failure", account_id=existing, reason="already_registered")
            return render_template("registration/already.html")
    # Starting again (say, the link never came) ends the previous registration's link now.
    owner = _owner(state)
    db.session.execute(delete(PendingRegistration).where(PendingRegistration.owner == owner))
    db.session.commit()
    return redirect(url_for("registration.account"), 303)


def _owner(state: dict) -> str:
    customer_id = state["data"].get("customer_id")
    return f"customer:{customer_id}" if customer_id is not None else f"phone:{state['phone']}"


@bp.route("/account", methods=["GET", "POST"])
def account():
    state = _state("account")
    if state is None:
        return _restart()
    form = AccountForm()
    errors: list[str] = []
    if form.validate_on_submit():
        username = form.username.data.strip()
        problem = username_problem(username, _owner(state))
        if problem:
            errors.append(problem)
        if form.password.data != form.password_repeat.data:
            errors.append(_("The two passwords are not the same."))
        errors += check_password(
            form.password.data, username=username, email=state["data"].get("email_on_file") or ""
        )
        if not errors:
            state["data"]["username"] = username
            state["data"]["password_hash"] = current_app.extensions["idp.passwords"].hash(form.password.data)
            session[STATE] = state
            return redirect(url_for("registration.contact"), 303)
    elif request.method == "POST":
        errors.append(_("Please choose a username and a password."))
    elif state["data"].get("username"):
        form.username.data = state["data"]["username"]
    policy = current_app.extensions["idp.passwords"].settings
    return render_template(
        "registration/account.html",
        form=form,
        errors=errors,
        min_length=policy.min_length,
        max_length=policy.max_length,
    ), (400 if errors else 200)


@bp.route("/contact", methods=["GET", "POST"])
def contact():
    state = _state("contact")
    if state is None:
        return _restart()
    s = registration_settings()
    form = ContactForm()
    errors: list[str] = []
    if form.validate_on_submit():
        email = _valid_email(form.email.data)
        if email is None:
            errors.append(_("Please enter a valid e-mail address."))
        elif (_valid_email(form.email_repeat.data) or "").casefold() != email.casefold():
            errors.append(_("The two e-mail addresses are not the same."))
        if not form.accept_terms.data:
            errors.append(_("Please accept the terms and conditions."))
        if not errors:
            if _send_link(state, email):
                challenge.drop(STATE)
                session["registration_email"] = email
                return redirect(url_for("registration.sent"), 303)
            errors.append(_("We could not send the e-mail. Please check the address or try again later."))
    elif request.method == "POST":
        errors.append(_("Please enter your e-mail address twice and accept the terms and conditions."))
    return render_template(
        "registration/contact.html",
        form=form,
        errors=errors,
        terms_url=s.terms_url,
        terms_version=s.terms_version,
    ), (400 if errors else 200)


def _valid_email(value: str | None) -> str | None:
    from email_validator import EmailNotValidError, validate_email

    try:
        return validate_email((value or "").strip(), check_deliverability=False).normalized
    except EmailNotValidError:
        return None


def _send_link(state: dict, email: str) -> bool:
    """Replace the owner's pending registration by this one and mail its link."""
    s = registration_settings()
    data = state["data"]
    token = secrets.token_urlsafe(32)
    now = challenge.now()
    owner = _owner(state)
    db.session.execute(delete(PendingRegistration).where(PendingRegistration.owner == owner))
    db.session.execute(delete(PendingRegistration).where(PendingRegistration.expires_at <= now))
    db.session.add(
        PendingRegistration(
            owner=owner,
            token_hash=token_hash(token),
            customer_id=data.get("customer_id"),
            username=data["username"],
            username_norm=normalize_username(data["username"]),
            password_hash=data["password_hash"],
            email=email,
            phone=state["phone"],
            given_name=data.get("given_name"),
            family_name=data.get("family_name"),
            birthdate=data.get("birthdate"),
            locale=str(get_locale()),
            terms_version=s.terms_version,
            created_at=now,
            expires_at=now + s.link_ttl,
        )
    )
    try:
        db.session.commit()
    except IntegrityError:  # the same person, twice at once: the other request won
        db.session.rollback()
        return False
    link = external_url(url_for("registration.confirm", token=token))
    sent = send_email(
        email,
        "registration_confirm",
        str(get_locale()),
        link=link,
        hours=max(1, s.link_ttl // 3600),
        username=data["username"],
    )
    audit.record(
        "registration_link_sent", "success" if sent else "failure", customer_id=data.get("customer_id")
    )
    return sent


@bp.route("/sent")
def sent():
    return render_template("registration/sent.html", email=session.get("registration_email"))


@bp.route("/confirm/<token>", methods=["GET", "POST"])
def confirm(token: str):
    """The link from the e-mail. GET only shows a button: mail scanners that fetch
    links must not use up the single-use token."""
    pending = _pending_for(token)
    if pending is None:
        audit.record("registration_completed", "failure", reason="invalid_link")
        return render_template("registration/link_invalid.html"), 404
    form = FlaskForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            return _restart(_("Please try again."))
        return _activate(pending)
    return render_template("registration/confirm.html", form=form, username=pending.username)


def _pending_for(token: str) -> PendingRegistration | None:
    if not token or len(token) > 100:
        return None
    row = db.session.scalar(
        select(PendingRegistration).where(PendingRegistration.token_hash == token_hash(token))
    )
    if row is None or row.expires_at <= challenge.now():
        return None
    return row


def _activate(pending: PendingRegistration):
    """Consume the pending row (exactly one request can) and make the account."""
    data = {
        c: getattr(pending, c)
        for c in (
            "id",
            "customer_id",
            "username",
            "password_hash",
            "email",
            "phone",
            "given_name",
            "family_name",
            "birthdate",
            "locale",
            "terms_version",
        )
    }
    consumed = db.session.execute(delete(PendingRegistration).where(PendingRegistration.id == data["id"]))
    if consumed.rowcount != 1:
        db.session.rollback()
        return render_template("registration/link_invalid.html"), 404
    if data["customer_id"] is not None and db.session.scalar(
        select(Account.id).where(Account.customer_id == data["customer_id"])
    ):
        db.session.commit()
        audit.record("registration_completed", "failure", reason="already_registered")
        return render_template("registration/already.html"), 409
    account = Account(
        sub=secrets.token_hex(16),
        password_hash=data["password_hash"],
        email=data["email"],
        email_verified=True,  # the link proved it
        phone=data["phone"],
        phone_verified=True,  # the SMS code proved it
        given_name=data["given_name"],
        family_name=data["family_name"],
        birthdate=data["birthdate"],
        locale=data["locale"],
        customer_id=data["customer_id"],
        terms_version=data["terms_version"],
        status="active",
    )
    set_username(account, data["username"])
    try:
        if check_new_username(data["username"]) is not None:  # taken or a look-alike meanwhile
            raise IntegrityError("username", None, Exception("taken meanwhile"))
        db.session.add(account)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        audit.record("registration_completed", "failure", reason="username_taken")
        return _restart(
            _("Someone took this username in the meantime. Please register again with another one.")
        )
    audit.record("registration_completed", account_id=account.id, customer_id=data["customer_id"])
    return redirect(url_for("registration.welcome"), 303)


@bp.route("/welcome")
def welcome():
    return render_template("registration/welcome.html", login_url=_login_url())


@bp.route("/password-policy", methods=["POST"])
def password_policy():
    """The live policy check behind ``static/js/password_policy.js`` (CSRF header required)."""
    body = request_json_object() or {}
    password = body.get("password") if isinstance(body.get("password"), str) else ""
    username = body.get("username") if isinstance(body.get("username"), str) else ""
    email = body.get("email") if isinstance(body.get("email"), str) else ""
    problems = check_password(password[:2048], username=username[:128], email=email[:320])
    return jsonify(ok=not problems, problems=problems)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
