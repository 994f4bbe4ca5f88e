"""Shared fixtures: a provider per test on SQLite and, when IDP_TEST_DATABASE_URL
points at PostgreSQL, on PostgreSQL too; a live HTTP server for tests that use
a real relying-party library; helpers to log in and run the code flow.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import shutil
import socket
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from werkzeug.serving import make_server

PORTAL_SECRET = "portal-" + "s" * 40
TEST_ENV = {
    "IDP_TEST_SECRET_KEY": "k" * 48,
    "IDP_TEST_KEYS_PASSPHRASE": "test keys passphrase, not for production",
    "IDP_TEST_PORTAL_SECRET": PORTAL_SECRET,
}
os.environ.update(TEST_ENV)

# One Playwright session per process: the browser fixtures live in a plugin, not in test modules.
pytest_plugins = ["tests.support.browser"]

BACKENDS = ["sqlite"] + (["postgresql"] if os.environ.get("IDP_TEST_DATABASE_URL") else [])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_config(issuer: str, database_url: str, instance: Path) -> dict:
    return {
        "provider": {
            "issuer": issuer,
            "environment": "development",
            "secret_key": "env:IDP_TEST_SECRET_KEY",
            "service_name": "MyOnlineServices",
        },
        "storage": {"database_url": database_url, "kv_url": "memory://"},
        "keys": {"passphrase": "env:IDP_TEST_KEYS_PASSPHRASE"},
        "sms": {"backend": "outbox", "outbox": str(instance / "outbox.jsonl")},
        "mail": {
            "backend": "outbox",
            "outbox": str(instance / "outbox.jsonl"),
            "sender": "no-reply@example.org",
        },
        "passwords": {"argon2": {"time_cost": 2, "memory_cost": 19456, "parallelism": 1}},
        # Tests act as the outbound worker: the helpers that read the outbox run one pass first.
        "outbound": {"worker": "external"},
        "clients": [
            {
                "client_id": "portal",
                "name": "Customer portal",
                "type": "confidential",
                "client_secret": "env:IDP_TEST_PORTAL_SECRET",
                "redirect_uris": ["https://portal.example.com/callback", "http://127.0.0.1:8123/callback"],
                "post_logout_redirect_uris": ["https://portal.example.com/logged-out"],
                "first_party": True,
            },
            {
                "client_id": "app",
                "name": "Mobile app",
                "type": "public",
                "redirect_uris": [
                    "be.example.app:/callback",
                    "https://app.example.com/callback",
                    "http://127.0.0.1/callback",
                ],
                "post_logout_redirect_uris": ["be.example.app:/logged-out"],
                "first_party": True,
            },
            {
                "client_id": "partner",
                "name": "Partner service",
                "type": "confidential",
                "token_endpoint_auth_method": "client_secret_post",
                "client_secret": "env:IDP_TEST_PORTAL_SECRET",
                "redirect_uris": ["https://partner.example.net/cb"],
                "first_party": False,
            },
        ],
    }


def merge(base: dict, extra: dict | None) -> dict:
    out = dict(base)
    for key, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


# ---------------------------------------------------------------------------
# Databases: a migrated template per backend, cloned or truncated per test
# ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    from idp import create_app

    folder = tmp_path_factory.mktemp("template")
    db = folder / "idp.sqlite3"
    create_app(overrides=base_config("http://localhost", f"sqlite:///{db}", folder), instance_dir=str(folder))
    return db


@pytest.fixture(scope="session")
def postgres_url(request, worker_id):
    """A database of this test run's own (unique per run and xdist worker), dropped at the end."""
    base = os.environ.get("IDP_TEST_DATABASE_URL")
    if not base:
        yield None
        return
    run = getattr(request.config, "workerinput", {}).get("testrunuid") or secrets.token_hex(4)
    name = f"idp_test_{run[:8]}_{worker_id}".replace("-", "_")
    engine = sa.create_engine(
        base.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    parts = urlsplit(base)
    yield parts._replace(path="/" + name).geturl()
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(scope="session")
def worker_id(request):
    return getattr(request.config, "workerinput", {}).get("workerid", "main")


def _truncate_postgres(url: str) -> None:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        tables = [
            r[0]
            for r in conn.execute(
                sa.text(
                    "SELECT tablename FROM pg_tables "
                    "WHERE schemaname='public' AND tablename <> 'alembic_version'"
                )
            )
        ]
        keep = "signing_keys" in tables
        tables = [t for t in tables if t != "signing_keys"]
        if tables:
            conn.execute(
                sa.text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE")
            )
        if keep:
            # The active signing key is kept (generating one per test is slow); earlier rotations go.
            conn.execute(sa.text("DELETE FROM signing_keys WHERE retired_at IS NOT NULL"))
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
def database_url(backend, tmp_path, sqlite_template, postgres_url):
    if backend == "sqlite":
        target = tmp_path / "idp.sqlite3"
        shutil.copy(sqlite_template, target)
        return f"sqlite:///{target}"
    _truncate_postgres(postgres_url)
    return postgres_url


class EnglishClient(FlaskClient):
    """Test clients ask for English pages unless a test says otherwise (the default is French)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.environ_base.setdefault("HTTP_ACCEPT_LANGUAGE", "en")


@pytest.fixture
def make_app(database_url, tmp_path):
    """Build a provider with config overrides; ``issuer`` defaults to http://localhost."""
    from idp import create_app

    apps = []

    def factory(extra: dict | None = None, issuer: str = "http://localhost"):
        config = merge(base_config(issuer, database_url, tmp_path), extra)
        app = create_app(overrides=config, instance_dir=str(tmp_path))
        app.config["TESTING"] = True
        app.test_client_class = EnglishClient
        apps.append(app)
        return app

    yield factory
    for app in apps:
        if "idp.outbound_thread" in app.extensions:
            app.extensions["idp.outbound_thread"].close()
        with app.app_context():
            from idp.core.storage import db

            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


# ---------------------------------------------------------------------------
# Live server
# ---------------------------------------------------------------------------


class LiveServer:
    def __init__(self, app, port: int) -> None:
        self.app = app
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._server = make_server("127.0.0.1", port, app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._server.shutdown()
        self._thread.join(5)


@pytest.fixture
def live_server(make_app):
    servers = []

    def start(extra: dict | None = None):
        port = free_port()
        app = make_app(extra, issuer=f"http://127.0.0.1:{port}")
        server = LiveServer(app, port).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


# ---------------------------------------------------------------------------
# Accounts and the code flow through the Flask test client
# ---------------------------------------------------------------------------

PASSWORD = "correct horse battery staple"


def ready(app, sub: str) -> None:
    from tests.support.sms_login import ready as mark_ready

    mark_ready(app, sub)


def make_user_in(app, username="alice", password=PASSWORD, **kwargs) -> str:
    """A local account with verified e-mail and mobile that has nothing left to do; its sub."""
    from idp.accounts.users import create_local_account

    kwargs.setdefault("email", f"{username}@example.com")
    kwargs.setdefault("phone", "+32470123456")
    kwargs.setdefault("given_name", "Alice")
    kwargs.setdefault("family_name", "Martin")
    with app.app_context():
        sub = create_local_account(username, password=password, **kwargs).sub
    ready(app, sub)  # accepted the current terms: no required action waits
    return sub


@pytest.fixture
def make_user(app):
    def factory(username="alice", password=PASSWORD, **kwargs):
        return make_user_in(app, username, password, **kwargs)

    return factory


@pytest.fixture
def user(make_user):
    return make_user()


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_params(client_id="portal", redirect_uri="https://portal.example.com/callback", **extra):
    verifier, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": "openid profile email phone offline_access",
        "state": secrets.token_urlsafe(8),
        "nonce": secrets.token_urlsafe(8),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    params.update({k: v for k, v in extra.items() if v is not None})
    for k in [k for k, v in extra.items() if v is None]:
        params.pop(k, None)
    return params, verifier


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def csrf_from(html: str) -> str:
    import re

    m = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', html
    )
    assert m, "no CSRF token on the page"
    return m.group(1)


def login_with_password(client, location: str, username="alice", password=PASSWORD, number="+32470123456"):
    """Follow a /login/<tx> redirect through the password page and the SMS code page.

    Returns the response after the last step (a 303 onward when the login succeeded).
    """
    from flask import current_app

    from tests.support.sms_login import last_code

    tx_path = urlsplit(location).path
    page = client.get(tx_path + "/password")
    assert page.status_code == 200, page.data
    token = csrf_from(page.get_data(as_text=True))
    resp = client.post(
        tx_path + "/password", data={"csrf_token": token, "username": username, "password": password}
    )
    if resp.status_code == 303 and urlsplit(resp.location).path.endswith("/code"):
        code_path = urlsplit(resp.location).path
        page = client.get(code_path)
        assert page.status_code == 200, page.data
        app = client.application if hasattr(client, "application") else current_app
        resp = client.post(
            code_path,
            data={"csrf_token": csrf_from(page.get_data(as_text=True)), "code": last_code(app, number)},
        )
    return resp


def get_code(client, params, username="alice", password=PASSWORD):
    """Run the authorization request, logging in when asked; returns the redirect's query."""
    resp = client.get("/authorize", query_string=params)
    if resp.status_code == 302 and "/login/" in resp.location:
        resp = login_with_password(client, resp.location, username, password)
        assert resp.status_code == 303, resp.get_data(as_text=True)
        resp = client.get(resp.location)
    assert resp.status_code == 302, resp.get_data(as_text=True)
    return query_of(resp.location)


def exchange(
    client,
    code,
    verifier,
    client_id="portal",
    redirect_uri="https://portal.example.com/callback",
    auth=("portal", PORTAL_SECRET),
):
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
    }
    headers = {}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    else:
        data["client_id"] = client_id
    return client.post("/token", data=data, headers=headers)
