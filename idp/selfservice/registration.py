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

import logging
import secrets
import time

from email_validator import EmailNotValidError, validate_email
from flask import Blueprint, Flask, current_app, jsonify, redirect, render_template, request, session, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_wtf import FlaskForm
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from idp.accounts.customers import match_customer
from idp.accounts.users import check_new_username, normalize_username, set_username
from idp.core import audit
from idp.core.i18n import localized
from idp.core.inputs import request_json_object
from idp.core.phones import PhoneError
from idp.core.storage import Account, db
from idp.login.chooser import other_methods
from idp.login.completion import terms_url
from idp.login.otp import normalize_number
from idp.login.transaction import load_tx, remember_tx, remembered_tx
from idp.selfservice import challenge
from idp.selfservice.forms import (
    AccountForm,
    CodeForm,
    ContactForm,
    IdentifyForm,
    OpenIdentifyForm,
    card_error,
)
from idp.selfservice.rules import (
    PendingRegistration,
    check_password,
    registration_settings,
    token_hash,
    username_problem,
)
from idp.services.notify import external_url, send_email

log = logging.getLogger(__name__)
bp = Blueprint("registration", __name__, url_prefix="/register")


# ---------------------------------------------------------------------------
# Settings: the [registration] table (with [registration.letter] and [registration.recovery])
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Pending registrations: waiting for the e-mail confirmation
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Forms: each carries its own fields and nothing else (mass assignment)
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Pages
# ---------------------------------------------------------------------------

STATE = "registration"  # the session key of the flow


def _disabled_page():
    s = registration_settings()
    message = localized(s.disabled_message) or _(
        "Registration is not available here. Please register with itsme® or eID."
    )
    tx_id = remembered_tx("registration_tx")
    tx, _ok = load_tx(tx_id)
    return render_template(
        "registration/disabled.html", message=message, methods=other_methods(tx, tx_id, ""), tx_id=tx_id
    ), 403


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

    remember_tx("registration_tx")


def _login_url() -> str:

    return url_for("login.choose", tx_id=remembered_tx("registration_tx"))


@bp.route("/", methods=["GET", "POST"])
def start():
    s = registration_settings()
    if request.method == "GET":
        _remember_tx()
    if not s.enabled:
        return _disabled_page()
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
        error = card_error(form) or _("Please fill in every field.")
    return render_template("registration/identify.html", form=form, mode=s.mode, error=error), (
        400 if error else 200
    )


def _identify_customer(form: IdentifyForm) -> None:

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
        terms_url=terms_url(),
        terms_version=s.terms_version,
    ), (400 if errors else 200)


def _valid_email(value: str | None) -> str | None:

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
