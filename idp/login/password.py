"""Hosted login pages: the method chooser, username + password, and the second factor.

The chooser lists the methods this client allows and that reach the level
the request needs; a method the operator switched off shows the operator's
message instead (for example "this option is no longer available — sign in
with itsme or eID").

The password login has two steps (NIST SP 800-63B §5.1.3, §5.2.2):

1. username + password. Unknown user and wrong password get the same page,
   status and cost (a dummy Argon2 verification). Failures count per
   username in :mod:`idp.lockout` (atomically; lockout with growing delays)
   and per IP in the shared store.
2. a one-time code: by SMS to the account's stored, verified number
   (:mod:`idp.otp`), or from the authenticator app (:mod:`idp.totp`). The
   pending first factor lives in the server-side session, bound to the login
   transaction, and the session id changes at each step.

Every login method ends in :func:`complete_login`, which holds the login back
until the account's required actions are done (:mod:`idp.actions`) and only
then starts the SSO session and returns to the relying party.
"""

from __future__ import annotations

import secrets
import time

from flask import Blueprint, Flask, current_app, redirect, render_template, request, session, url_for
from flask_babel import get_locale, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from connectors.base import level_rank
from idp.accounts import passkeys
from idp.accounts.users import normalize_username
from idp.core import audit
from idp.core.i18n import localized
from idp.core.phones import mask_phone
from idp.core.sessions import start_sso
from idp.core.storage import Account, db
from idp.login import actions, lockout, otp, totp
from idp.oidc.authorize import get_transaction, login_completed

bp = Blueprint("login", __name__, url_prefix="/login")

NO_TX = "-"  # a login that did not come from a relying party (account pages)
METHOD_ENDPOINTS = {
    "password": "login.password",
    "itsme": "itsme.start",
    "eid": "eid.start",
    "contract": "contract.start",
    "passkey": "passkey.start",
}
# Links under the password form, shown when the feature's endpoint exists.
PASSWORD_PAGE_LINKS = (
    ("recovery.forgot_password", _l("Forgot your password?")),
    ("recovery.forgot_username", _l("Forgot your username?")),
    ("registration.start", _l("Register")),
)
ALTERNATIVES = ("itsme", "eid")  # unrestricted authenticators offered beside the SMS code


class PasswordForm(FlaskForm):
    username = StringField(validators=[DataRequired(), Length(max=128)])
    password = PasswordField(validators=[DataRequired(), Length(max=1024)])


class CodeForm(FlaskForm):
    code = StringField(validators=[DataRequired(), Length(max=16)])


def method_choices(tx: dict | None) -> list[dict]:
    """Each method the client allows: usable, or switched off with the operator's message."""
    settings = current_app.extensions["idp.settings"]
    allowed = tx["methods"] if tx else [m for m in settings.methods if settings.methods[m].enabled]
    required = tx["required_level"] if tx else "low"
    client = current_app.extensions["idp.clients"].get(tx["client_id"]) if tx else None
    out = []
    for name in allowed:
        m = settings.methods[name]
        messages = m.disabled_message or (client.settings.disabled_methods_message if client else {})
        if not m.enabled:
            if messages and name != "passkey":  # the operator's message is about the other methods
                out.append({"name": name, "enabled": False, "message": localized(messages)})
            continue
        level = settings.method_level(name, client.settings if client else None)
        if level_rank(level) < level_rank(required):
            continue
        if METHOD_ENDPOINTS.get(name) not in current_app.view_functions:
            continue
        out.append({"name": name, "enabled": True, "message": None})
    return out


def load_tx(tx_id: str) -> tuple[dict | None, bool]:
    if tx_id == NO_TX:
        return None, True
    tx = get_transaction(tx_id)
    return tx, tx is not None


def remember_tx(session_key: str) -> None:
    """Keep the live login transaction named by ``?tx=`` under ``session_key``, so that a side
    flow (registration, recovery, activation) can send the person back to it at the end."""
    tx_id = request.args.get("tx")
    if tx_id and get_transaction(tx_id) is not None:
        session[session_key] = tx_id


def remembered_tx(session_key: str) -> str:
    """The transaction kept by :func:`remember_tx` while it is live; :data:`NO_TX` otherwise."""
    tx_id = session.get(session_key)
    if not tx_id or get_transaction(tx_id) is None:
        return NO_TX
    return tx_id


def expired_page():
    return render_template(
        "error.html",
        title=_("This sign-in has expired"),
        message=_("This sign-in took too long or was already used. Please start again from the application."),
    ), 400


def alternatives(tx: dict | None, tx_id: str) -> list[dict]:
    """itsme / eID links of this transaction: always offered beside the SMS code."""
    return [
        {"name": c["name"], "url": url_for(METHOD_ENDPOINTS[c["name"]], tx_id=tx_id)}
        for c in method_choices(tx)
        if c["enabled"] and c["name"] in ALTERNATIVES
    ]


def minutes(seconds: int) -> int:
    return max(1, -(-int(seconds) // 60))


# ---------------------------------------------------------------------------
# Pending logins: the state between the steps, in the server-side session
# ---------------------------------------------------------------------------


def get_pending(tx_id: str) -> dict | None:
    pending = (session.get("pending") or {}).get(tx_id)
    ttl = current_app.extensions["idp.settings"].login_transaction_ttl
    if pending is None or time.time() - pending["at"] > ttl:
        return None
    return pending


def save_pending(tx_id: str, pending: dict) -> None:
    all_pending = dict(session.get("pending") or {})
    all_pending[tx_id] = pending
    for key in [k for k, v in all_pending.items() if k != tx_id and time.time() - v["at"] > 3600]:
        all_pending.pop(key)
    session["pending"] = all_pending


def drop_pending(tx_id: str) -> None:
    all_pending = dict(session.get("pending") or {})
    if all_pending.pop(tx_id, None) is not None:
        session["pending"] = all_pending


def pending_account(pending: dict | None) -> Account | None:
    if pending is None:
        return None
    account = db.session.get(Account, pending["account"])
    return account if account is not None and account.status == "active" else None


def throttled(bucket: str) -> bool:
    """Per-IP fixed window in the shared store (Redis in production): too many POSTs this minute?"""
    limit = otp.settings().login_per_ip_per_minute
    minute = otp.now() // 60
    count = current_app.extensions["idp.kv"].incr(f"rl:{bucket}:{request.remote_addr}:{minute}", 120)
    return count > limit


def throttled_page(template: str, status: int = 429, **context):
    message = _("Too many attempts from your network. Please wait a minute and try again.")
    return render_template(template, error=message, **context), status


# ---------------------------------------------------------------------------
# Pages
# ---------------------------------------------------------------------------


@bp.route("/<tx_id>")
def choose(tx_id: str):
    tx, ok = load_tx(tx_id)
    if not ok:
        return expired_page()
    choices = method_choices(tx)
    for c in choices:
        c["url"] = url_for(METHOD_ENDPOINTS[c["name"]], tx_id=tx_id) if c["enabled"] else None
    usable = [c for c in choices if c["enabled"]]
    client = current_app.extensions["idp.clients"].get(tx["client_id"]) if tx else None
    reason = (tx or {}).get("reason") or (session.pop("login_reason", None) if tx is None else None)
    return render_template(
        "login/choose.html", tx_id=tx_id, choices=choices, usable=usable, client=client, reason=reason
    )


@bp.route("/<tx_id>/password", methods=["GET", "POST"])
def password(tx_id: str):
    tx, ok = load_tx(tx_id)
    if not ok:
        return expired_page()
    settings = current_app.extensions["idp.settings"]
    if not any(c["name"] == "password" and c["enabled"] for c in method_choices(tx)):
        return redirect(url_for("login.choose", tx_id=tx_id), 303)
    form = PasswordForm()
    if request.method == "GET" and tx and tx.get("login_hint"):
        form.username.data = tx["login_hint"][:128]
    links = [
        (url_for(endpoint), str(label))
        for endpoint, label in PASSWORD_PAGE_LINKS
        if endpoint in current_app.view_functions
    ]
    context = {
        "form": form,
        "tx_id": tx_id,
        "service_name": settings.service_name,
        "links": links,
        "alternatives": alternatives(tx, tx_id),
        "passkey": any(c["name"] == "passkey" and c["enabled"] for c in method_choices(tx)),
    }
    error, status = None, 200
    if form.validate_on_submit():
        if throttled("password"):
            return throttled_page("login/password.html", **context)
        outcome = check_password(form.username.data, form.password.data, tx)
        if isinstance(outcome, Account):
            # Set by passkey_login.js when this device can make a passkey: only then is one offered.
            session["passkey_capable"] = request.form.get("passkey_capable") == "1"
            return start_second_factor(
                outcome, tx_id=tx_id, method="password", level=settings.methods["password"].level, amr=["pwd"]
            )
        error, status = outcome
    elif request.method == "POST":
        error, status = _("Please fill in your username and password."), 400
    return render_template("login/password.html", error=error, **context), status


def check_password(username: str, password: str, tx: dict | None) -> Account | tuple[str, int]:
    """The account, or (message, status): the same for unknown users and wrong passwords."""
    s = otp.settings()
    key = f"password:{normalize_username(username)}"[:200]
    client_id = tx["client_id"] if tx else None
    now = otp.now()
    try:
        number = lockout.attempt(key, s.password_policy, now)
    except lockout.Locked as exc:
        audit.record("login", "failure", client_id=client_id, method="password", reason="locked")
        return locked_message(exc.retry_after), 429
    account = authenticate_password(username, password)
    if account is None:
        locked_for = lockout.failed(key, s.password_policy, now, number)
        audit.record("login", "failure", client_id=client_id, method="password", reason="password")
        if locked_for:
            audit.record("lockout", "failure", method="password", seconds=locked_for)
            return locked_message(locked_for), 429
        return _("The username or password is not correct."), 400
    lockout.succeeded(key, now)
    return account


def locked_message(retry_after: int) -> str:
    n = minutes(retry_after)
    return ngettext(
        "Too many failed attempts. Try again in %(num)d minute, or log in with itsme or your eID card.",
        "Too many failed attempts. Try again in %(num)d minutes, or log in with itsme or your eID card.",
        n,
    )


def start_second_factor(account: Account, *, tx_id: str, method: str, level: str, amr: list[str]):
    """The first factor succeeded: on to the SMS code (or the authenticator app).

    Other first factors (the contract number) can use this too. An account
    with neither a verified mobile number nor an authenticator app cannot end
    this login: binding a first number on the strength of a password alone
    would let whoever has the password choose the second factor. The page
    points to itsme / eID (after which a number can be added) and to
    customer service.
    """
    session.regenerate()
    if not account.phone_verified and not account.totp_secret:
        tx, _ok = load_tx(tx_id)
        audit.record("login", "failure", account_id=account.id, method=method, reason="no_second_factor")
        return render_template(
            "login/no_second_factor.html", tx_id=tx_id, alternatives=alternatives(tx, tx_id)
        ), 403
    pending = {
        "account": account.id,
        "at": int(time.time()),
        "stage": "second_factor",
        "binding": secrets.token_urlsafe(16),
        "first": {"method": method, "level": level, "amr": list(amr)},
        "error": None,
    }
    if account.phone_verified and account.phone:
        pending["error"] = send_login_code(account, pending["binding"])
        save_pending(tx_id, pending)
        return redirect(url_for("login.code", tx_id=tx_id), 303)
    save_pending(tx_id, pending)
    return redirect(url_for("login.app_code", tx_id=tx_id), 303)


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


def send_error_message(code: str | None, retry_after: int | None = None) -> str | None:
    messages = {
        "delivery_refused": _(
            "We could not send an SMS to your number. Please log in with itsme, your eID "
            "card or your authenticator app, or contact us."
        ),
        "delivery_unavailable": _(
            "The SMS service is not answering right now. Ask for a new code in a moment, "
            "or log in with itsme, your eID card or your authenticator app."
        ),
        "cap_reached": _(
            "We have sent too many codes for now. Please try again later, or log in with itsme, "
            "your eID card or your authenticator app."
        ),
        "too_many_resends": _(
            "You cannot ask for more codes for this login. Start again, or log in with itsme, "
            "your eID card or your authenticator app."
        ),
        "resend_too_soon": _("Please wait a little before asking for a new code."),
    }
    return messages.get(code) if code else None


@bp.route("/<tx_id>/code", methods=["GET", "POST"])
def code(tx_id: str):
    tx, ok = load_tx(tx_id)
    pending = get_pending(tx_id)
    account = pending_account(pending)
    if not ok or account is None or pending["stage"] != "second_factor":
        return expired_page()
    form = CodeForm()
    error, status = send_error_message(pending.get("error")), 200
    if error:
        pending["error"] = None
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
                error, status = code_error(exc.code, exc.retry_after), (429 if exc.code == "locked" else 400)
            else:
                return second_factor_done(account, tx_id, pending, "sms")
    elif request.method == "POST":
        error, status = _("Please type the code from the SMS."), 400
    wait = otp.resend_wait("login", pending["binding"])
    return render_template(
        "login/code.html",
        form=form,
        tx_id=tx_id,
        error=error,
        phone=mask_phone(account.phone or ""),
        resend_wait=wait,
        resends_left=otp.resends_left("login", pending["binding"]),
        has_app=bool(account.totp_secret),
        alternatives=alternatives(tx, tx_id),
        ttl_minutes=minutes(otp.settings().code_ttl),
    ), status


def code_error(code: str, retry_after: int | None) -> str:
    if code == "locked":
        return locked_message(retry_after or 60)
    # Wrong and expired codes get the same answer.
    return _("This code is not correct or no longer valid. Check the SMS or ask for a new code.")


@bp.route("/<tx_id>/code/resend", methods=["POST"])
def resend(tx_id: str):
    pending = get_pending(tx_id)
    account = pending_account(pending)
    form = FlaskForm()
    if account is None or pending["stage"] != "second_factor" or not form.validate_on_submit():
        return expired_page()
    if not account.phone_verified:
        return redirect(url_for("login.app_code", tx_id=tx_id), 303)
    pending["error"] = send_login_code(account, pending["binding"])
    save_pending(tx_id, pending)
    return redirect(url_for("login.code", tx_id=tx_id), 303)


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


# ---------------------------------------------------------------------------
# The end of every login
# ---------------------------------------------------------------------------


def complete_login(
    account: Account, *, level: str, methods: list[str], amr: list[str], tx_id: str, method: str
):
    """The one way every login method ends: required actions, a new SSO session, an audit record, onward.

    While the account has required actions (:mod:`idp.actions`) the login is
    held in the session, bound to the transaction, and no SSO session exists,
    so the authorization cannot go on; the last action calls :func:`finish_login`.
    """
    session.regenerate()
    todo = actions.required(account)
    if todo:
        save_pending(
            tx_id,
            {
                "account": account.id,
                "at": int(time.time()),
                "stage": "actions",
                "binding": secrets.token_urlsafe(16),
                "final": {"level": level, "methods": list(methods), "amr": list(amr), "method": method},
            },
        )
        audit.record("required_actions", account_id=account.id, method=method, actions=todo)
        return redirect(url_for("actions.next_action", tx_id=tx_id), 303)
    return finish_login(account, level=level, methods=methods, amr=amr, tx_id=tx_id, method=method)


def finish_login(
    account: Account, *, level: str, methods: list[str], amr: list[str], tx_id: str, method: str
):
    tx = get_transaction(tx_id) if tx_id != NO_TX else None
    drop_pending(tx_id)
    start_sso(account, level=level, methods=methods, amr=amr)
    audit.record(
        "login", account_id=account.id, client_id=tx["client_id"] if tx else None, method=method, level=level
    )
    if tx:
        target = login_completed(tx_id)
    else:
        target = session.pop("after_login", None)
        if not (isinstance(target, str) and target.startswith("/") and not target.startswith("//")):
            target = url_for("account.home")
    capable = session.pop("passkey_capable", False)
    if method == "password" and {"sms", "otp"} & set(amr) and capable and _offer_passkey(account):
        # "Next time, sign in with your fingerprint or face": once, then on to the same place.
        session["passkey_offer_next"] = target
        target = url_for("passkey.offer")
    return redirect(target, 303)


def _offer_passkey(account: Account) -> bool:
    return "passkey.offer" in current_app.view_functions and passkeys.should_offer(account)


def authenticate_password(username: str, password: str) -> Account | None:
    """The account if the password is right; the same work is done when it is not."""
    passwords = current_app.extensions["idp.passwords"]
    norm = (username or "").strip().casefold()
    account = db.session.scalar(select(Account).where(Account.username_norm == norm))
    stored = account.password_hash if account is not None and account.status == "active" else None
    if not passwords.verify(stored, password):
        return None
    if passwords.needs_rehash(stored):
        account.password_hash = passwords.hash(password)
        db.session.commit()
    return account


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    actions.init_app(app)

    @app.context_processor
    def _service():
        return {"service_name_global": app.extensions["idp.settings"].service_name}
