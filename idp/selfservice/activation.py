"""First registration by letter and the contract-number login (the MyVivium help page's
"via vos données personnelles").

* An operator issues activation codes for contract numbers:
  ``idp activation issue CONTRACTS.csv --out LETTERS.csv``. Each code is 12
  characters from an unambiguous alphabet (60 bits), kept only as a keyed
  hash, valid ``[registration.letter] code_ttl_days``, single use; issuing
  again for a contract replaces its previous code. The output file is what
  the print shop merges into the letters.
* The customer enters contract number + code at ``/activate`` (attempts per
  contract number limited to ``max_attempts`` per ``lockout`` seconds, the right code
  counting as a try too (parallel submissions never get extra ones), the
  same answer for an unknown contract, a wrong, used or expired code), then
  confirms their mobile by SMS. The code is used up only then, and the
  customer's account is made (or, if they already have one, kept as it is).
* Every later login (``/login/<tx>/contract``): contract number or username →
  an SMS code to the account's verified number → a session at the level the
  operator maps to ``[methods.contract]``. An operator who switches the method
  or the letter path off shows their own message instead.
"""

from __future__ import annotations

import csv
import hmac
import io
import logging
import os
import secrets
import sys
import time
from pathlib import Path

import click
from flask import Blueprint, Flask, current_app, redirect, render_template, request, session, url_for
from flask.cli import AppGroup
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_wtf import FlaskForm
from sqlalchemy import BigInteger, ForeignKey, Integer, String, select, update
from sqlalchemy.orm import Mapped, mapped_column
from wtforms import StringField
from wtforms.validators import DataRequired, Length

from idp.accounts.customers import (
    CsvFileError,
    customer_for_contract,
    exit_with_problems,
    known_contract,
    normalize_contract,
    read_csv_file,
)
from idp.core import audit
from idp.core.hashing import keyed_digest, legacy_key
from idp.core.i18n import localized
from idp.core.phones import PhoneError
from idp.core.storage import Account, Customer, db
from idp.login import lockout
from idp.login.chooser import METHOD_ENDPOINTS, method_choices, other_methods
from idp.login.otp import normalize_number
from idp.login.transaction import load_tx, remember_tx, remembered_tx
from idp.selfservice import challenge
from idp.selfservice.forms import CodeForm
from idp.selfservice.rules import registration_settings

log = logging.getLogger(__name__)
bp = Blueprint("activation", __name__)

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I
CODE_LENGTH = 12
OUTPUT_COLUMNS = (
    "contract_number",
    "customer_number",
    "given_name",
    "family_name",
    "activation_code",
    "expires_on",
)
ACTIVATION = "activation"


class ActivationCode(db.Model):
    """The live activation code of a contract number (at most one)."""

    __tablename__ = "activation_codes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contract_number: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    used_at: Mapped[int | None] = mapped_column(BigInteger)


def new_code() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
    return "-".join(raw[i : i + 4] for i in range(0, CODE_LENGTH, 4))


def normalize_code(code: str) -> str:
    return "".join(c for c in (code or "").upper() if c.isalnum())


def code_hash(contract_number: str, code: str) -> str:
    return keyed_digest("activation-code", normalize_contract(contract_number), normalize_code(code))


def _legacy_code_hash(contract_number: str, code: str) -> str:
    """The hash of letters issued before keys per purpose (they stay valid until they expire)."""
    key = legacy_key("idp-activation-code")
    return keyed_digest("activation-code", normalize_contract(contract_number), normalize_code(code), key=key)


# ---------------------------------------------------------------------------
# Issuing (operator CLI)
# ---------------------------------------------------------------------------


class IssueError(CsvFileError):
    """The contracts file was refused; no code was issued."""


def issue_codes(text: str, ttl_days: int | None = None) -> list[dict[str, str]]:
    """One new code per contract number of the CSV ``text``; all or nothing.

    Returns the rows of the letters file (with the codes in the clear: they
    exist nowhere else).
    """
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames or "contract_number" not in [f.strip().lower() for f in reader.fieldnames]:
        raise IssueError([(1, "header: a contract_number column is required")])
    column = next(f for f in reader.fieldnames if f.strip().lower() == "contract_number")
    problems: list[tuple[int, str]] = []
    wanted: list[tuple[str, Customer]] = []
    seen: dict[str, int] = {}
    for record in reader:
        line = reader.line_num
        contract = normalize_contract(record.get(column) or "")
        if not contract:
            if any((v or "").strip() for v in record.values() if isinstance(v, str)):
                problems.append((line, "contract_number: empty"))
            continue
        if contract in seen:
            problems.append((line, f"contract number {contract} is already on line {seen[contract]}"))
            continue
        seen[contract] = line
        customer = customer_for_contract(contract)
        if customer is None:
            problems.append(
                (line, f"contract number {contract}: no customer holds it (import customers first)")
            )
            continue
        wanted.append((contract, customer))
    if not wanted and not problems:
        problems.append((1, "the file has no contract numbers"))
    if problems:
        raise IssueError(problems)
    days = ttl_days or registration_settings().letter.code_ttl_days
    now = challenge.now()
    expires = now + days * 86400
    out = []
    try:
        for contract, customer in wanted:
            code = new_code()
            row = db.session.scalar(select(ActivationCode).where(ActivationCode.contract_number == contract))
            if row is None:
                row = ActivationCode(contract_number=contract)
                db.session.add(row)
            row.customer_id = customer.id
            row.code_hash = code_hash(contract, code)
            row.created_at = now
            row.expires_at = expires
            row.used_at = None
            out.append(
                {
                    "contract_number": contract,
                    "customer_number": customer.customer_number,
                    "given_name": customer.given_name or "",
                    "family_name": customer.family_name or "",
                    "activation_code": code,
                    "expires_on": time.strftime("%Y-%m-%d", time.gmtime(expires)),
                }
            )
        audit.record("activation_codes_issued", commit=False, count=len(out), days=days)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return out


activation_cli = AppGroup("activation", help="Activation letters for the contract-number login.")


@activation_cli.command("issue")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The letters file for the print shop (CSV; it holds live codes).",
)
@click.option("--days", type=click.IntRange(1, 365), default=None, help="Validity (default: code_ttl_days).")
def issue_command(file: Path, out: Path, days: int | None):
    """Issue a new activation code for every contract number in FILE (CSV with a contract_number column)."""
    if out.exists():
        click.echo(f"{out}: already exists; choose a new file name", err=True)
        sys.exit(1)
    text = read_csv_file(file)
    try:
        rows = issue_codes(text, days)
    except IssueError as exc:
        exit_with_problems(file, exc, "no code was issued")
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=OUTPUT_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    click.echo(
        f"issued {len(rows)} activation code(s) into {out}; earlier codes of these contracts no longer work"
    )


# ---------------------------------------------------------------------------
# Activation pages
# ---------------------------------------------------------------------------


class ActivateForm(FlaskForm):
    contract_number = StringField(validators=[DataRequired(), Length(max=64)])
    activation_code = StringField(validators=[DataRequired(), Length(max=32)])


class MobileForm(FlaskForm):
    mobile = StringField(validators=[DataRequired(), Length(max=40)])


def login_alternatives(tx_id: str) -> list[dict]:

    tx, _ok = load_login_tx(tx_id)
    return [
        {"name": c["name"], "url": url_for(METHOD_ENDPOINTS[c["name"]], tx_id=tx_id)}
        for c in method_choices(tx)
        if c["enabled"] and c["name"] in ("itsme", "eid")
    ]


def load_login_tx(tx_id: str):

    return load_tx(tx_id)


def _tx_id() -> str:

    return remembered_tx("activation_tx")


def _attempt_key(kind: str, value: str) -> str:
    return lockout.key(f"activation:fail:{kind}", typed=value)


@bp.route("/activate", methods=["GET", "POST"])
def activate():
    letter = registration_settings().letter
    if request.method == "GET":
        remember_tx("activation_tx")
    if not letter.enabled:
        message = localized(letter.disabled_message) or _(
            "This step is no longer available. Please register with itsme® or eID."
        )
        tx_id = _tx_id()
        tx, _ok = load_login_tx(tx_id)
        return render_template(
            "activation/disabled.html",
            message=message,
            methods=other_methods(tx, tx_id, "contract"),
            tx_id=tx_id,
        ), 403
    form = ActivateForm()
    error = None
    if form.validate_on_submit():
        error = _check_letter(form.contract_number.data, form.activation_code.data)
        if error is None:
            pending_mobile = (session.get(ACTIVATION) or {}).get("pending_mobile")
            return redirect(
                url_for("activation.activate_mobile" if pending_mobile else "activation.activate_code"), 303
            )
    elif request.method == "POST":
        error = _("Please enter your contract number and your activation code.")
    return render_template("activation/activate.html", form=form, error=error), (400 if error else 200)


def _check_letter(contract_raw: str, code: str) -> str | None:
    """None when the letter is right (and the next step is set up); the one error message otherwise."""
    letter = registration_settings().letter
    kv = current_app.extensions["idp.kv"]
    contract = known_contract(contract_raw)
    # Reserve the try before checking it: parallel guesses never get extra ones.
    tries = kv.incr(_attempt_key("contract", contract), letter.lockout)
    ip_tries = kv.incr(_attempt_key("ip", request.remote_addr or "-"), letter.lockout)
    expected = code_hash(contract, code), _legacy_code_hash(contract, code)
    row = db.session.scalar(select(ActivationCode).where(ActivationCode.contract_number == contract))
    ok = (
        row is not None
        and any([hmac.compare_digest(row.code_hash, e) for e in expected])
        and row.used_at is None
        and row.expires_at > challenge.now()
    )
    if tries > letter.max_attempts or ip_tries > letter.max_attempts * 10:
        audit.record("activation", "failure", method="contract", reason="too_many_attempts")
        return _("Too many attempts. Please try again later or register with itsme® or eID.")
    if not ok:
        audit.record("activation", "failure", method="contract", reason="wrong_letter")
        return _("This contract number and activation code do not match, or the code is no longer valid.")
    # The right code is a try too (no reset): a reset would let parallel submissions of a
    # stolen letter's code each find the counter back at zero.
    customer = db.session.get(Customer, row.customer_id)
    account = db.session.scalar(select(Account).where(Account.customer_id == customer.id))
    if account is not None and account.status != "active":
        audit.record(
            "activation", "failure", account_id=account.id, method="contract", reason="account_disabled"
        )
        return _("This contract number and activation code do not match, or the code is no longer valid.")
    phone = None
    if account is not None and account.phone_verified and account.phone:
        phone = account.phone
    elif customer.phone:
        phone = customer.phone
    data = {"activation_id": row.id, "customer_id": customer.id}
    audit.record("activation", "started", account_id=account.id if account else None, method="contract")
    if phone is None:
        session[ACTIVATION] = {
            "pending_mobile": True,
            "data": data,
            "account_id": account.id if account else None,
        }
        return None
    challenge.start(
        ACTIVATION,
        purpose="activation",
        phone=phone,
        account_id=account.id if account else None,
        data=data,
        flow="activation",
    )
    return None


@bp.route("/activate/mobile", methods=["GET", "POST"])
def activate_mobile():
    """Only when the record has no mobile number: the customer gives one, then confirms it."""

    state = session.get(ACTIVATION)
    if not isinstance(state, dict):
        return _expired()
    if not state.get("pending_mobile"):
        return redirect(url_for("activation.activate_code"), 303)
    form = MobileForm()
    error = None
    if form.validate_on_submit():
        try:
            phone = normalize_number(form.mobile.data)
        except PhoneError:
            error = _("Please enter a valid mobile number.")
        else:
            challenge.start(
                ACTIVATION,
                purpose="activation",
                phone=phone,
                account_id=state["account_id"],
                data=state["data"],
                flow="activation",
            )
            return redirect(url_for("activation.activate_code"), 303)
    return render_template("activation/mobile.html", form=form, error=error), (400 if error else 200)


def _expired():
    return render_template(
        "error.html", title=_("Activation"), message=_("This step has expired. Please start again.")
    ), 400


@bp.route("/activate/code", methods=["GET", "POST"])
def activate_code():
    state = challenge.get(ACTIVATION)
    if state is None or state.get("pending_mobile"):
        return _expired()
    form = CodeForm()
    error = notice = None
    if form.validate_on_submit():
        # The number is the customer's own (a letter matched): a resend tells nothing, so no floor.
        answer = challenge.answer_code(ACTIVATION, form.code.data, equalize_resend=False)
        if answer.verified:
            return _complete_activation(challenge.get(ACTIVATION))
        if answer.ended:
            return render_template("error.html", title=_("Activation"), message=answer.error), 400
        error, notice = answer.error, answer.notice
    return render_template(
        "activation/code.html", form=form, error=error, notice=notice, masked=challenge.masked(state)
    ), (400 if error else 200)


def _complete_activation(state: dict):
    """Use the code up (once, atomically) and make or keep the customer's account."""
    now = challenge.now()
    data = state["data"]
    used = db.session.execute(
        update(ActivationCode)
        .where(
            ActivationCode.id == data["activation_id"],
            ActivationCode.used_at.is_(None),
            ActivationCode.expires_at > now,
        )
        .values(used_at=now)
    )
    challenge.drop(ACTIVATION)
    if used.rowcount != 1:
        db.session.rollback()
        return render_template(
            "error.html",
            title=_("Activation"),
            message=_("This activation code was already used or has expired."),
        ), 400
    customer = db.session.get(Customer, data["customer_id"])
    account = db.session.scalar(select(Account).where(Account.customer_id == customer.id))
    if account is None:
        account = Account(
            sub=secrets.token_hex(16),
            phone=state["phone"],
            phone_verified=True,  # the SMS code proved it
            email=customer.email,
            email_verified=False,  # known to the company, not confirmed by the person
            given_name=customer.given_name,
            family_name=customer.family_name,
            birthdate=customer.birthdate,
            locale=str(get_locale()),
            customer_id=customer.id,
            status="active",
        )
        db.session.add(account)
        created = True
    else:
        created = False
    db.session.commit()
    audit.record("activation", account_id=account.id, method="contract", account_created=created)
    return redirect(url_for("activation.activated"), 303)


@bp.route("/activate/done")
def activated():
    return render_template("activation/done.html", login_url=url_for("contract.start", tx_id=_tx_id()))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.cli.add_command(activation_cli)
