"""A dependency that goes down gets a clean 503 with Retry-After, and service comes back
without a restart (issue 12 part 5).

Redis is a ``redis-server`` of the test's own on a free port; PostgreSQL is
the shared server reached through a TCP relay the test cuts and restores.
Neither shared server is stopped.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.conftest import PORTAL_SECRET, csrf_from, make_user_in
from tests.support.oidc import basic
from tests.support.outages import OwnRedis, Relay
from tests.support.sms_login import login_at_provider


@pytest.fixture
def redis_server():
    server = OwnRedis().start()
    yield server
    server.close()


def refresh(client):
    return client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": "x" * 43},
        headers=basic("portal", PORTAL_SECRET),
    )


def test_redis_down_gives_a_503_page_and_json_then_recovers(make_app, redis_server):
    app = make_app({"storage": {"kv_url": redis_server.url}})
    client = app.test_client()
    assert client.get("/register/").status_code == 200  # the browser now has a session in Redis

    redis_server.stop()
    page = client.get("/register/")
    assert page.status_code == 503
    assert page.headers["Retry-After"].isdigit()
    assert "temporarily unavailable" in page.get_data(as_text=True).lower()
    anonymous = app.test_client()  # no session cookie: the view's own use of the store fails
    resp = anonymous.get("/authorize", query_string={"client_id": "portal"})
    assert resp.status_code in (400, 503)
    api = anonymous.post("/revoke", data={"token": "x"}, headers={"Authorization": "Basic cG9ydGFsOng="})
    assert api.status_code in (401, 503)
    if api.status_code == 503:
        assert api.get_json()["error"] == "temporarily_unavailable" and "Retry-After" in api.headers

    redis_server.start()
    page = client.get("/register/")
    assert page.status_code == 200
    assert csrf_from(page.get_data(as_text=True))


def test_redis_down_during_a_login_gives_503_not_500(make_app, redis_server):
    app = make_app({"storage": {"kv_url": redis_server.url}})
    make_user_in(app)
    client = app.test_client()
    resp = client.get("/login/-/password")
    token = csrf_from(resp.get_data(as_text=True))
    redis_server.stop()
    resp = client.post("/login/-/password", data={"csrf_token": token, "username": "alice", "password": "x"})
    assert resp.status_code == 503 and "Retry-After" in resp.headers


def test_postgresql_down_gives_503_and_recovers_without_restart(make_app, database_url, backend, make_user):
    if backend != "postgresql":
        pytest.skip("the embedded SQLite database cannot be unreachable")
    parts = urlsplit(database_url)
    relay = Relay(parts.hostname, parts.port or 5432).start()
    try:
        url = parts._replace(netloc=f"{parts.username}@127.0.0.1:{relay.port}").geturl()
        app = make_app({"storage": {"database_url": url}})
        make_user_in(app)
        client = app.test_client()
        login_at_provider(client, app)
        assert client.get("/account/").status_code == 200
        assert refresh(client).get_json()["error"] == "invalid_grant"

        relay.cut()
        page = client.get("/account/")
        assert page.status_code == 503 and page.headers["Retry-After"].isdigit()
        assert "temporarily unavailable" in page.get_data(as_text=True).lower()
        api = refresh(client)
        assert api.status_code == 503 and "Retry-After" in api.headers
        assert api.get_json()["error"] == "temporarily_unavailable"

        relay.restore()
        assert client.get("/account/").status_code == 200
        assert refresh(client).get_json()["error"] == "invalid_grant"
    finally:
        relay.cut()
