"""PostgreSQL connections: tested before use after sitting idle, not on every request.

A pooled connection that sat unused for ``POOL_PING_AFTER_IDLE`` seconds is
pinged at checkout and replaced when dead; one returned a moment ago is used as
it is. When the server drops connections that were busy a moment ago, a
request fails, and every connection of the pool made before is replaced.

PostgreSQL only: SQLite has no server connection to lose. Runs when
``IDP_TEST_DATABASE_URL`` is set (CI sets it); under ``CI=true`` its absence fails.
"""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa

from tests.conftest import _truncate_postgres, base_config, exchange, make_user_in
from tests.support.oidc import code_for, userinfo


@pytest.fixture
def pg_app(postgres_url, tmp_path):
    if postgres_url is None:
        reason = "IDP_TEST_DATABASE_URL is not set: these tests need PostgreSQL"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {reason}", pytrace=False)
        pytest.skip(reason)
    from idp import create_app
    from idp.core.storage import db

    _truncate_postgres(postgres_url)
    app = create_app(
        overrides=base_config("http://localhost", postgres_url, tmp_path), instance_dir=str(tmp_path)
    )
    app.config["TESTING"] = True
    make_user_in(app)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def _drop_server_connections(url: str) -> int:
    """What a database restart does to the provider: every connection of it is closed."""
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:
        ended = conn.execute(
            sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar()
    engine.dispose()
    return ended


@pytest.fixture
def pings(pg_app, monkeypatch):
    from idp.core.storage import db

    calls = []
    with pg_app.app_context():
        dialect = db.engine.dialect
    real = dialect.do_ping

    def counted(dbapi_conn):
        calls.append(1)
        return real(dbapi_conn)

    monkeypatch.setattr(dialect, "do_ping", counted)
    return calls


def test_connection_used_a_moment_ago_is_not_pinged(pg_app, pings):
    client = pg_app.test_client()
    for _ in range(3):
        code, verifier, _ = code_for(client)
        assert exchange(client, code, verifier).status_code == 200
    assert pings == []


def test_connection_that_sat_idle_is_pinged_and_replaced_when_the_server_dropped_it(
    pg_app, pings, postgres_url, monkeypatch
):
    client = pg_app.test_client()
    code, verifier, _ = code_for(client)
    monkeypatch.setattr(
        "idp.core.storage.POOL_PING_AFTER_IDLE", 0.0
    )  # every pooled connection counts as idle
    assert _drop_server_connections(postgres_url) >= 1
    resp = exchange(client, code, verifier)  # the code exchange's own statement
    assert resp.status_code == 200, resp.get_json()
    assert pings  # the dead connection was found at checkout, not by the request
    assert userinfo(client, resp.get_json()["access_token"]).status_code == 200  # the ORM's statements


def test_connections_dropped_while_busy_fail_once_and_none_of_them_is_reused(pg_app, postgres_url):
    """Three connections were alive a moment ago: two in the pool, one in use elsewhere
    (another thread of a gthread worker). After the server drops them all, one request
    fails; the others, including the one in use, are replaced, not reused."""
    from idp.core.storage import db

    client = pg_app.test_client()
    code, verifier, _ = code_for(client)
    with pg_app.app_context():
        engine = db.engine
    first, second, elsewhere = engine.raw_connection(), engine.raw_connection(), engine.raw_connection()
    first.close()
    second.close()  # two in the pool, used a moment ago: no ping at checkout
    assert _drop_server_connections(postgres_url) >= 3
    failed = exchange(client, code, verifier)
    assert failed.status_code == 500 and failed.get_json()["error"] == "server_error"
    elsewhere.close()  # the one in use comes back after the failure
    for _ in range(3):  # every connection the pool hands out now is a new one
        code, verifier, _ = code_for(client)
        assert exchange(client, code, verifier).status_code == 200
    with pg_app.app_context():
        db.session.remove()
    assert engine.pool.checkedout() == 0  # none leaked, none counted twice


def test_request_that_failed_on_a_dropped_connection_claimed_nothing(pg_app, postgres_url):
    client = pg_app.test_client()
    code, verifier, _ = code_for(client)
    assert _drop_server_connections(postgres_url) >= 1
    assert exchange(client, code, verifier).status_code == 500
    assert exchange(client, code, verifier).status_code == 200  # the same code is still good
