"""Day-two commands: users enable (the pair of disable), db current, an audit record per account change."""

from __future__ import annotations

import pytest
from flask.cli import ScriptInfo
from sqlalchemy import func, select

from idp.cli import main
from idp.core.storage import Account, AuditEvent, db
from tests.conftest import PASSWORD, authorize_params, login_with_password
from tests.support.schema import schema_behind


def cli(app, *args, stdin: str | None = None):
    return app.test_cli_runner().invoke(main, list(args), obj=ScriptInfo(create_app=lambda: app), input=stdin)


def events(app, name: str) -> list[AuditEvent]:
    with app.app_context():
        return db.session.scalars(select(AuditEvent).where(AuditEvent.event == name)).all()


def status_of(app, username="alice") -> str:
    with app.app_context():
        return db.session.scalar(select(Account.status).where(Account.username == username))


def test_disable_without_a_session_writes_an_audit_record(app, user):
    result = cli(app, "users", "disable", "alice")
    assert result.exit_code == 0, result.output
    assert status_of(app) == "disabled"
    [event] = events(app, "account_disabled")
    assert event.detail == {"actor": "operator"} and event.account_id is not None


def test_enable_lets_a_disabled_account_log_in_again(app, client, user):
    cli(app, "users", "disable", "alice")
    result = cli(app, "users", "enable", "alice")
    assert result.exit_code == 0, result.output
    assert status_of(app) == "active"
    assert len(events(app, "account_enabled")) == 1
    resp = client.get("/authorize", query_string=authorize_params()[0])
    assert login_with_password(client, resp.location).status_code == 303


def test_enable_refuses_an_account_that_is_not_disabled_and_changes_nothing(app, user):
    result = cli(app, "users", "enable", "alice")
    assert result.exit_code == 1 and "not disabled" in result.output
    assert events(app, "account_enabled") == []


def test_enable_of_an_unknown_user_fails_clearly(app):
    result = cli(app, "users", "enable", "nobody")
    assert result.exit_code == 1 and "no such user" in result.output


@pytest.mark.parametrize(
    "command",
    [
        ["users", "disable", "alice"],
        ["users", "set-phone", "alice", "+32470999888"],
        ["users", "set-email", "alice", "alice.new@example.com", "--verified"],
        ["users", "unlock", "alice"],
    ],
)
def test_every_command_that_changes_an_account_writes_an_audit_record(app, user, command):
    with app.app_context():
        before = db.session.scalar(select(func.count()).select_from(AuditEvent))
    result = cli(app, *command)
    assert result.exit_code == 0, result.output
    with app.app_context():
        rows = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id).offset(before)).all()
        alice = db.session.scalar(select(Account.id).where(Account.username == "alice"))
    assert any(row.account_id == alice and (row.detail or {}).get("actor") for row in rows), rows


def test_create_writes_an_audit_record(app):
    result = cli(
        app, "users", "create", "bob", "--email", "bob@example.com", "--password-stdin", stdin=PASSWORD
    )
    assert result.exit_code == 0, result.output
    [event] = events(app, "account_created")
    assert event.detail == {"actor": "operator"}


def test_db_current_says_up_to_date(app):
    result = cli(app, "db", "current")
    assert result.exit_code == 0, result.output
    assert "up to date" in result.stdout and "current: 0" in result.stdout


def test_db_current_fails_when_an_upgrade_is_due(app):
    with schema_behind(app):
        result = cli(app, "db", "current")
    assert result.exit_code == 1
    assert "current: 0001\n" in result.stdout and "idp db upgrade" in result.output
