"""``idp users …``: the day-to-day commands of customer service and of the operator on accounts
(create, show, disable/enable, contacts, passkeys, unlock), bringing accounts over from the old
system (import, migration status) and the data-protection requests (export, erase). Every
command that changes an account writes an audit record naming the actor.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import select

from idp.accounts.customers import exit_with_problems, read_csv_file
from idp.accounts.importer import AccountImportError, import_accounts
from idp.accounts.origins import migration_status
from idp.accounts.users import (
    AccountError,
    create_local_account,
    disable_account,
    enable_account,
    find_by_username,
)
from idp.core import audit
from idp.core.phones import PhoneError, mask_phone
from idp.core.storage import Account, db
from idp.login import contacts, lockout, otp
from idp.selfservice.personal_data import describe, erase_account, export_account


@click.group("users")
def users_group():
    """Local accounts."""


@users_group.command("create")
@click.argument("username")
@click.option("--email", default=None)
@click.option("--phone", default=None, help="Mobile number, E.164 (+32...).")
@click.option("--given-name", default=None)
@click.option("--family-name", default=None)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@with_appcontext
def users_create(username, email, phone, given_name, family_name, password_stdin):
    """Add a local account (contacts given here count as verified by the operator)."""

    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    try:
        account = create_local_account(
            username,
            password=password,
            email=email,
            phone=phone,
            given_name=given_name,
            family_name=family_name,
        )
    except AccountError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    audit.record("account_created", account_id=account.id, actor="operator")
    click.echo(f"created {account.username} (sub {account.sub})")


@users_group.command("show")
@click.argument("username")
@with_appcontext
def users_show(username):
    """An account's profile and state (no secrets)."""

    account = find_by_username(username)
    if account is None:
        click.echo("no such user", err=True)
        sys.exit(1)
    click.echo(
        json.dumps(
            {
                "username": account.username,
                "sub": account.sub,
                "status": account.status,
                "email": account.email,
                "email_verified": account.email_verified,
                "phone": account.phone,
                "phone_verified": account.phone_verified,
                "name": account.display_name,
                "authenticator_app": bool(account.totp_secret),
                "locked_seconds": _locked_for(account),
            },
            indent=2,
        )
    )


def _locked_for(account) -> dict:

    now = otp.now()
    return {
        "password": lockout.status(lockout.password_key(account.username), now)[1],
        "codes": lockout.status(otp.failure_key("login", "", account.id), now)[1],
    }


@users_group.command("disable")
@click.argument("username")
@with_appcontext
def users_disable(username):
    """Disable an account and end its sessions."""

    account = find_by_username(username)
    if account is None:
        click.echo("no such user", err=True)
        sys.exit(1)
    disable_account(account, actor="operator")
    click.echo(f"disabled {account.username}")


@users_group.command("enable")
@click.argument("username")
@with_appcontext
def users_enable(username):
    """Let a disabled account log in again (its sessions stay ended)."""

    account = _user_or_exit(username)
    if not enable_account(account, actor="operator"):
        click.echo(f"{account.username} is not disabled (status {account.status})", err=True)
        sys.exit(1)
    click.echo(f"enabled {account.username}")


def _user_or_exit(username):

    account = find_by_username(username)
    if account is None:
        click.echo("no such user", err=True)
        sys.exit(1)
    return account


@users_group.command("set-phone")
@click.argument("username")
@click.argument("number")
@with_appcontext
def users_set_phone(username, number):
    """Set the mobile number (checked by support): verified; the old number and the e-mail are told."""

    account = _user_or_exit(username)
    try:
        e164 = otp.normalize_number(number)
    except PhoneError as exc:
        click.echo(f"error: mobile number: {exc.code}", err=True)
        sys.exit(1)
    with _request_context():
        contacts.set_phone(account, e164, actor="support")
    click.echo(f"{account.username}: mobile number is now {mask_phone(e164)}")


@users_group.command("set-email")
@click.argument("username")
@click.argument("email")
@click.option("--verified", is_flag=True, help="Support checked the address: no confirmation link.")
@with_appcontext
def users_set_email(username, email, verified):
    """Change the e-mail address: a confirmation link to it (or --verified); the old address is told."""

    account = _user_or_exit(username)
    with _request_context():
        try:
            address = contacts.validate_email_address(email)
        except ValueError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        if verified:
            contacts.set_email(account, address, actor="support")
            click.echo(f"{account.username}: e-mail address is now {address}")
        elif contacts.send_email_link(account, address, change=True):
            click.echo(f"{account.username}: confirmation link sent to {address}")
        else:
            click.echo("error: the e-mail could not be sent", err=True)
            sys.exit(1)


@users_group.command("passkeys")
@click.argument("username")
@click.option("--remove", "remove_id", type=int, default=None, help="remove the passkey with this id")
@with_appcontext
def users_passkeys(username, remove_id):
    """List an account's passkeys, or remove one (a lost device): the person is told by e-mail."""
    from idp.accounts import passkeys
    from idp.core import audit

    account = _user_or_exit(username)
    if remove_id is not None:
        row = passkeys.get_for(account, remove_id)
        if row is None:
            click.echo(f"{account.username} has no passkey {remove_id}", err=True)
            sys.exit(1)
        passkeys.remove(row)
        audit.record("passkey_removed", account_id=account.id, actor="support", passkey=remove_id)
        with _request_context():
            contacts.notify_email(account, "account_passkey_changed", added=False, passkey=row.name)
        click.echo(f"{account.username}: passkey {remove_id} ({row.name}) removed")
        return
    rows = [
        {
            "id": p.id,
            "name": p.name,
            "aaguid": p.aaguid,
            "created_at": p.created_at,
            "last_used_at": p.last_used_at,
            "clone_warning_at": p.clone_warning_at,
        }
        for p in passkeys.list_for(account)
    ]
    click.echo(json.dumps(rows, indent=2))


@users_group.command("unlock")
@click.argument("username")
@with_appcontext
def users_unlock(username):
    """Clear the password and code lockouts of an account."""

    account = _user_or_exit(username)
    keys = [lockout.password_key(account.username), otp.failure_key("login", "", account.id)]
    cleared = lockout.clear(keys)
    audit.record("unlocked", account_id=account.id, actor="support", counters=cleared)
    click.echo(f"{account.username}: unlocked ({cleared} counter(s) cleared)")


@users_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "jsonl"]),
    default=None,
    help="CSV with a header row, or JSON lines; by default from the file name (.csv, .jsonl/.ndjson).",
)
@with_appcontext
def users_import(file: Path, fmt: str | None):
    """Bring accounts over from the old system with their password hashes; all or nothing.

    See docs/migration.md for the fields and the hash formats.
    """

    fmt = fmt or ("jsonl" if file.suffix.lower() in (".jsonl", ".ndjson", ".json") else "csv")
    text = read_csv_file(file)
    passwords = current_app.extensions["idp.passwords"]
    try:
        result = import_accounts(
            text,
            fmt,
            allow_weak=passwords.settings.allow_weak_legacy_hashes,
            region=otp.settings().default_region,
        )
    except AccountImportError as exc:
        exit_with_problems(file, exc, "nothing was imported")
    total = result.created + result.updated + result.unchanged + result.kept
    click.echo(
        f"{total} account(s): {result.created} new, {result.updated} updated, {result.unchanged} unchanged, "
        f"{result.kept} kept (in use here since)"
    )
    if result.weak:
        click.echo(
            f"{result.weak} account(s) with a weak hash must change their password after the next login"
        )


@users_group.command("migration-status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@with_appcontext
def users_migration_status(as_json: bool):
    """How far the move from the old system has come: imported, signed in since, still on a legacy hash."""

    status = migration_status(current_app.extensions["idp.passwords"].current_prefix())
    data = {
        "imported": status.imported,
        "imported_signed_in_since": status.imported_logged_in,
        "imported_not_signed_in_yet": status.imported_waiting,
        "imported_still_on_legacy_hash": status.imported_legacy_hash,
        "lazy_migrated": status.lazy,
        "last_first_sign_in": (
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(status.last_first_login_at))
            if status.last_first_login_at
            else None
        ),
    }
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    width = max(len(k) for k in data)
    for key, value in data.items():
        click.echo(f"{key.replace('_', ' '):<{width}}  {value if value is not None else '-'}")


def _account_or_exit(name):
    """An account by username, or by ``sub`` for accounts without one (itsme / eID only)."""

    account = find_by_username(name) or db.session.scalar(select(Account).where(Account.sub == name))
    if account is None:
        click.echo("no such user", err=True)
        sys.exit(1)
    return account


@users_group.command("export")
@click.argument("name")
@click.option("--output", "-o", type=click.File("w"), default="-", help="File to write (default: stdout).")
@with_appcontext
def users_export(name, output):
    """Everything held about an account as one JSON document (GDPR art. 15 and 20)."""

    account = _account_or_exit(name)
    document = export_account(account)
    audit.record("data_exported", account_id=account.id, actor="support")
    json.dump(document, output, indent=2, sort_keys=True, default=str)
    output.write("\n")


@users_group.command("erase")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Confirm: the account cannot be restored.")
@with_appcontext
def users_erase(name, yes):
    """Erase an account (GDPR art. 17): RPs are told, its rows deleted, its audit trail anonymised."""

    account = _account_or_exit(name)
    if not yes:
        click.echo("error: erasing cannot be undone; add --yes to confirm", err=True)
        sys.exit(1)
    with _request_context():
        counts = erase_account(account, actor="support")
    click.echo(f"erased {name}")
    for line in describe(counts):
        click.echo(f"  {line}")


def _request_context():
    """Messages and links are rendered as for a request to the configured issuer."""
    app = current_app._get_current_object()
    return app.test_request_context(base_url=app.extensions["idp.settings"].issuer)
