"""Redeeming an authorization code: the claim, in as few round trips as the database allows.

The code exchange is the provider's busiest write. One redemption claims the
code (``UPDATE … WHERE used_at IS NULL … RETURNING``), stores the refresh token
it will hand out, and reads the grant and the account the tokens are made
from; the claim commits at once, so a refused request (wrong PKCE verifier,
say) has still used the code up.

* **PostgreSQL:** one statement (data-modifying CTEs), sent in autocommit: one
  round trip, one commit. The statement is built and compiled once and sent
  straight to the driver, which prepares it after a few uses. Of concurrent
  redemptions of one code, the first takes the row lock; the others wait for
  its commit, then find ``used_at`` set and claim nothing.
* **SQLite** (the embedded default) has no data-modifying CTE: the same steps
  as three statements in one transaction, through SQLAlchemy.

Only the columns the tokens need are read: the grant, and the account's
``status`` and claim columns (:data:`idp.claims.ACCOUNT_CLAIM_COLUMNS`).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from sqlalchemy import bindparam, insert, select, update

from .claims import ACCOUNT_CLAIM_COLUMNS
from .storage import Account, AuthorizationCode, Grant, RefreshToken, db


@dataclass(frozen=True)
class ClaimedCode:
    """An authorization code as its redemption claimed it (Authlib's AuthorizationCodeMixin),
    with the grant and the account it was issued for and the refresh token stored for it."""

    redirect_uri: str
    nonce: str | None
    code_challenge: str
    code_challenge_method: str
    grant: Any  # the grant's columns, by name
    account: Any  # the account's status and claim columns, by name
    refresh_token: str | None

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_scope(self) -> str:
        return self.grant.scope

    def get_auth_time(self) -> int:
        return self.grant.auth_time


_codes, _grants, _accounts = AuthorizationCode.__table__, Grant.__table__, Account.__table__
_refresh = RefreshToken.__table__
CODE_FIELDS = ("grant_id", "redirect_uri", "nonce", "code_challenge", "code_challenge_method")
GRANT_FIELDS = ("id", "client_id", "session_id", "scope", "claims", "auth_time", "acr", "amr")
GRANT_FIELDS += ("revoked_at", "revoked_reason")
ACCOUNT_FIELDS = ("status", *ACCOUNT_CLAIM_COLUMNS)

# Bind names differ from column names: SQLAlchemy reads a bind named like a column
# of an UPDATE as a value for that column.
_CLAIM = (
    update(_codes)
    .where(
        _codes.c.code_hash == bindparam("claim_hash"),
        _codes.c.used_at.is_(None),
        _codes.c.client_id == bindparam("claim_client"),
        _codes.c.expires_at >= bindparam("claim_at"),
    )
    .values(used_at=bindparam("claim_at"))
    .returning(*(_codes.c[f] for f in CODE_FIELDS))
)
_GRANT_AND_ACCOUNT = (
    *(_grants.c[f] for f in GRANT_FIELDS),
    *(_accounts.c[f] for f in ACCOUNT_FIELDS),
)


def _refresh_row(grant_id) -> dict:
    return {
        "token_hash": bindparam("refresh_hash", type_=_refresh.c.token_hash.type),
        "grant_id": grant_id,
        "created_at": bindparam("claim_at", type_=_refresh.c.created_at.type),
        "expires_at": bindparam("refresh_expires", type_=_refresh.c.expires_at.type),
    }


def _one_statement(store_refresh: bool):
    """PostgreSQL: claim, store the refresh token, read grant and account; one statement."""
    claimed = _CLAIM.cte("claimed")
    stmt = (
        select(*(claimed.c[f] for f in CODE_FIELDS), *_GRANT_AND_ACCOUNT)
        .select_from(claimed)
        .join(_grants, _grants.c.id == claimed.c.grant_id)
        .join(_accounts, _accounts.c.id == _grants.c.account_id)
    )
    if store_refresh:
        row = _refresh_row(claimed.c.grant_id)
        stored = insert(_refresh).from_select(list(row), select(*row.values()))
        stmt = stmt.add_cte(stored.cte("stored"))
    return stmt


_ONE_STATEMENT = {True: _one_statement(True), False: _one_statement(False)}
_STORE_REFRESH = insert(_refresh).values(_refresh_row(bindparam("claimed_grant")))
_READ = (
    select(*_GRANT_AND_ACCOUNT)
    .select_from(_grants)
    .join(_accounts, _accounts.c.id == _grants.c.account_id)
    .where(_grants.c.id == bindparam("claimed_grant"))
)


def claim_code(
    code_hash: str, client_id: str, now: int, refresh_hash: str | None, refresh_expires: int
) -> tuple | None:
    """Claim an unused, unexpired code of this client and store its refresh token (if any).

    Returns the code's, the grant's and the account's fields in the order of
    :data:`CODE_FIELDS`, :data:`GRANT_FIELDS` and :data:`ACCOUNT_FIELDS`, or
    None when there was no such code to claim. Committed on return.
    """
    params = {
        "claim_hash": code_hash,
        "claim_client": client_id,
        "claim_at": now,
        "refresh_hash": refresh_hash,
        "refresh_expires": refresh_expires,
    }
    engine = db.engine
    if engine.dialect.name == "postgresql":
        return _claim_postgresql(engine, params, refresh_hash is not None)
    conn = db.session.connection()
    code = conn.execute(_CLAIM, params).first()
    if code is None:
        db.session.rollback()
        return None
    params["claimed_grant"] = code.grant_id
    if refresh_hash is not None:
        conn.execute(_STORE_REFRESH, params)
    rest = conn.execute(_READ, params).first()
    db.session.commit()
    return None if rest is None else (*code, *rest)


def _claim_postgresql(engine, params: dict, store_refresh: bool) -> tuple | None:
    sql = _compiled(engine, store_refresh)
    pooled = engine.raw_connection()  # the pool's events (the idle-connection ping) apply
    try:
        conn = pooled.driver_connection
        conn.autocommit = True  # the statement is its own transaction: no BEGIN, no COMMIT
        try:
            return conn.execute(sql, params).fetchone()
        finally:
            if not conn.closed:
                conn.autocommit = False
    except engine.dialect.loaded_dbapi.OperationalError as exc:
        # What SQLAlchemy does for its own statements: a broken connection does not go
        # back to the pool, and when the server went away the pool's idle ones go too.
        gone = engine.dialect.is_disconnect(exc, pooled.driver_connection, None)
        pooled.invalidate(exc)
        if gone:
            engine.pool.dispose()
        raise
    finally:
        pooled.close()


def _compiled(engine, store_refresh: bool) -> str:
    cache = engine.__dict__.setdefault("_idp_redemption_sql", {})
    sql = cache.get(store_refresh)
    if sql is None:
        sql = cache[store_refresh] = str(_ONE_STATEMENT[store_refresh].compile(dialect=engine.dialect))
    return sql


def claimed_code(row: tuple, refresh_token: str | None) -> ClaimedCode:
    n_code, n_grant = len(CODE_FIELDS), len(GRANT_FIELDS)
    code = row[1:n_code]
    grant = SimpleNamespace(**dict(zip(GRANT_FIELDS, row[n_code : n_code + n_grant], strict=True)))
    account = SimpleNamespace(**dict(zip(ACCOUNT_FIELDS, row[n_code + n_grant :], strict=True)))
    return ClaimedCode(*code, grant=grant, account=account, refresh_token=refresh_token)
