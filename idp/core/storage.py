"""Storage: the SQLAlchemy model set (Flask-SQLAlchemy) and its migrations.

SQLite is the embedded default, PostgreSQL the production database; Alembic
migrations under ``idp/core/migrations`` are the only way the schema changes
(``idp db upgrade``; the embedded default migrates itself at start-up).

Secrets are never stored in the clear: authorization codes, refresh tokens,
reset links and one-time codes are kept as SHA-256 digests; national register
and card numbers as keyed HMACs (see :mod:`idp.core.hashing`, which also makes the digests).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
    inspect,
    text,
)
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

log = logging.getLogger(__name__)


class Base(DeclarativeBase):
    pass


# Rows stay usable after a commit: re-reading every attribute after each commit
# cost the token endpoint a round trip per object.
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def utcnow() -> int:
    """Timestamps are integer seconds since the epoch: comparable on every backend."""
    return int(dt.datetime.now(dt.UTC).timestamp())


class Account(db.Model):
    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sub: Mapped[str] = mapped_column(String(64), unique=True)
    username: Mapped[str | None] = mapped_column(String(128))
    username_norm: Mapped[str | None] = mapped_column(String(128), unique=True)
    # The TR 39-style skeleton of the username (idp.accounts.usernames): look-alikes share it.
    username_skeleton: Mapped[str | None] = mapped_column(String(255), index=True)
    email: Mapped[str | None] = mapped_column(String(320))
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    phone: Mapped[str | None] = mapped_column(String(32))
    phone_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    given_name: Mapped[str | None] = mapped_column(String(200))
    family_name: Mapped[str | None] = mapped_column(String(200))
    birthdate: Mapped[str | None] = mapped_column(String(10))
    locale: Mapped[str | None] = mapped_column(String(8))
    address: Mapped[dict | None] = mapped_column(JSON)
    national_number_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    national_number_key: Mapped[str | None] = mapped_column(String(64))  # key id of the hash
    customer_id: Mapped[int | None] = mapped_column(Integer, index=True)
    terms_version: Mapped[str | None] = mapped_column(String(32))
    totp_secret: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[int] = mapped_column(BigInteger, default=utcnow)
    updated_at: Mapped[int] = mapped_column(BigInteger, default=utcnow, onupdate=utcnow)

    @property
    def display_name(self) -> str:
        names = " ".join(n for n in (self.given_name, self.family_name) if n)
        return names or self.username or self.sub


class Customer(db.Model):
    """A customer of the company, imported from its records (``idp customers import``).

    Card and national register numbers are kept only as keyed hashes (plus the
    last four digits of the card for display); see :mod:`idp.hashing`.
    """

    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_number: Mapped[str] = mapped_column(String(64), unique=True)
    card_number_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    card_number_key: Mapped[str | None] = mapped_column(String(64))  # key id of the hash
    card_last4: Mapped[str | None] = mapped_column(String(4))
    given_name: Mapped[str | None] = mapped_column(String(200))
    family_name: Mapped[str | None] = mapped_column(String(200))
    birthdate: Mapped[str | None] = mapped_column(String(10))
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(32))
    national_number_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    national_number_key: Mapped[str | None] = mapped_column(String(64))  # key id of the hash
    created_at: Mapped[int] = mapped_column(BigInteger, default=utcnow)
    updated_at: Mapped[int] = mapped_column(BigInteger, default=utcnow, onupdate=utcnow)
    contracts: Mapped[list[CustomerContract]] = relationship(
        order_by="CustomerContract.contract_number", lazy="selectin", viewonly=True
    )

    @property
    def contract_numbers(self) -> list[str]:
        return [c.contract_number for c in self.contracts]


class CustomerContract(db.Model):
    """Which customer holds a contract number (one customer per contract)."""

    __tablename__ = "customer_contracts"
    contract_number: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)


class FederatedIdentity(db.Model):
    """A link from an upstream identity (itsme sub, eID subject) to an account."""

    __tablename__ = "federated_identities"
    __table_args__ = (UniqueConstraint("issuer", "subject"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    method: Mapped[str] = mapped_column(String(16))
    issuer: Mapped[str] = mapped_column(String(255))
    subject: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[int] = mapped_column(BigInteger, default=utcnow)
    last_login_at: Mapped[int | None] = mapped_column(BigInteger)


class SsoSession(db.Model):
    """One browser's single sign-on session, shared by every relying party."""

    __tablename__ = "sso_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the OIDC sid
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    auth_time: Mapped[int] = mapped_column(BigInteger)
    level: Mapped[str] = mapped_column(String(16))
    methods: Mapped[list] = mapped_column(JSON)  # login methods used, e.g. ["password", "sms"]
    amr: Mapped[list] = mapped_column(JSON)
    created_at: Mapped[int] = mapped_column(BigInteger, default=utcnow)
    last_seen_at: Mapped[int] = mapped_column(BigInteger, default=utcnow)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    ended_at: Mapped[int | None] = mapped_column(BigInteger)
    user_agent: Mapped[str | None] = mapped_column(String(255))
    ip: Mapped[str | None] = mapped_column(String(64))


class SessionClient(db.Model):
    """A relying party that took part in an SSO session (logout reaches it)."""

    __tablename__ = "session_clients"
    session_id: Mapped[str] = mapped_column(
        ForeignKey("sso_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    client_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    created_at: Mapped[int] = mapped_column(BigInteger, default=utcnow)


class Grant(db.Model):
    """One authorization of a client by an account: the family of its tokens."""

    __tablename__ = "grants"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    client_id: Mapped[str] = mapped_column(String(128), index=True)
    session_id: Mapped[str | None] = mapped_column(String(64), index=True)
    scope: Mapped[str] = mapped_column(Text)
    claims: Mapped[dict | None] = mapped_column(JSON)
    auth_time: Mapped[int] = mapped_column(BigInteger)
    acr: Mapped[str] = mapped_column(String(255))
    amr: Mapped[list] = mapped_column(JSON)
    created_at: Mapped[int] = mapped_column(BigInteger, default=utcnow)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger)
    revoked_reason: Mapped[str | None] = mapped_column(String(64))
    # RFC 7638 thumbprint of the DPoP key the code / a public client's refresh tokens are bound to
    dpop_jkt: Mapped[str | None] = mapped_column(String(64))


class AuthorizationCode(db.Model):
    __tablename__ = "authorization_codes"
    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    grant_id: Mapped[str] = mapped_column(ForeignKey("grants.id", ondelete="CASCADE"), index=True)
    client_id: Mapped[str] = mapped_column(String(128))
    redirect_uri: Mapped[str] = mapped_column(Text)
    nonce: Mapped[str | None] = mapped_column(Text)
    code_challenge: Mapped[str] = mapped_column(String(128))
    code_challenge_method: Mapped[str] = mapped_column(String(8))
    expires_at: Mapped[int] = mapped_column(BigInteger)
    used_at: Mapped[int | None] = mapped_column(BigInteger)

    # Authlib's AuthorizationCodeMixin
    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        grant = db.session.get(Grant, self.grant_id)
        return grant.scope if grant else ""

    def get_nonce(self) -> str | None:
        return self.nonce


class RefreshToken(db.Model):
    __tablename__ = "refresh_tokens"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    grant_id: Mapped[str] = mapped_column(ForeignKey("grants.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[int] = mapped_column(BigInteger, default=utcnow)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    used_at: Mapped[int | None] = mapped_column(BigInteger)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger)


class Consent(db.Model):
    __tablename__ = "consents"
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    scope: Mapped[str] = mapped_column(Text)
    granted_at: Mapped[int] = mapped_column(BigInteger, default=utcnow)


class SigningKey(db.Model):
    """Token signing keys; the private part is encrypted with the keys passphrase."""

    __tablename__ = "signing_keys"
    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(8))
    private_pem: Mapped[str] = mapped_column(Text)
    public_jwk: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[int] = mapped_column(BigInteger, default=utcnow)
    retired_at: Mapped[int | None] = mapped_column(BigInteger)  # stopped signing
    drop_after: Mapped[int | None] = mapped_column(BigInteger)  # leaves the JWKS after


class AuditEvent(db.Model):
    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_at", "at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[int] = mapped_column(BigInteger, default=utcnow)
    event: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    account_id: Mapped[int | None] = mapped_column(Integer, index=True)
    client_id: Mapped[str | None] = mapped_column(String(128))
    method: Mapped[str | None] = mapped_column(String(16))
    ip: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict | None] = mapped_column(JSON)


# ---------------------------------------------------------------------------


def alembic_config(url: str) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(app: Flask, revision: str = "heads") -> None:
    with app.app_context():
        cfg = alembic_config(app.config["SQLALCHEMY_DATABASE_URI"])
        with db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)


def migration_state(app: Flask) -> tuple[set[str], set[str]]:
    """(the revisions the database is at, the newest revisions of the code)."""
    heads = app.extensions.get("idp.migration_heads")
    if heads is None:
        heads = set(
            ScriptDirectory.from_config(alembic_config(app.config["SQLALCHEMY_DATABASE_URI"])).get_heads()
        )
        app.extensions["idp.migration_heads"] = heads
    with app.app_context(), db.engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return set(), heads
        return set(conn.execute(text("SELECT version_num FROM alembic_version")).scalars()), heads


def first_row_autocommit(statement, params: dict) -> tuple | None:
    """Run one statement in a transaction of its own; its first row, or None.

    The hot paths of the token endpoints use it. On PostgreSQL the statement,
    compiled once per engine, goes straight to the driver in autocommit: one
    round trip, no BEGIN/COMMIT, no ORM; the driver prepares it after a few
    uses. Elsewhere (SQLite) it runs through SQLAlchemy on a connection of its own.
    Either way the request's ORM session is left alone.
    """
    engine = db.engine
    if engine.dialect.name != "postgresql":
        with engine.begin() as conn:
            row = conn.execute(statement, params).first()
        return None if row is None else tuple(row)
    cache = engine.__dict__.setdefault("_idp_compiled", {})
    sql = cache.get(statement)
    if sql is None:
        sql = cache[statement] = str(statement.compile(dialect=engine.dialect))
    pooled = engine.raw_connection()  # the pool's events (the idle-connection ping) apply
    conn = pooled.driver_connection
    try:
        conn.autocommit = True
        try:
            return conn.execute(sql, params).fetchone()
        finally:
            _leave_autocommit(pooled, conn)
    except engine.dialect.loaded_dbapi.Error as exc:
        if pooled.is_valid and engine.dialect.is_disconnect(exc, conn, None):
            # What SQLAlchemy does for its own statements when the server went away:
            # this connection is discarded, and every connection of the pool made
            # before now is replaced at its next checkout, also those in use elsewhere.
            engine.pool._invalidate(pooled, exc)
        raise
    finally:
        pooled.close()


def _leave_autocommit(pooled, conn) -> None:
    """Back to transactions before the connection returns to the pool, or it is discarded."""
    if conn.closed or conn.broken:
        return  # a lost connection: the caller invalidates the pool
    try:
        conn.autocommit = False
    except Exception:  # noqa: BLE001 - e.g. interrupted mid-statement: never reuse it
        if pooled.is_valid:
            pooled.invalidate()


POOL_PING_AFTER_IDLE = 10.0  # seconds a pooled connection may sit unused before it is tested


def ping_after_idle(engine) -> None:
    """Test a pooled connection before use when it sat idle, not on every checkout.

    ``pool_pre_ping`` costs a round trip per request; a connection returned a
    moment ago by a busy worker is alive. One that sat unused for
    :data:`POOL_PING_AFTER_IDLE` seconds (a quiet night, a database restart, a
    firewall dropping idle connections) is pinged first and, when dead,
    replaced before the request uses it, together with every connection of
    the pool made before it. A database that goes away while connections are
    busy makes a request on such a connection fail; the first failure marks
    every connection of the pool made before it for replacement.
    """

    @event.listens_for(engine, "connect")
    def _fresh(_dbapi_conn, record):
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_conn, record):
        if record is not None:
            record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _taken(dbapi_conn, record, _proxy):
        if time.monotonic() - record.info.get("idle_since", 0.0) < POOL_PING_AFTER_IDLE:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as exc:
            # This one is replaced, and so is every other made before now (as pool_pre_ping does).
            raise InvalidatePoolError(f"idle connection found dead: {exc}") from exc


def init_app(app: Flask) -> None:
    settings = app.extensions["idp.settings"]
    url = settings.database_url
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    engine_options = {}
    if url.startswith("sqlite"):
        Path(url.split(":///", 1)[1]).parent.mkdir(parents=True, exist_ok=True) if ":///" in url else None
        engine_options = {"connect_args": {"timeout": 30}}
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options
    db.init_app(app)
    if not url.startswith("sqlite"):
        with app.app_context():
            ping_after_idle(db.engine)
    if url.startswith("sqlite"):
        with app.app_context():

            @event.listens_for(db.engine, "connect")
            def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA foreign_keys=ON")
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA busy_timeout=30000")
                cur.close()
