"""The ``idp`` command: serve, send queued messages (``worker``), check the configuration,
migrate, rotate keys, manage users.

Every command is non-interactive so operators can script it; the
configuration comes from ``--config`` or ``IDP_CONFIG``.
"""

from __future__ import annotations

import json
import sys
import time

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext
from sqlalchemy import select
from werkzeug.serving import run_simple

from connectors.config import ConfigErrors
from idp import create_app
from idp.accounts import identifiers
from idp.cli_users import users_group
from idp.config import load as load_settings
from idp.connectors_admin import rotate_itsme_keys
from idp.core import audit
from idp.core.retention import purge
from idp.core.storage import AuditEvent, SigningKey, db, migration_state, upgrade


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


main.add_command(users_group)

if __name__ == "__main__":  # python -m idp.cli
    main()
