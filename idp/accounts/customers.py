"""Customer records: the company's customers, imported from a CSV file.

``idp customers import FILE.csv`` loads them (see ``docs/account-flows.md``
for the format). Card and national register numbers are stored only as keyed
hashes (:mod:`idp.hashing`), plus the last four digits of the card for
display. The import is idempotent (an upsert by customer number: the record
becomes what the file says) and all or nothing: every line is checked first,
every problem is reported with its line number, and the rows are written in
one transaction, so a bad file changes nothing.

Registration, the forgotten username and the letter activation find
customers here: :func:`match_customer` (card number + date of birth) and
:func:`customer_for_contract`.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import click
from email_validator import EmailNotValidError, validate_email
from flask import Flask
from flask.cli import AppGroup
from sqlalchemy import delete, func, select

from connectors.base import valid_national_number as national_number_ok
from idp.accounts import identifiers
from idp.core import audit
from idp.core.hashing import card_number_hash, national_number_hash
from idp.core.phones import PhoneError, normalize_phone
from idp.core.storage import Customer, CustomerContract, db

COLUMNS = (
    "customer_number",
    "card_number",
    "contract_numbers",
    "given_name",
    "family_name",
    "birthdate",
    "email",
    "mobile",
    "national_number",
)
CONTRACT_SEPARATOR = "|"
_CUSTOMER_NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$")
_CONTRACT = re.compile(r"^[A-Z0-9][A-Z0-9./-]{0,63}$")


class CsvFileError(Exception):
    """A CSV file given to an operator command was refused; ``problems`` are (line, message) pairs."""

    def __init__(self, problems: list[tuple[int, str]]) -> None:
        super().__init__(f"{len(problems)} problem(s)")
        self.problems = problems


class CustomerImportError(CsvFileError):
    """The customer file was refused."""


@dataclass(frozen=True)
class ImportResult:
    created: int
    updated: int


@dataclass
class _Row:
    line: int
    customer_number: str
    card_hash: str | None
    card_last4: str | None
    contracts: list[str]
    given_name: str | None
    family_name: str | None
    birthdate: str | None
    email: str | None
    phone: str | None
    national_hash: str | None


# ---------------------------------------------------------------------------
# Normalisation, shared with the pages that look customers up
# ---------------------------------------------------------------------------


def card_digits(value: str) -> str:
    return "".join(c for c in (value or "") if c.isdigit())


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def valid_card_number(value: str) -> bool:
    raw = (value or "").strip()
    digits = card_digits(raw)
    return bool(re.fullmatch(r"[0-9 -]+", raw)) and 12 <= len(digits) <= 19 and luhn_ok(digits)


def normalize_contract(value: str) -> str:
    return "".join((value or "").split()).upper()


def valid_national_number(value: str) -> bool:
    """A Belgian national register number as written in an import file (dots, dashes, spaces
    allowed): python-stdnum's check (birth date, mod-97 for births before and after 2000)."""
    if not re.fullmatch(r"[0-9 .-]+", value.strip()):
        return False
    return national_number_ok("".join(c for c in value if c.isdigit()))


def match_customer(card_number: str, birthdate: dt.date | None) -> Customer | None:
    """The one customer with this card number and date of birth, or None."""
    if not valid_card_number(card_number) or birthdate is None:
        return None
    identifiers.rekey(card_number=card_digits(card_number))
    rows = db.session.scalars(
        select(Customer).where(
            Customer.card_number_hash == card_number_hash(card_digits(card_number)),
            Customer.birthdate == birthdate.isoformat(),
        )
    ).all()
    return rows[0] if len(rows) == 1 else None


def _compact(value: str) -> str:
    return re.sub(r"[./-]", "", value)


def known_contract(typed: str) -> str:
    """The contract number as stored for what a person typed from a letter.

    Spaces and case never matter (:func:`normalize_contract`); when the exact form is not
    on file, the separators (``. / -``) are ignored too — "ab 12345" finds ``AB-12345`` —
    as long as exactly one stored number matches. Otherwise the normalised input.
    """
    contract = normalize_contract(typed)[:64]
    if not contract or db.session.get(CustomerContract, contract) is not None:
        return contract
    compact = _compact(contract)
    if not compact:
        return contract
    stored = CustomerContract.contract_number
    column = func.replace(func.replace(func.replace(stored, "-", ""), ".", ""), "/", "")
    rows = db.session.scalars(select(stored).where(column == compact).limit(2)).all()
    return rows[0] if len(rows) == 1 else contract


def customer_for_contract(contract_number: str) -> Customer | None:
    row = db.session.get(CustomerContract, known_contract(contract_number))
    return db.session.get(Customer, row.customer_id) if row is not None else None


# ---------------------------------------------------------------------------
# Import
# ---------------------------------------------------------------------------


def _parse_row(line: int, values: dict[str, str], problems: list[tuple[int, str]]) -> _Row | None:

    before = len(problems)

    def bad(message: str) -> None:
        problems.append((line, message))

    number = values["customer_number"]
    if not _CUSTOMER_NUMBER.match(number):
        bad("customer_number: required, up to 64 letters, digits and . _ / -")
    card = values["card_number"]
    card_hash = card_last4 = None
    if card:
        if valid_card_number(card):
            digits = card_digits(card)
            card_hash, card_last4 = card_number_hash(digits), digits[-4:]
        else:
            bad("card_number: not a valid card number (12 to 19 digits with a correct check digit)")
    contracts = _contracts(values["contract_numbers"], bad)
    birthdate, email, phone = _person(values, bad)
    national = values["national_number"]
    national_hash = None
    if national:
        if valid_national_number(national):
            national_hash = national_number_hash("".join(c for c in national if c.isdigit()))
        else:
            bad("national_number: not a valid national register number (11 digits, check digits)")
    for name in ("given_name", "family_name"):
        if len(values[name]) > 200:
            bad(f"{name}: longer than 200 characters")
    if len(problems) > before:
        return None
    return _Row(
        line=line,
        customer_number=number,
        card_hash=card_hash,
        card_last4=card_last4,
        contracts=contracts,
        given_name=values["given_name"] or None,
        family_name=values["family_name"] or None,
        birthdate=birthdate,
        email=email,
        phone=phone,
        national_hash=national_hash,
    )


def _contracts(raw_list: str | None, bad) -> list[str]:
    contracts: list[str] = []
    for raw in (raw_list or "").split(CONTRACT_SEPARATOR):
        contract = normalize_contract(raw)
        if not contract:
            continue
        if not _CONTRACT.match(contract):
            bad(f"contract_numbers: {raw.strip()!r} is not a contract number (letters, digits and . / -)")
        elif contract not in contracts:
            contracts.append(contract)
    return contracts


def _person(values: dict[str, str], bad) -> tuple[str | None, str | None, str | None]:
    """(birthdate, e-mail, mobile) of a row, each checked and normalised; problems go to ``bad``."""
    birthdate = values["birthdate"] or None
    if birthdate:
        try:
            day = dt.date.fromisoformat(birthdate)
            if not (dt.date(1900, 1, 1) <= day <= dt.date.today()) or len(birthdate) != 10:
                raise ValueError
        except ValueError:
            bad(f"birthdate: {birthdate!r} is not a date YYYY-MM-DD between 1900 and today")
    email = values["email"] or None
    if email:
        try:
            email = validate_email(email, check_deliverability=False).normalized
        except EmailNotValidError:
            bad(f"email: {email!r} is not a valid e-mail address")
    phone = values["mobile"] or None
    if phone:
        try:
            phone = normalize_phone(phone, allowed_prefixes=())
        except PhoneError as exc:
            bad("mobile: " + {"not_mobile": "not a mobile number"}.get(exc.code, "not a valid phone number"))
    return birthdate, email, phone


def parse_csv(text: str, delimiter: str = ",") -> list[_Row]:
    """Every row of the file, or :class:`CustomerImportError` with every problem found."""
    problems: list[tuple[int, str]] = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise CustomerImportError([(1, f"not a valid CSV file: {exc}")]) from None
    if header is None:
        raise CustomerImportError([(1, "the file is empty")])
    header = [h.strip().lower() for h in header]
    missing = [c for c in COLUMNS if c not in header]
    unknown = [h for h in header if h not in COLUMNS]
    if missing or unknown or len(set(header)) != len(header):
        msg = "header: expected the columns " + ", ".join(COLUMNS)
        if missing:
            msg += f"; missing: {', '.join(missing)}"
        if unknown:
            msg += f"; unknown: {', '.join(unknown)}"
        raise CustomerImportError([(1, msg)])
    rows: list[_Row] = []
    seen: dict[str, dict[str, int]] = {"customer_number": {}, "card": {}, "national": {}, "contract": {}}
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append((reader.line_num, f"not valid CSV: {exc}"))
            break
        line = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            problems.append((line, f"expected {len(header)} fields, found {len(cells)}"))
            continue
        row = _parse_row(line, {h: c.strip() for h, c in zip(header, cells, strict=True)}, problems)
        if row is None:
            continue
        for kind, keys in (
            ("customer_number", [row.customer_number]),
            ("card", [row.card_hash] if row.card_hash else []),
            ("national", [row.national_hash] if row.national_hash else []),
            ("contract", row.contracts),
        ):
            for key in keys:
                if key in seen[kind]:
                    label = {
                        "card": "card_number",
                        "national": "national_number",
                        "contract": "contract number",
                    }
                    shown = key if kind in ("customer_number", "contract") else "this number"
                    problems.append(
                        (line, f"{label.get(kind, kind)}: {shown} is already on line {seen[kind][key]}")
                    )
                else:
                    seen[kind][key] = line
        rows.append(row)
    if not rows and not problems:
        problems.append((1, "the file has no customers"))
    if problems:
        raise CustomerImportError(sorted(problems))
    return rows


def _check_against_database(rows: list[_Row]) -> None:
    """Numbers that belong to a customer who is not this row's customer."""
    problems = []
    numbers = {r.customer_number for r in rows}
    for row in rows:
        if row.national_hash:
            other = db.session.scalar(
                select(Customer).where(Customer.national_number_hash == row.national_hash)
            )
            if other is not None and other.customer_number not in numbers:
                problems.append(
                    (row.line, f"national_number: already held by customer {other.customer_number}")
                )
        if row.card_hash:
            other = db.session.scalar(
                select(Customer).where(
                    Customer.card_number_hash == row.card_hash, Customer.customer_number.not_in(numbers)
                )
            )
            if other is not None:
                problems.append((row.line, f"card_number: already held by customer {other.customer_number}"))
        for contract in row.contracts:
            holder = customer_for_contract(contract)
            if holder is not None and holder.customer_number not in numbers:
                problems.append(
                    (row.line, f"contract number {contract}: held by customer {holder.customer_number}")
                )
    if problems:
        raise CustomerImportError(problems)


def import_customers(text: str, delimiter: str = ",") -> ImportResult:
    """Upsert every customer of the CSV ``text`` in one transaction, or change nothing."""
    rows = parse_csv(text, delimiter)
    try:
        _check_against_database(rows)
        existing = {
            c.customer_number: c
            for c in db.session.scalars(
                select(Customer).where(Customer.customer_number.in_([r.customer_number for r in rows]))
            )
        }
        # Free the unique numbers first so they can move between customers of this file.
        ids = [c.id for c in existing.values()]  # before new rows join the dict
        if ids:
            db.session.execute(delete(CustomerContract).where(CustomerContract.customer_id.in_(ids)))
            for c in existing.values():
                c.national_number_hash = None
            db.session.flush()
        created = 0
        for row in rows:
            customer = existing.get(row.customer_number)
            if customer is None:
                customer = Customer(customer_number=row.customer_number)
                db.session.add(customer)
                existing[row.customer_number] = customer
                created += 1
            customer.card_number_hash = row.card_hash
            customer.card_last4 = row.card_last4
            customer.given_name = row.given_name
            customer.family_name = row.family_name
            customer.birthdate = row.birthdate
            customer.email = row.email
            customer.phone = row.phone
            customer.national_number_hash = row.national_hash
        db.session.flush()
        for row in rows:
            for contract in row.contracts:
                db.session.add(
                    CustomerContract(contract_number=contract, customer_id=existing[row.customer_number].id)
                )
        result = ImportResult(created=created, updated=len(rows) - created)
        audit.record("customers_imported", commit=False, created=result.created, updated=result.updated)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return result


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------


def read_csv_file(file: Path) -> str:
    """The text of a CSV file named on the command line (UTF-8, BOM dropped); exit 1 otherwise."""
    try:
        return file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        click.echo(f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start})", err=True)
        sys.exit(1)


def exit_with_problems(file: Path, exc: CsvFileError, outcome: str) -> NoReturn:
    """Report every problem of a refused file as ``FILE:LINE: message``, then what did not happen; exit 1."""
    for line, message in exc.problems:
        click.echo(f"{file}:{line}: {message}", err=True)
    click.echo(f"{len(exc.problems)} problem(s); {outcome}", err=True)
    sys.exit(1)


customers_cli = AppGroup("customers", help="Customer records.")


@customers_cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--delimiter", type=click.Choice([",", ";"]), default=",", show_default=True)
def import_command(file: Path, delimiter: str):
    """Load customers from FILE (UTF-8 CSV with a header row); all or nothing."""
    text = read_csv_file(file)
    try:
        result = import_customers(text, delimiter)
    except CustomerImportError as exc:
        exit_with_problems(file, exc, "nothing was imported")
    click.echo(
        f"imported {result.created + result.updated} customer(s): {result.created} new, "
        f"{result.updated} updated"
    )


def init_app(app: Flask) -> None:
    app.cli.add_command(customers_cli)
