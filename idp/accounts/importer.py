"""``idp users import FILE``: accounts from the old system, with the password hashes it stored.

The file is CSV (header row) or JSON lines (one object per line); the fields
are in :data:`FIELDS` and ``docs/migration.md``. The import is:

* all or nothing: every line is checked first and every problem reported as
  ``FILE:LINE: field: reason``; the rows are then written in one transaction;
* idempotent, an upsert by username (compared the way logins compare them,
  :func:`idp.accounts.users.normalize_username`): an imported account that has
  not signed in here yet becomes what the file says; one whose owner has
  signed in since (or set a new password) is left as it is, so a late
  re-import never puts an old hash back; an unchanged row is not written;
* fast: rows are read and written in batches of :data:`BATCH` (see ``bench/``);
* silent about secrets: a hash is never logged, echoed in an error or audited.

Hashes are checked by :func:`idp.accounts.legacy_hashes.parse` and stored as
they are; the first login replaces them with Argon2id. Weak salted SHA hashes
need ``[passwords] allow_weak_legacy_hashes`` and mark the account to change
its password after that login.
"""

from __future__ import annotations

import csv
import io
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import insert, select, update

from idp.accounts import legacy_hashes
from idp.accounts.customers import CsvFileError
from idp.accounts.origins import IMPORT, AccountOrigin
from idp.accounts.users import normalize_username
from idp.core import audit
from idp.core.phones import PhoneError, normalize_phone
from idp.core.storage import Account, Customer, db

REQUIRED = ("username", "password_hash")
FIELDS = (
    *REQUIRED,
    "email",
    "email_verified",
    "mobile",
    "mobile_verified",
    "given_name",
    "family_name",
    "customer_number",
    "must_change_password",
    "must_reverify_mobile",
)
BOOLEANS = {"": False, "0": False, "false": False, "no": False, "1": True, "true": True, "yes": True}
BATCH = 1000
# The account columns an import sets; compared to decide whether a row changes.
COLUMNS = (
    "username",
    "password_hash",
    "email",
    "email_verified",
    "phone",
    "phone_verified",
    "given_name",
    "family_name",
    "customer_id",
    "must_change_password",
)


class AccountImportError(CsvFileError):
    """The account file was refused; ``problems`` are (line, "field: reason") pairs."""


@dataclass(frozen=True)
class ImportResult:
    created: int
    updated: int
    unchanged: int
    kept: int  # signed in here since an earlier import, or came by lazy migration: left alone
    weak: int


@dataclass
class Row:
    line: int
    norm: str
    values: dict[str, Any]
    customer_number: str | None
    weak: bool


@dataclass
class Problems:
    items: list[tuple[int, str]] = field(default_factory=list)

    def add(self, line: int, name: str, reason: str) -> None:
        self.items.append((line, f"{name}: {reason}"))


# ---------------------------------------------------------------------------
# Reading the file
# ---------------------------------------------------------------------------


def records(text: str, fmt: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, fields) for each record; raises :class:`AccountImportError` for a broken file."""
    if fmt == "jsonl":
        yield from _jsonl_records(text)
    else:
        yield from _csv_records(text)


def _jsonl_records(text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    problems = Problems()
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            problems.add(number, "line", f"not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        if not isinstance(obj, dict):
            problems.add(number, "line", "expected one JSON object per line")
            continue
        unknown = sorted(k for k in obj if k not in FIELDS)
        if unknown:
            problems.add(number, unknown[0], "unknown field (expected: " + ", ".join(FIELDS) + ")")
            continue
        yield number, obj
    if problems.items:
        raise AccountImportError(problems.items)


def _csv_records(text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise AccountImportError([(1, f"header: not a valid CSV file ({exc})")]) from None
    if header is None:
        raise AccountImportError([(1, "header: the file is empty")])
    header = [h.strip().lower() for h in header]
    missing = [c for c in REQUIRED if c not in header]
    unknown = [h for h in header if h not in FIELDS]
    if missing or unknown or len(set(header)) != len(header):
        msg = "header: expected username, password_hash and any of " + ", ".join(FIELDS[2:])
        if missing:
            msg += f"; missing: {', '.join(missing)}"
        if unknown:
            msg += f"; unknown: {', '.join(unknown)}"
        if len(set(header)) != len(header):
            msg += "; a column appears twice"
        raise AccountImportError([(1, msg)])
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise AccountImportError([(reader.line_num, f"line: not valid CSV ({exc})")]) from None
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            raise AccountImportError(
                [(reader.line_num, f"line: expected {len(header)} fields, found {len(cells)}")]
            )
        yield reader.line_num, dict(zip(header, cells, strict=True))


# ---------------------------------------------------------------------------
# Checking one record
# ---------------------------------------------------------------------------


def _text(obj: dict, name: str, problems: Problems, line: int, limit: int) -> str | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        problems.add(line, name, "must be text")
        return None
    value = value.strip()
    if len(value) > limit:
        problems.add(line, name, f"longer than {limit} characters")
        return None
    return value or None


def _flag(obj: dict, name: str, problems: Problems, line: int) -> bool:
    value = obj.get(name, False)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in BOOLEANS:
        return BOOLEANS[value.strip().lower()]
    problems.add(line, name, "must be true or false (also 1/0, yes/no, or empty for false)")
    return False


def check_record(line: int, obj: dict, problems: Problems, *, allow_weak: bool, region: str) -> Row | None:
    """The account values of one record, or None after adding its problems."""
    before = len(problems.items)
    username = _text(obj, "username", problems, line, 64)
    if not username or len(username) < 3 or any(c.isspace() for c in username):
        problems.add(line, "username", "required, 3 to 64 characters without spaces")
    stored = weak = None
    raw_hash = obj.get("password_hash")
    try:
        parsed = legacy_hashes.parse(raw_hash if raw_hash is not None else "", allow_weak=allow_weak)
        stored, weak = parsed.stored, parsed.weak
    except legacy_hashes.HashFormatError as exc:
        problems.add(line, "password_hash", str(exc))
    email = _text(obj, "email", problems, line, 320)
    if email:
        try:
            email = validate_email(email, check_deliverability=False).normalized
        except EmailNotValidError:
            problems.add(line, "email", "not a valid e-mail address")
    email_verified = _flag(obj, "email_verified", problems, line)
    if email_verified and not email:
        problems.add(line, "email_verified", "true but there is no e-mail address")
    mobile = _text(obj, "mobile", problems, line, 40)
    if mobile:
        try:
            mobile = normalize_phone(mobile, default_region=region, allowed_prefixes=())
        except PhoneError as exc:
            reason = {"not_mobile": "not a mobile number"}.get(exc.code, "not a valid phone number")
            problems.add(line, "mobile", reason)
    mobile_verified = _flag(obj, "mobile_verified", problems, line)
    if mobile_verified and not mobile:
        problems.add(line, "mobile_verified", "true but there is no mobile number")
    reverify = _flag(obj, "must_reverify_mobile", problems, line)
    must_change = _flag(obj, "must_change_password", problems, line)
    names = {n: _text(obj, n, problems, line, 200) for n in ("given_name", "family_name")}
    customer_number = _text(obj, "customer_number", problems, line, 64)
    if len(problems.items) > before:
        return None
    return Row(
        line=line,
        norm=normalize_username(username),
        values={
            "username": username,
            "password_hash": stored,
            "email": email,
            "email_verified": email_verified,
            "phone": mobile,
            "phone_verified": bool(mobile_verified and not reverify),
            **names,
            "must_change_password": bool(must_change or weak),
        },
        customer_number=customer_number,
        weak=bool(weak),
    )


def check_file(text: str, fmt: str, *, allow_weak: bool, region: str = "BE") -> list[Row]:
    """Every account of the file, or :class:`AccountImportError` with every problem found."""
    problems = Problems()
    rows: list[Row] = []
    seen: dict[str, int] = {}
    try:
        for line, obj in records(text, fmt):
            row = check_record(line, obj, problems, allow_weak=allow_weak, region=region)
            if row is None:
                continue
            if row.norm in seen:
                problems.add(line, "username", f"already on line {seen[row.norm]} (usernames ignore case)")
                continue
            seen[row.norm] = line
            rows.append(row)
    except AccountImportError as exc:
        problems.items.extend(exc.problems)
    if not rows and not problems.items:
        problems.add(1, "file", "no accounts")
    if problems.items:
        raise AccountImportError(sorted(problems.items))
    return rows


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------


def _chunks(items: list, size: int = BATCH) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def customer_id(number: str | None) -> int | None:
    """The id of the customer with this number, or None."""
    if not number:
        return None
    return db.session.scalar(select(Customer.id).where(Customer.customer_number == number))


def _link_customers(rows: list[Row]) -> None:
    """Resolve customer numbers to customer ids; unknown numbers are problems."""
    wanted = sorted({r.customer_number for r in rows if r.customer_number})
    ids: dict[str, int] = {}
    for chunk in _chunks(wanted):
        stmt = select(Customer.customer_number, Customer.id).where(Customer.customer_number.in_(chunk))
        ids.update({number: cid for number, cid in db.session.execute(stmt)})
    problems = Problems()
    for row in rows:
        number = row.customer_number
        if number and number not in ids:
            problems.add(row.line, "customer_number", f"no customer {number} (import the customers first)")
        row.values["customer_id"] = ids.get(number) if number else None
    if problems.items:
        raise AccountImportError(problems.items)


def _existing(rows: list[Row]) -> dict[str, tuple[Account, AccountOrigin | None]]:
    found: dict[str, tuple[Account, AccountOrigin | None]] = {}
    for chunk in _chunks([r.norm for r in rows]):
        stmt = (
            select(Account, AccountOrigin)
            .outerjoin(AccountOrigin, AccountOrigin.account_id == Account.id)
            .where(Account.username_norm.in_(chunk))
        )
        for account, origin in db.session.execute(stmt):
            found[account.username_norm] = (account, origin)
    return found


def _in_use(account: Account, origin: AccountOrigin, row: Row) -> bool:
    """The owner took the account over here: signed in, or a password set here since the import."""
    if origin.first_login_at is not None:
        return True
    return account.password_hash != row.values["password_hash"] and (account.password_hash or "").startswith(
        "$argon2id$"
    )


def import_accounts(text: str, fmt: str, *, allow_weak: bool, region: str = "BE") -> ImportResult:
    """Upsert every account of ``text`` (``fmt`` "csv" or "jsonl") in one transaction, or change nothing."""
    rows = check_file(text, fmt, allow_weak=allow_weak, region=region)
    try:
        _link_customers(rows)
        existing = _existing(rows)
        problems = Problems()
        new, changes, unchanged, kept, weak = [], [], 0, 0, 0
        for row in rows:
            if row.norm not in existing:
                new.append(row)
                continue
            account, origin = existing[row.norm]
            if origin is None:
                problems.add(
                    row.line, "username", "taken by an account that was not imported; rename one of them"
                )
            elif origin.source != IMPORT or _in_use(account, origin, row):
                kept += 1
            elif all(getattr(account, c) == row.values[c] for c in COLUMNS):
                unchanged += 1
            else:
                changes.append({"id": account.id, **row.values})
                weak += row.weak
        if problems.items:
            raise AccountImportError(problems.items)
        _write(new, changes)
        result = ImportResult(
            created=len(new),
            updated=len(changes),
            unchanged=unchanged,
            kept=kept,
            weak=weak + sum(r.weak for r in new),
        )
        audit.record("accounts_imported", commit=False, **result.__dict__)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return result


def _write(new: list[Row], changes: list[dict]) -> None:
    # Detach what was read: the bulk statements below are the only writes.
    db.session.expunge_all()
    for chunk in _chunks(new):
        values = [
            {**r.values, "sub": secrets.token_hex(16), "username_norm": r.norm, "status": "active"}
            for r in chunk
        ]
        ids = db.session.execute(insert(Account).returning(Account.id), values).scalars().all()
        db.session.execute(insert(AccountOrigin), [{"account_id": i, "source": IMPORT} for i in ids])
    for chunk in _chunks(changes):
        db.session.execute(update(Account), chunk)
