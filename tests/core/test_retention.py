"""Retention: `idp purge` removes exactly the rows past their retention, in batches."""

from __future__ import annotations

import sqlalchemy as sa

from idp.core.retention import DAY

NOW = 2_000_000_000


def cli(app, *args):
    from flask.cli import ScriptInfo

    from idp.cli import main

    return app.test_cli_runner().invoke(main, list(args), obj=ScriptInfo(create_app=lambda: app))


def seed(app) -> int:
    """For every rule a row just past its retention ("old-...") and one just inside ("new-...")."""
    from idp.core.storage import (
        Account,
        AuditEvent,
        AuthorizationCode,
        Grant,
        RefreshToken,
        SessionClient,
        SsoSession,
        db,
    )
    from idp.login.lockout import FailureCounter
    from idp.selfservice.recovery import PasswordReset

    with app.app_context():
        account = Account(sub="s-1", username="alice", username_norm="alice", status="active")
        db.session.add(account)
        db.session.flush()
        aid = account.id
        for tag, end in (("old", NOW - 30 * DAY - 1), ("new", NOW - 30 * DAY + 1)):
            db.session.add(
                SsoSession(
                    id=f"{tag}-ended",
                    account_id=aid,
                    auth_time=end,
                    level="low",
                    methods=[],
                    amr=[],
                    created_at=end,
                    last_seen_at=end,
                    expires_at=NOW + DAY,
                    ended_at=end,
                )
            )
            db.session.flush()
            db.session.add(SessionClient(session_id=f"{tag}-ended", client_id="portal"))
            db.session.add(
                SsoSession(
                    id=f"{tag}-expired",
                    account_id=aid,
                    auth_time=end,
                    level="low",
                    methods=[],
                    amr=[],
                    created_at=end,
                    last_seen_at=end,
                    expires_at=end,
                )
            )
        db.session.add(
            SsoSession(
                id="live",
                account_id=aid,
                auth_time=NOW,
                level="low",
                methods=[],
                amr=[],
                created_at=NOW,
                last_seen_at=NOW - 10,
                expires_at=NOW + DAY,
            )
        )
        db.session.add(
            SsoSession(
                id="idle",
                account_id=aid,
                auth_time=NOW - 5000,
                level="low",
                methods=[],
                amr=[],
                created_at=NOW - 5000,
                last_seen_at=NOW - 4000,
                expires_at=NOW + DAY,
            )
        )
        for tag, t in (("old", NOW - DAY - 1), ("new", NOW - DAY + 1)):
            grant = dict(account_id=aid, client_id="portal", scope="openid", auth_time=t, acr="a", amr=[])
            db.session.add(Grant(id=f"{tag}-revoked", created_at=t, revoked_at=t, **grant))
            db.session.add(Grant(id=f"{tag}-tokenless", created_at=t - 600, **grant))
            db.session.add(Grant(id=f"{tag}-refreshed", created_at=t - 600, **grant))
            db.session.flush()
            db.session.add(RefreshToken(token_hash=f"{tag}-rt", grant_id=f"{tag}-refreshed", expires_at=t))
            db.session.add(
                AuthorizationCode(
                    code_hash=f"{tag}-code",
                    grant_id=f"{tag}-refreshed",
                    client_id="portal",
                    redirect_uri="x",
                    code_challenge="c",
                    code_challenge_method="S256",
                    expires_at=t,
                )
            )
            db.session.add(
                PasswordReset(token_hash=f"{tag}-reset", account_id=aid, created_at=t, expires_at=t)
            )
            db.session.add(FailureCounter(key=f"{tag}-counter", failures=1, updated_at=t))
        db.session.add(
            FailureCounter(key="locked-counter", failures=0, updated_at=NOW - 9 * DAY, locked_until=NOW + 60)
        )
        for tag, at in (("old", NOW - 400 * DAY - 1), ("new", NOW - 400 * DAY + 1)):
            db.session.add(AuditEvent(event=f"{tag}-event", outcome="success", at=at))
        db.session.commit()
        return aid


def keys(app, table: str, column: str) -> set[str]:
    from idp.core.storage import db

    with app.app_context():
        t = db.metadata.tables[table]
        return {str(v) for v in db.session.scalars(sa.select(t.c[column]))}


def test_purge_removes_exactly_the_rows_past_their_retention(app):
    from idp.core.retention import purge

    seed(app)
    with app.app_context():
        would = purge(now=NOW, dry_run=True)
    assert keys(app, "sso_sessions", "id") == {
        "old-ended",
        "new-ended",
        "old-expired",
        "new-expired",
        "live",
        "idle",
    }  # a dry run deletes nothing
    with app.app_context():
        counts = purge(now=NOW)
    assert counts["ended sessions"] == would["ended sessions"] == 2
    assert keys(app, "sso_sessions", "id") == {"new-ended", "new-expired", "live", "idle"}
    assert keys(app, "session_clients", "session_id") == {"new-ended"}
    assert keys(app, "grants", "id") == {"new-revoked", "new-tokenless", "new-refreshed"}
    assert keys(app, "refresh_tokens", "token_hash") == {"new-rt"}
    assert keys(app, "authorization_codes", "code_hash") == {"new-code"}
    assert keys(app, "password_resets", "token_hash") == {"new-reset"}
    assert keys(app, "failure_counters", "key") == {"new-counter", "locked-counter"}
    assert keys(app, "audit_events", "event") == {"new-event"}


def test_sessions_idle_past_the_timeout_are_marked_ended_not_deleted(app):
    from idp.core.retention import purge
    from idp.core.storage import SsoSession, db

    seed(app)
    with app.app_context():
        # The idle one, and the two that expired without a logout (idle before they expired).
        assert purge(now=NOW)["idle sessions marked ended"] == 3
        idle, live = db.session.get(SsoSession, "idle"), db.session.get(SsoSession, "live")
        assert idle.ended_at == idle.last_seen_at + app.extensions["idp.settings"].session_idle_timeout
        assert live.ended_at is None


def test_purge_works_in_batches(make_app):
    from idp.core.retention import purge
    from idp.core.storage import AuditEvent, db

    app = make_app({"retention": {"batch_size": 10, "audit_days": 1}})
    with app.app_context():
        db.session.add_all(AuditEvent(event="e", outcome="success", at=NOW - 2 * DAY) for _ in range(25))
        db.session.add(AuditEvent(event="kept", outcome="success", at=NOW))
        db.session.commit()
        assert purge(now=NOW)["audit events"] == 25
    assert keys(app, "audit_events", "event") == {"kept"}


def test_purge_command_reports_each_rule(app):
    result = cli(app, "purge", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "audit events: would delete 0" in result.output
    assert cli(app, "purge").exit_code == 0


def test_retention_settings_are_checked(make_app):
    import pytest

    from connectors.config import ConfigErrors

    with pytest.raises(ConfigErrors) as err:
        make_app({"retention": {"audit_days": 0, "unknown": 1}})
    text = str(err.value)
    assert "audit_days" in text and "unknown" in text
