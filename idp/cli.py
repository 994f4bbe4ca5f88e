"""The ``idp`` command: serve, send queued messages (``worker``), check the configuration,
migrate, rotate keys, manage users.

Every command is non-interactive so operators can script it; the
configuration comes from ``--config`` or ``IDP_CONFIG``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext
from sqlalchemy import select
from werkzeug.serving import run_simple

from connectors.config import ConfigErrors
from idp import create_app
from idp.accounts import identifiers
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
from idp.config import load as load_settings
from idp.connectors_admin import rotate_itsme_keys
from idp.core import audit
from idp.core.phones import PhoneError, mask_phone
from idp.core.retention import purge
from idp.core.storage import Account, AuditEvent, SigningKey, db, migration_state, upgrade
from idp.login import contacts, lockout, otp
from idp.selfservice.personal_data import describe, erase_account, export_account


def _config_path() -> str | None:
    ctx = click.get_current_context(silent=True)
    path = None
    while ctx is not None:
        path = path or (ctx.params.get("config") if ctx.params else None)
        ctx = ctx.parent
    return path


def _create_app(default_issuer: str | None = None):

    try:
        return create_app(_config_path(), default_issuer=default_issuer)
    except ConfigErrors as exc:
        click.echo("Configuration errors:", err=True)
        for e in exc.errors:
            click.echo(f"  {e}", err=True)
        sys.exit(2)


def served_issuer(host: str, port: int) -> str:
    """The issuer of ``idp serve`` when no configuration sets one: where the browser reaches it."""
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 (a wildcard is not an address a browser can open)
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


@click.group(cls=FlaskGroup, create_app=_create_app, add_default_commands=False, add_version_option=False)
@click.option("--config", envvar="IDP_CONFIG", type=click.Path(dir_okay=False), help="Provider TOML file.")
def main(config):
    """OpenID Connect provider."""


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def serve(host: str, port: int):
    """Run the development server in the foreground (use gunicorn idp.wsgi:app in production).

    Without ``[provider] issuer`` in the configuration the issuer is this host and port,
    so discovery, the demo relying party and every redirect point at this server.
    """
    app = _create_app(default_issuer=served_issuer(host, port))
    if app.extensions["idp.settings"].production:
        click.echo("warning: the built-in server is for development; run gunicorn idp.wsgi:app", err=True)

    from idp.services import queue

    queue.start_thread(app)  # development: SMS and e-mails go out from this process
    # Not app.run(): Flask ignores it inside its own CLI commands.
    click.echo(f"serving {app.extensions['idp.settings'].issuer} on http://{host}:{port}/ (Ctrl+C to stop)")
    run_simple(host, port, app, threaded=True, use_reloader=False)


@main.command("worker")
@click.option("--once", is_flag=True, help="Send what is due now, then exit.")
def worker(once: bool):
    """Send queued SMS and e-mails (run one or more next to gunicorn; see the operator guide)."""
    import signal
    import threading

    from idp.services import queue

    app = current_app._get_current_object()
    if once:
        click.echo(f"{queue.work(app)} message(s) tried")
        return
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    click.echo("outbound worker running (SIGTERM or Ctrl+C to stop)")
    queue.run(app, stop)


@main.group("config", cls=click.Group)
def config_group():
    """Configuration."""


@config_group.command("check")
@click.pass_context
def config_check(ctx):
    """Validate the configuration without starting anything."""

    path = ctx.find_root().params.get("config")
    try:
        settings = load_settings(path)
    except ConfigErrors as exc:
        for e in exc.errors:
            click.echo(str(e), err=True)
        click.echo(f"{len(exc.errors)} error(s)", err=True)
        sys.exit(2)
    click.echo(f"OK: {settings.source} ({settings.environment}, {len(settings.clients)} client(s))")


@main.group("db")
def db_group():
    """Database schema."""


@db_group.command("upgrade")
@with_appcontext
def db_upgrade():
    """Apply the migrations (Alembic) up to the newest schema; make the first signing key if none."""

    app = current_app._get_current_object()
    upgrade(app)
    app.extensions["idp.keys"].ensure_key()
    click.echo("database is up to date")


@db_group.command("current")
@with_appcontext
def db_current():
    """The schema's revision and the newest one; exit status 1 when an upgrade is due."""

    current, heads = migration_state(current_app._get_current_object())
    click.echo(f"current: {', '.join(sorted(current)) or '(empty database)'}")
    click.echo(f"newest:  {', '.join(sorted(heads))}")
    if current != heads:
        click.echo("the database is behind: run `idp db upgrade`", err=True)
        sys.exit(1)
    click.echo("the database is up to date")


@main.group("keys")
def keys_group():
    """Token signing keys."""


@keys_group.command("rotate")
@click.option(
    "--connector", type=click.Choice(["itsme"]), default=None, help="Rotate a connector's RP keys instead."
)
@click.option(
    "--immediate", is_flag=True, help="itsme: sign with the new key now (a leaked key), not after a day."
)
@with_appcontext
def keys_rotate(connector, immediate):
    """Add a new key, sign with it, keep the old public key until its tokens expired."""
    if connector == "itsme":
        app = current_app._get_current_object()
        click.echo(json.dumps(rotate_itsme_keys(app, immediate=immediate)))
        return
    ring = current_app.extensions["idp.keys"]
    kid = ring.create_key()
    removed = ring.prune()
    click.echo(f"new signing key {kid}; {removed} expired key(s) removed")


@keys_group.command("rehash-identifiers")
@click.option("--batch-size", default=1000, show_default=True, type=click.IntRange(10, 100_000))
@with_appcontext
def keys_rehash_identifiers(batch_size):
    """Re-key every national register / card number hash under the current identifier key."""

    counts = identifiers.rehash_all(batch_size)
    audit.record("identifiers_rehashed", key=identifiers.current_kid(), rows=sum(counts.values()))
    for name, n in counts.items():
        click.echo(f"{name}: {n} re-keyed (wrapped under key {identifiers.current_kid()})")


@keys_group.command("list")
@with_appcontext
def keys_list():
    """The keys, which one signs, and when the retired ones leave the JWKS."""

    for row in db.session.scalars(select(SigningKey).order_by(SigningKey.created_at)):
        state = (
            "active"
            if row.retired_at is None
            else f"retired, in JWKS until {time.strftime('%Y-%m-%d %H:%M', time.gmtime(row.drop_after))}"
        )
        click.echo(f"{row.kid}  {row.alg}  {state}")


@main.group("users")
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
    from idp.login import actions

    account = _user_or_exit(username)
    if remove_id is not None:
        row = passkeys.get_for(account, remove_id)
        if row is None:
            click.echo(f"{account.username} has no passkey {remove_id}", err=True)
            sys.exit(1)
        passkeys.remove(row)
        audit.record("passkey_removed", account_id=account.id, actor="support", passkey=remove_id)
        with _request_context():
            actions.notify_email(account, "account_passkey_changed", added=False, passkey=row.name)
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


@main.command("purge")
@click.option("--dry-run", is_flag=True, help="Count what would go; delete nothing.")
@with_appcontext
def purge_command(dry_run):
    """Delete what has passed its retention ([retention]), in batches; safe while serving."""

    counts = purge(dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    for name, n in counts.items():
        click.echo(f"{name}: {n}" if name.startswith("idle") else f"{name}: {verb} {n}")


@main.command("audit")
@click.option("--limit", default=50, show_default=True)
@click.option("--event", default=None)
@with_appcontext
def audit_list(limit, event):
    """The newest security events."""

    q = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if event:
        q = q.where(AuditEvent.event == event)
    for row in db.session.scalars(q):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(row.at))
        click.echo(
            f"{when} {row.event} {row.outcome} account={row.account_id} client={row.client_id} "
            f"method={row.method} ip={row.ip} {json.dumps(row.detail) if row.detail else ''}"
        )


if __name__ == "__main__":  # python -m idp.cli
    main()
