"""The token endpoints' hot storage: claiming a code, reading a grant with its account.

A code exchange claims the code (``UPDATE … WHERE used_at IS NULL …
RETURNING``), stores the refresh token it will hand out, and reads the grant
and the account the tokens are made from; the claim commits at once, so a
refused request (wrong PKCE verifier, say) has still used the code up.

* **PostgreSQL:** one statement (data-modifying CTEs) in a transaction of its
  own, through :func:`idp.storage.first_row_autocommit`: one round trip, one
  commit. Of concurrent redemptions of one code, the first takes the row
  lock; the others wait for its commit, then find ``used_at`` set and claim
  nothing.
* **SQLite** (the embedded default) has no data-modifying CTE: the same steps
  as three statements in one transaction.

UserInfo and introspection read a grant and its account the same way, in one
statement. Only the columns the tokens need are read: the grant's, and the
account's ``status`` and claim columns (:data:`idp.claims.ACCOUNT_CLAIM_COLUMNS`).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from sqlalchemy import bindparam, insert, select, update

from idp.core.hashing import digest
from idp.core.storage import (
    Account,
    AuthorizationCode,
    Grant,
    RefreshToken,
    db,
    first_row_autocommit,
)
from idp.oidc.claims import ACCOUNT_CLAIM_COLUMNS


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


_codes, _grants, _accounts = AuthorizationCode.__table__, Grant.__table__, Account.__table__
_refresh = RefreshToken.__table__
CODE_FIELDS = ("redirect_uri", "nonce", "code_challenge", "code_challenge_method")
GRANT_FIELDS = ("id", "account_id", "client_id", "session_id", "scope", "claims", "auth_time", "acr", "amr")
GRANT_FIELDS += ("revoked_at", "revoked_reason", "dpop_jkt")
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
    .returning(_codes.c.grant_id, *(_codes.c[f] for f in CODE_FIELDS))
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


def _claim_in_one_statement(store_refresh: bool):
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


_CLAIM_ONE_STATEMENT = {True: _claim_in_one_statement(True), False: _claim_in_one_statement(False)}
_STORE_REFRESH = insert(_refresh).values(_refresh_row(bindparam("claimed_grant")))
_READ_GRANT = (
    select(*_GRANT_AND_ACCOUNT)
    .select_from(_grants)
    .join(_accounts, _accounts.c.id == _grants.c.account_id)
    .where(_grants.c.id == bindparam("claimed_grant"))
)


def claim_code(
    code_hash: str, client_id: str, now: int, refresh_token: str | None, refresh_expires: int
) -> ClaimedCode | None:
    """Claim an unused, unexpired code of this client and store its refresh token (if any).

    None when there was no such code to claim. Committed on return.
    """
    store_refresh = refresh_token is not None
    params = {
        "claim_hash": code_hash,
        "claim_client": client_id,
        "claim_at": now,
        "refresh_hash": digest(refresh_token) if store_refresh else None,
        "refresh_expires": refresh_expires,
    }
    if db.engine.dialect.name == "postgresql":
        row = first_row_autocommit(_CLAIM_ONE_STATEMENT[store_refresh], params)
    else:
        row = _claim_in_steps(params, store_refresh)
    if row is None:
        return None
    n = len(CODE_FIELDS)
    grant, account = _grant_and_account(row[n:])
    return ClaimedCode(*row[:n], grant=grant, account=account, refresh_token=refresh_token)


def _claim_in_steps(params: dict, store_refresh: bool) -> tuple | None:
    with db.engine.begin() as conn:
        code = conn.execute(_CLAIM, params).first()
        if code is None:
            return None
        params["claimed_grant"] = code.grant_id
        if store_refresh:
            conn.execute(_STORE_REFRESH, params)
        rest = conn.execute(_READ_GRANT, params).first()
    return (*code[1:], *rest)


def store_refresh_token(conn, grant_id: str, refresh_token: str, now: int, expires: int) -> None:
    """Store a refresh token of this grant (as its digest) on ``conn``; the caller commits."""
    conn.execute(
        _STORE_REFRESH,
        {
            "claimed_grant": grant_id,
            "refresh_hash": digest(refresh_token),
            "claim_at": now,
            "refresh_expires": expires,
        },
    )


def read_grant(grant_id: str) -> tuple[Any, Any] | None:
    """The grant and its account (their token-relevant columns, by name), or None."""
    row = first_row_autocommit(_READ_GRANT, {"claimed_grant": grant_id})
    return None if row is None else _grant_and_account(row)


def _grant_and_account(row) -> tuple[Any, Any]:
    n = len(GRANT_FIELDS)
    grant = SimpleNamespace(**dict(zip(GRANT_FIELDS, row[:n], strict=True)))
    account = SimpleNamespace(**dict(zip(ACCOUNT_FIELDS, row[n:], strict=True)))
    return grant, account
