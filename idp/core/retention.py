"""Retention: how long each kind of personal data is kept, and ``idp purge`` that applies it.

Every table with personal data has a rule here (``docs/privacy.md`` lists them
with their reasons); tables that hold the person's own account data (the
account, its contacts, linked identities, consents) have none: they live as
long as the account and go with its erasure. The customer records are the
operator's data and are kept by the operator's own rules.

:func:`purge` deletes in batches (``DELETE ... WHERE key IN (SELECT key ...
LIMIT n)``, one short transaction each), so it is safe to run while the
provider serves, on SQLite and PostgreSQL; rows are found by name in the
schema, so a rule for a feature that is not installed is skipped. Deleting a
grant deletes its codes and refresh tokens, deleting an SSO session the list
of relying parties that took part (foreign keys, ``ON DELETE CASCADE``).

An SSO session whose browser has been idle longer than the idle timeout is
over (its browser session expired in the shared store); :func:`end_idle_sessions`
marks it ended so that the account page lists only live sessions and the
rule for ended sessions counts from then.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from flask import current_app

from idp.core.storage import SsoSession, db, utcnow

log = logging.getLogger(__name__)

DAY = 86400
# The browser session is touched at most once a minute: never call a session idle earlier.
IDLE_SLACK = 120


@dataclass(frozen=True)
class RetentionSettings:
    """``[retention]``: days each kind of record is kept."""

    audit_days: int = 400
    ended_sessions_days: int = 30
    expired_days: int = 1
    failure_counters_days: int = 1
    batch_size: int = 1000

    @classmethod
    def from_table(cls, t) -> RetentionSettings:
        d = cls()
        out = cls(
            audit_days=t.int("audit_days", d.audit_days, min=1, max=3650),
            ended_sessions_days=t.int("ended_sessions_days", d.ended_sessions_days, min=0, max=3650),
            expired_days=t.int("expired_days", d.expired_days, min=0, max=365),
            failure_counters_days=t.int("failure_counters_days", d.failure_counters_days, min=1, max=365),
            batch_size=t.int("batch_size", d.batch_size, min=10, max=100_000),
        )
        t.finish()
        return out


def retention_settings() -> RetentionSettings:
    return current_app.extensions["idp.settings"].sections.get("retention") or RetentionSettings()


@dataclass(frozen=True)
class Rule:
    """Rows of ``table`` that have passed their retention: ``where(table, now, settings)``."""

    name: str
    table: str
    where: Callable[[sa.Table, int, RetentionSettings], sa.ColumnElement]


def _expired(column: str) -> Callable[[sa.Table, int, RetentionSettings], sa.ColumnElement]:
    return lambda t, now, s: t.c[column] < now - s.expired_days * DAY


def _dead_grant(t: sa.Table, now: int, s: RetentionSettings) -> sa.ColumnElement:
    """Revoked, or with no refresh token left and older than any access token it issued."""
    settings = current_app.extensions["idp.settings"]
    grace = s.expired_days * DAY
    refresh = db.metadata.tables["refresh_tokens"]
    no_refresh = ~sa.exists().where(refresh.c.grant_id == t.c.id)
    old = t.c.created_at < now - max(settings.access_token_ttl, settings.code_ttl) - grace
    return sa.or_(t.c.revoked_at < now - grace, sa.and_(no_refresh, old))


def _ended_session(t: sa.Table, now: int, s: RetentionSettings) -> sa.ColumnElement:
    cutoff = now - s.ended_sessions_days * DAY
    return sa.or_(t.c.ended_at < cutoff, t.c.expires_at < cutoff)


def _idle_counter(t: sa.Table, now: int, s: RetentionSettings) -> sa.ColumnElement:
    return sa.and_(t.c.locked_until < now, t.c.updated_at < now - s.failure_counters_days * DAY)


# In order: children before the rows they hang on, so each batch deletes what it counts.
RULES: list[Rule] = [
    Rule("authorization codes", "authorization_codes", _expired("expires_at")),
    Rule("refresh tokens", "refresh_tokens", _expired("expires_at")),
    Rule("grants", "grants", _dead_grant),
    Rule("ended sessions", "sso_sessions", _ended_session),
    Rule("password reset links", "password_resets", _expired("expires_at")),
    Rule("pending registrations", "pending_registrations", _expired("expires_at")),
    Rule("activation codes", "activation_codes", _expired("expires_at")),
    Rule("failure counters", "failure_counters", _idle_counter),
    Rule("audit events", "audit_events", lambda t, now, s: t.c.at < now - s.audit_days * DAY),
]


def end_idle_sessions(now: int | None = None, account_id: int | None = None) -> int:
    """Mark ended the SSO sessions idle past the idle timeout (of one account, or all)."""
    now = utcnow() if now is None else now
    idle = current_app.extensions["idp.settings"].session_idle_timeout
    stmt = (
        sa.update(SsoSession)
        .where(SsoSession.ended_at.is_(None), SsoSession.last_seen_at < now - idle - IDLE_SLACK)
        .values(ended_at=SsoSession.last_seen_at + idle)
    )
    if account_id is not None:
        stmt = stmt.where(SsoSession.account_id == account_id)
    n = db.session.execute(stmt).rowcount
    db.session.commit()
    return n


def _purge_rule(rule: Rule, table: sa.Table, now: int, s: RetentionSettings, dry_run: bool) -> int:
    (key,) = table.primary_key.columns
    condition = rule.where(table, now, s)
    if dry_run:
        return db.session.execute(sa.select(sa.func.count()).select_from(table).where(condition)).scalar()
    total = 0
    while True:
        batch = sa.select(key).where(condition).limit(s.batch_size)
        n = db.session.execute(sa.delete(table).where(key.in_(batch))).rowcount
        db.session.commit()
        total += n
        if n < s.batch_size:
            return total


def purge(now: int | None = None, dry_run: bool = False) -> dict[str, int]:
    """Apply every rule: how many rows each removed (or would remove)."""
    now = utcnow() if now is None else now
    s = retention_settings()
    counts = {"idle sessions marked ended": 0 if dry_run else end_idle_sessions(now)}
    for rule in RULES:
        table = db.metadata.tables.get(rule.table)
        if table is None:
            continue
        counts[rule.name] = _purge_rule(rule, table, now, s, dry_run)
    log.info("purge done dry_run=%s %s", dry_run, counts)
    return counts
