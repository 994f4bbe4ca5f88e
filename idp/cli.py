"""The ``idp`` command: serve, check the configuration, migrate, rotate keys, manage users.

Every command is non-interactive so operators can script it; the
configuration comes from ``--config`` or ``IDP_CONFIG``.
"""

from __future__ import annotations

import json
import sys
import time

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext
from sqlalchemy import select

from connectors.base import ConfigErrors


def _create_app():
    from idp import create_app

    ctx = click.get_current_context(silent=True)
    path = None
    while ctx is not None:
        path = path or (ctx.params.get("config") if ctx.params else None)
        ctx = ctx.parent
    try:
        return create_app(path)
    except ConfigErrors as exc:
        click.echo("Configuration errors:", err=True)
        for e in exc.errors:
            click.echo(f"  {e}", err=True)
        sys.exit(2)


@click.group(cls=FlaskGroup, create_app=_create_app, add_default_commands=False, add_version_option=False)
@click.option("--config", envvar="IDP_CONFIG", type=click.Path(dir_okay=False), help="Provider TOML file.")
def main(config):
    """OpenID Connect provider."""


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@with_appcontext
def serve(host: str, port: int):
    """Run the development server (use gunicorn with wsgi.py in production)."""
    app = current_app._get_current_object()
    if app.extensions["idp.settings"].production:
        click.echo("warning: the built-in server is for development; run gunicorn wsgi:app", err=True)
    from werkzeug.serving import run_simple

    # Not app.run(): Flask ignores it inside its own CLI commands.
    click.echo(f"serving {app.extensions['idp.settings'].issuer} on http://{host}:{port}/ (Ctrl+C to stop)")
    run_simple(host, port, app, threaded=True, use_reloader=False)


@main.group("config", cls=click.Group)
def config_group():
    """Configuration."""


@config_group.command("check")
@click.pass_context
def config_check(ctx):
    """Validate the configuration without starting anything."""
    from idp.core.settings import load_settings

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
    from idp.core.storage import upgrade

    app = current_app._get_current_object()
    upgrade(app)
    app.extensions["idp.keys"].ensure_key()
    click.echo("database is up to date")


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
        from idp.connectors_admin import rotate_itsme_keys

        app = current_app._get_current_object()
        click.echo(json.dumps(rotate_itsme_keys(app, immediate=immediate)))
        return
    ring = current_app.extensions["idp.keys"]
    kid = ring.create_key()
    removed = ring.prune()
    click.echo(f"new signing key {kid}; {removed} expired key(s) removed")


@keys_group.command("list")
@with_appcontext
def keys_list():
    """The keys, which one signs, and when the retired ones leave the JWKS."""
    from idp.core.storage import SigningKey, db

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
    from idp.accounts.users import AccountError, create_local_account

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
    click.echo(f"created {account.username} (sub {account.sub})")


@users_group.command("show")
@click.argument("username")
@with_appcontext
def users_show(username):
    """An account's profile and state (no secrets)."""
    from idp.accounts.users import find_by_username

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
    from idp.accounts.users import normalize_username
    from idp.login import lockout, otp

    now = otp.now()
    return {
        "password": lockout.status(f"password:{normalize_username(account.username)}"[:200], now)[1],
        "codes": lockout.status(f"otp:account:{account.id}", now)[1],
    }


@users_group.command("disable")
@click.argument("username")
@with_appcontext
def users_disable(username):
    """Disable an account and end its sessions."""
    from idp.accounts.users import disable_account, find_by_username

    account = find_by_username(username)
    if account is None:
        click.echo("no such user", err=True)
        sys.exit(1)
    disable_account(account)
    click.echo(f"disabled {account.username}")


def _user_or_exit(username):
    from idp.accounts.users import find_by_username

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
    from idp.core.phones import PhoneError, mask_phone
    from idp.login import actions, otp

    account = _user_or_exit(username)
    try:
        e164 = otp.normalize_number(number)
    except PhoneError as exc:
        click.echo(f"error: mobile number: {exc.code}", err=True)
        sys.exit(1)
    with _request_context():
        actions.set_phone(account, e164, actor="support")
    click.echo(f"{account.username}: mobile number is now {mask_phone(e164)}")


@users_group.command("set-email")
@click.argument("username")
@click.argument("email")
@click.option("--verified", is_flag=True, help="Support checked the address: no confirmation link.")
@with_appcontext
def users_set_email(username, email, verified):
    """Change the e-mail address: a confirmation link to it (or --verified); the old address is told."""
    from idp.login import actions

    account = _user_or_exit(username)
    with _request_context():
        try:
            address = actions.validate_email_address(email)
        except ValueError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        if verified:
            actions.set_email(account, address, actor="support")
            click.echo(f"{account.username}: e-mail address is now {address}")
        elif actions.send_email_link(account, address, change=True):
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
    from idp.accounts.users import normalize_username
    from idp.core import audit
    from idp.login import lockout

    account = _user_or_exit(username)
    keys = [f"password:{normalize_username(account.username)}"[:200], f"otp:account:{account.id}"]
    cleared = lockout.clear(keys)
    audit.record("unlocked", account_id=account.id, actor="support", counters=cleared)
    click.echo(f"{account.username}: unlocked ({cleared} counter(s) cleared)")


def _request_context():
    """Messages and links are rendered as for a request to the configured issuer."""
    app = current_app._get_current_object()
    return app.test_request_context(base_url=app.extensions["idp.settings"].issuer)


@main.command("audit")
@click.option("--limit", default=50, show_default=True)
@click.option("--event", default=None)
@with_appcontext
def audit_list(limit, event):
    """The newest security events."""
    from idp.core.storage import AuditEvent, db

    q = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if event:
        q = q.where(AuditEvent.event == event)
    for row in db.session.scalars(q):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(row.at))
        click.echo(
            f"{when} {row.event} {row.outcome} account={row.account_id} client={row.client_id} "
            f"method={row.method} ip={row.ip} {json.dumps(row.detail) if row.detail else ''}"
        )


def init_app(app: Flask) -> None:
    pass
