"""Hosted login pages: the method chooser and the username + password form.

The chooser lists the methods this client allows and that reach the level
the request needs; a method the operator switched off shows the operator's
message instead (for example "this option is no longer available — sign in
with itsme or eID"). The password page answers the same for an unknown user
and a wrong password, with the same cost (a dummy Argon2 verification).
"""

from __future__ import annotations

from flask import Blueprint, Flask, current_app, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from connectors.base import level_rank

from . import audit
from .authorize import get_transaction, login_completed
from .sessions import start_sso
from .storage import Account, db

bp = Blueprint("login", __name__, url_prefix="/login")

NO_TX = "-"  # a login that did not come from a relying party (account pages)
METHOD_ENDPOINTS = {
    "password": "login.password", "itsme": "itsme.start", "eid": "eid.start", "contract": "contract.start",
}


class PasswordForm(FlaskForm):
    username = StringField(validators=[DataRequired(), Length(max=128)])
    password = PasswordField(validators=[DataRequired(), Length(max=1024)])


def method_choices(tx: dict | None) -> list[dict]:
    """Each method the client allows: usable, or switched off with the operator's message."""
    settings = current_app.extensions["idp.settings"]
    lang = str(get_locale())
    allowed = tx["methods"] if tx else [m for m in settings.methods if settings.methods[m].enabled]
    required = tx["required_level"] if tx else "low"
    client = current_app.extensions["idp.clients"].get(tx["client_id"]) if tx else None
    out = []
    for name in allowed:
        m = settings.methods[name]
        messages = m.disabled_message or (client.settings.disabled_methods_message if client else {})
        if not m.enabled:
            if messages:
                out.append({"name": name, "enabled": False,
                            "message": messages.get(lang) or messages.get(settings.default_language)
                            or next(iter(messages.values()))})
            continue
        if level_rank(m.level) < level_rank(required):
            continue
        if METHOD_ENDPOINTS[name] not in current_app.view_functions:
            continue
        out.append({"name": name, "enabled": True, "message": None})
    return out


def load_tx(tx_id: str) -> tuple[dict | None, bool]:
    if tx_id == NO_TX:
        return None, True
    tx = get_transaction(tx_id)
    return tx, tx is not None


def expired_page():
    return render_template(
        "error.html", title=_("This sign-in has expired"),
        message=_("This sign-in took too long or was already used. Please start again from the application."),
    ), 400


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
    return render_template("login/choose.html", tx_id=tx_id, choices=choices, usable=usable, client=client,
                           reason=(tx or {}).get("reason"))


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
    error = None
    if form.validate_on_submit():
        account = authenticate_password(form.username.data, form.password.data)
        client_id = tx["client_id"] if tx else None
        if account is None:
            error = _("The username or password is not correct.")
            audit.record("login", "failure", client_id=client_id, method="password")
        else:
            # The second factor (SMS code) is not configured for this login yet: the
            # session gets the level of a single factor and RPs can require more.
            return complete_login(account, level="low", methods=["password"], amr=["pwd"], tx_id=tx_id,
                                  method="password")
    elif request.method == "POST":
        error = _("Please fill in your username and password.")
    status = 400 if error else 200
    return render_template("login/password.html", form=form, tx_id=tx_id, error=error,
                           service_name=settings.service_name), status


def complete_login(account: Account, *, level: str, methods: list[str], amr: list[str], tx_id: str, method: str):
    """The one way every login method ends: a new SSO session, an audit record, then onward.

    Onward is the relying party's authorization request (or the account page
    when the login did not come from one).
    """
    tx = get_transaction(tx_id) if tx_id != NO_TX else None
    start_sso(account, level=level, methods=methods, amr=amr)
    audit.record("login", account_id=account.id, client_id=tx["client_id"] if tx else None, method=method,
                 level=level)
    return redirect(login_completed(tx_id) if tx else url_for("account.home"), 303)


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

    @app.context_processor
    def _service():
        return {"service_name_global": app.extensions["idp.settings"].service_name}
