"""Hosted login pages: the method chooser and the username + password step.

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

from flask import Blueprint, Flask, current_app, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from connectors.password import LocalPasswordConnector, StoredPassword
from idp.accounts import legacy_source, origins
from idp.accounts.users import find_by_username
from idp.core import audit, metrics
from idp.core.storage import Account, db
from idp.login import lockout, otp
from idp.login.chooser import METHOD_ENDPOINTS, alternatives, method_choices
from idp.login.lockout import locked_message
from idp.login.second_factor import start_second_factor
from idp.login.transaction import expired_page, load_tx, throttled, throttled_page

bp = Blueprint("login", __name__, url_prefix="/login")

# Links under the password form, shown when the feature's endpoint exists.
PASSWORD_PAGE_LINKS = (
    ("recovery.forgot_password", _l("Forgot your password?")),
    ("recovery.forgot_username", _l("Forgot your username?")),
    ("registration.start", _l("Register")),
)


class PasswordForm(FlaskForm):
    username = StringField(validators=[DataRequired(), Length(max=128)])
    password = PasswordField(validators=[DataRequired(), Length(max=1024)])


# ---------------------------------------------------------------------------
# Pending logins: the state between the steps, in the server-side session
# ---------------------------------------------------------------------------


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
        (url_for(endpoint, tx=tx_id if tx else None), str(label))
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
        metrics.login_started("password")
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
    key = lockout.password_key(username)
    client_id = tx["client_id"] if tx else None
    now = otp.now()
    try:
        number = lockout.attempt(key, s.password_policy, now)
    except lockout.Locked as exc:
        audit.record("login", "failure", client_id=client_id, method="password", reason="locked")
        return locked_message(exc.retry_after), 429
    try:
        account = authenticate_password(username, password)
    except legacy_source.LegacyUnavailable:
        lockout.failed(key, s.password_policy, now, number)
        audit.record("login", "failure", client_id=client_id, method="password", reason="legacy_unavailable")
        return _(
            "We cannot check accounts of our previous system right now. Please try again in a few "
            "minutes, or log in with itsme or your eID card."
        ), 503
    if account is None:
        locked_for = lockout.failed(key, s.password_policy, now, number)
        audit.record("login", "failure", client_id=client_id, method="password", reason="password")
        if locked_for:
            audit.record("lockout", "failure", method="password", seconds=locked_for)
            return locked_message(locked_for), 429
        return _("The username or password is not correct."), 400
    lockout.succeeded(key, now)
    return account


# ---------------------------------------------------------------------------
# The end of every login
# ---------------------------------------------------------------------------


def authenticate_password(username: str, password: str) -> Account | None:
    """The account if the password is right; the same work is done when it is not.

    A legacy or outdated hash becomes a fresh Argon2id one in the login's own transaction.
    Raises :class:`idp.accounts.legacy_source.LegacyUnavailable` when the name is unknown
    here and the old system, which must be asked, cannot answer.
    """
    if legacy_source.enabled() and find_by_username(username) is None:
        # Unknown here: the old system may know the person (lazy migration), asked once.
        return legacy_source.authenticate(username, password)
    identity = current_app.extensions["idp.password_connector"].login(username, password)
    if identity is None:
        return None
    account = db.session.get(Account, int(identity.subject))
    passwords = current_app.extensions["idp.passwords"]
    if passwords.needs_rehash(account.password_hash):
        account.password_hash = passwords.hash(password)
    origins.note_login(account)
    db.session.commit()
    return account


def _stored_password(username: str) -> StoredPassword | None:
    account = find_by_username(username)
    if account is None:
        return None
    return StoredPassword(str(account.id), account.password_hash if account.status == "active" else None)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.extensions["idp.password_connector"] = LocalPasswordConnector(
        _stored_password,
        app.extensions["idp.passwords"].verify,
        level=app.extensions["idp.settings"].methods["password"].level,
    )
    metrics.add_gauge(
        app, "idp_sms_budget_used", "SMS codes sent today (UTC) against the budget.", otp.budget_used
    )
    metrics.add_gauge(app, "idp_sms_budget_limit", "The global daily SMS budget.", otp.budget_limit)

    @app.context_processor
    def _service():
        return {"service_name_global": app.extensions["idp.settings"].service_name}
