"""The contract-number login (``/login/<tx>/contract``): contract number or username →
an SMS code to the account's verified number → a session at the level the operator maps
to ``[methods.contract]``. Accounts get here through an activation letter
(:mod:`idp.selfservice.activation`). An operator who switches the method off shows their
own message instead.
"""

from __future__ import annotations

import time

from flask import Blueprint, Flask, current_app, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import StringField
from wtforms.validators import DataRequired, Length

from idp.accounts.customers import (
    customer_for_contract,
)
from idp.accounts.users import find_by_username
from idp.core import audit
from idp.core.i18n import localized
from idp.core.storage import Account, db
from idp.login.chooser import method_choices, other_methods
from idp.login.completion import complete_login
from idp.login.transaction import expired_page
from idp.selfservice import challenge
from idp.selfservice.activation import load_login_tx, login_alternatives
from idp.selfservice.forms import CodeForm
from idp.selfservice.rules import registration_settings

bp = Blueprint("contract", __name__)


class IdentifierForm(FlaskForm):
    identifier = StringField(validators=[DataRequired(), Length(max=128)])


def _login_state_key(tx_id: str) -> str:
    return f"contract_login:{tx_id}"


def _method_gate(tx_id: str):
    """None when the contract login may be used here; the page to show otherwise."""

    tx, ok = load_login_tx(tx_id)
    if not ok:
        return expired_page()
    method = current_app.extensions["idp.settings"].methods["contract"]
    if not method.enabled:
        message = localized(method.disabled_message) or _(
            "This option is no longer available. Log in easily and securely with itsme® or eID."
        )
        return render_template(
            "activation/disabled.html",
            message=message,
            methods=other_methods(tx, tx_id, "contract"),
            tx_id=tx_id,
        ), 403
    if not any(c["name"] == "contract" and c["enabled"] for c in method_choices(tx)):
        return redirect(url_for("login.choose", tx_id=tx_id), 303)
    return None


@bp.route("/login/<tx_id>/contract", methods=["GET", "POST"])
def start(tx_id: str):
    gate = _method_gate(tx_id)
    if gate is not None:
        return gate
    form = IdentifierForm()
    error = None
    if form.validate_on_submit():
        started = time.monotonic()
        account = _account_for(form.identifier.data)
        phone = account.phone if account is not None else None
        challenge.start(
            _login_state_key(tx_id),
            purpose="contract_login",
            phone=phone,
            account_id=account.id if account else None,
            flow="contract_login",
        )
        challenge.equalize(started)
        return redirect(url_for("contract.code", tx_id=tx_id), 303)
    if request.method == "POST":
        error = _("Please enter your contract number or your username.")
    letter = registration_settings().letter
    return render_template(
        "activation/login.html", form=form, tx_id=tx_id, error=error, letter_enabled=letter.enabled
    ), (400 if error else 200)


def _account_for(identifier: str) -> Account | None:
    """The account behind a contract number or a username, if it can receive the SMS code."""

    customer = customer_for_contract(identifier)
    account = None
    if customer is not None:
        account = db.session.scalar(select(Account).where(Account.customer_id == customer.id))
    if account is None:
        account = find_by_username(identifier)
    if account is None or account.status != "active" or not (account.phone and account.phone_verified):
        return None
    return account


@bp.route("/login/<tx_id>/contract/code", methods=["GET", "POST"])
def code(tx_id: str):

    gate = _method_gate(tx_id)
    if gate is not None:
        return gate
    key = _login_state_key(tx_id)
    state = challenge.get(key)
    if state is None:
        return redirect(url_for("contract.start", tx_id=tx_id), 303)
    form = CodeForm()
    error = notice = None
    tx, _ok = load_login_tx(tx_id)
    client_id = tx["client_id"] if tx else None
    if form.validate_on_submit():
        answer = challenge.answer_code(key, form.code.data)
        error, notice = answer.error, answer.notice
        if answer.verified:
            challenge.drop(key)
            account = db.session.get(Account, state["account_id"])
            if account is not None and account.status == "active":
                level = current_app.extensions["idp.settings"].methods["contract"].level
                return complete_login(
                    account,
                    level=level,
                    methods=["contract", "sms"],
                    amr=["sms"],
                    tx_id=tx_id,
                    method="contract",
                )
            error = _("This step has expired. Please start again.")
        if not answer.resent:
            audit.record(
                "login", "failure", account_id=state["account_id"], client_id=client_id, method="contract"
            )
            if challenge.get(key) is None:
                return render_template("error.html", title=_("Log in"), message=error), 400
    return render_template(
        "activation/login_code.html",
        form=form,
        tx_id=tx_id,
        error=error,
        notice=notice,
        alternatives=login_alternatives(tx_id),
    ), (400 if error else 200)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
