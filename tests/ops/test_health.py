"""/healthz answers without touching anything; /readyz names each check and turns 503 when one fails."""

from __future__ import annotations

import pytest

from idp import create_app
from idp.core import health
from tests.conftest import base_config, merge
from tests.support.own_services import OwnPostgres, OwnRedis
from tests.support.schema import schema_behind


def test_healthz_answers_without_a_session(client):
    resp = client.get("/healthz")
    assert resp.status_code == 200
    assert resp.get_json() == {"status": "ok"}
    assert "Set-Cookie" not in resp.headers


def test_readyz_names_every_check_and_answers_200_when_all_pass(client):
    resp = client.get("/readyz")
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "shared_store", "signing_key", "outbound_queue"}
    assert all(check["ok"] for check in body["checks"].values())
    assert "Set-Cookie" not in resp.headers


def test_readyz_is_503_while_a_message_waits_past_stuck_after(app, client):
    from sqlalchemy import update

    from idp.core.storage import db
    from idp.services import queue

    with app.app_context():
        queue.enqueue("sms", "+32470123456", {"text": "hello"})
        db.session.commit()
        db.session.execute(update(queue.OutboundMessage).values(created_at=queue._now() - 3600))
        db.session.commit()
    resp = client.get("/readyz")
    assert resp.status_code == 503
    assert resp.get_json()["checks"]["outbound_queue"]["ok"] is False


def test_readyz_ignores_a_session_cookie(app, client):
    client.set_cookie("idp_session", "x" * 43)
    store_reads = []
    kv = app.extensions["idp.kv"]
    original = kv.get
    kv.get = lambda key: store_reads.append(key) or original(key)
    assert client.get("/readyz").status_code == 200
    assert store_reads == ["readyz"]  # the check's own round trip, no session lookup


def test_a_failing_check_turns_readyz_503_without_leaking_its_error(app, client):
    def broken(_app):
        raise RuntimeError("password=hunter2 at db.internal")

    health.add_check(app, "queue", broken)
    resp = client.get("/readyz")
    assert resp.status_code == 503
    body = resp.get_json()
    assert body["status"] == "fail"
    assert body["checks"]["queue"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True
    assert "hunter2" not in resp.get_data(as_text=True)


def test_readyz_fails_when_the_schema_is_behind(app, client):
    with schema_behind(app):
        resp = client.get("/readyz")
    assert resp.status_code == 503
    assert "idp db upgrade" in resp.get_json()["checks"]["database"]["reason"]


def _own_app(tmp_path, database_url: str, kv_url: str = "memory://"):
    config = merge(base_config("http://localhost", database_url, tmp_path), {"storage": {"kv_url": kv_url}})
    app = create_app(overrides=config, instance_dir=str(tmp_path))
    return app


def _wait_for(client, status: int, tries: int = 100):
    for _ in range(tries):
        resp = client.get("/readyz")
        if resp.status_code == status:
            return resp
    raise AssertionError(f"/readyz never answered {status}: {resp.get_json()}")


@pytest.mark.redis
def test_readyz_follows_redis_going_away_and_coming_back(tmp_path):
    redis = OwnRedis().start()
    try:
        app = _own_app(tmp_path, f"sqlite:///{tmp_path / 'idp.sqlite3'}", redis.url)
        client = app.test_client()
        assert client.get("/readyz").status_code == 200
        redis.stop()
        body = _wait_for(client, 503).get_json()
        assert body["checks"]["shared_store"]["ok"] is False
        assert body["checks"]["database"]["ok"] is True
        assert client.get("/healthz").status_code == 200
        redis.start()
        _wait_for(client, 200)
    finally:
        redis.close()


def test_readyz_follows_postgresql_going_away_and_coming_back(tmp_path):
    pg = OwnPostgres().start()
    try:
        app = _own_app(tmp_path, pg.url)
        client = app.test_client()
        assert client.get("/readyz").status_code == 200
        pg.stop()
        body = _wait_for(client, 503).get_json()
        assert body["checks"]["database"]["ok"] is False
        assert body["checks"]["shared_store"]["ok"] is True
        assert client.get("/healthz").status_code == 200
        pg.start()
        _wait_for(client, 200)
        with app.app_context():
            from idp.core.storage import db

            db.engine.dispose()
    finally:
        pg.close()


def test_the_production_persistence_check_wants_redis_with_its_append_only_file():
    import redis
    from flask import Flask

    from idp.core.kv import RedisStore

    server = OwnRedis().start()
    try:
        app = Flask("readiness")
        app.extensions["idp.kv"] = RedisStore(server.url)
        assert health._shared_store_durable(app) is None
        redis.Redis.from_url(server.url).config_set("appendonly", "no")
        assert "appendonly yes" in health._shared_store_durable(app)
    finally:
        server.close()
