"""A person's data: export it (GDPR art. 15 and 20) and erase it (art. 17).

Both walk the schema rather than a list of tables, so a table added later is
covered without touching this module: a row belongs to an account when a
column of its table is a foreign key to ``accounts.id`` holding the account's
id, or a foreign key to a row that belongs to the account (the refresh tokens
of its grants, the relying parties of its sessions), or a column named
``account_id`` (the audit trail, which has no foreign key so that it outlives
what it records). The customer record the operator imported stays: it is the
operator's data, shown in the export but never erased.

The export is one JSON document (schema ``idp-export/1``, see
``docs/privacy.md``); secrets and keyed hashes are never in it, only whether
they are set.

Erasure, in order: every SSO session of the account is ended (each relying
party that took part is sent a back-channel logout token), relying parties
that hold a grant outside any session are sent one too, and then in one
transaction every row of the account is deleted, its failure counters go and
the audit events about it lose every link to the person (account, IP address,
details); an ``account_erased`` event is kept without a link.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import sqlalchemy as sa
from flask import current_app

from idp.accounts.federation import CARD_SUBJECT
from idp.core import audit
from idp.core.sessions import end_sso
from idp.core.storage import Account, AuditEvent, Customer, Grant, SessionClient, SsoSession, db
from idp.login import lockout, otp
from idp.login.lockout import FailureCounter
from idp.oidc import backchannel
from idp.oidc.claims import subject_for

log = logging.getLogger(__name__)

EXPORT_FORMAT = "idp-export/1"
# Added to the logout tokens of an erasure, beside the back-channel logout event (docs/privacy.md).
ERASED_EVENT = "urn:x-idp:event:account-erased"
# Columns never exported: secrets and keyed hashes. The export says whether they are set.
_SECRET_SUFFIXES = ("_hash", "_secret", "_pem")
# Audit columns that can name a person; an erased account's events keep the rest.
_AUDIT_PERSONAL = ("account_id", "ip", "detail")
# Tables that name a person without a link to the account (explicit handling): a
# registration waiting for its e-mail link under the account's address.
_UNLINKED = (("pending_registrations", "email"),)


def _is_secret(column: str) -> bool:
    return column.endswith(_SECRET_SUFFIXES) or column in ("secret", "password", "token")


def owned_tables() -> list[sa.Table]:
    """Every table whose rows can belong to an account, parents before children."""
    out: list[sa.Table] = []
    for table in db.metadata.sorted_tables:
        if table.name == "accounts" or table.name == AuditEvent.__tablename__:
            continue
        linked = any(
            fk.column.table.name == "accounts" or fk.column.table in out
            for col in table.columns
            for fk in col.foreign_keys
        )
        if linked or "account_id" in table.c:
            out.append(table)
    return out


def _condition(table: sa.Table, account_id: int, owned: dict[str, sa.ColumnElement]) -> sa.ColumnElement:
    """Rows of ``table`` that belong to the account (``owned``: the conditions already made
    for the tables before it)."""
    terms = []
    for col in table.columns:
        for fk in col.foreign_keys:
            parent = fk.column.table
            if parent.name == "accounts":
                terms.append(col == account_id)
            elif parent.name in owned:
                terms.append(col.in_(sa.select(fk.column).where(owned[parent.name])))
    if "account_id" in table.c and not table.c.account_id.foreign_keys:
        terms.append(table.c.account_id == account_id)
    return sa.or_(*terms)


def _ownership(account_id: int) -> list[tuple[sa.Table, sa.ColumnElement]]:
    conditions: dict[str, sa.ColumnElement] = {}
    out = []
    for table in owned_tables():
        cond = _condition(table, account_id, conditions)
        conditions[table.name] = cond
        out.append((table, cond))
    return out


# ---------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------


def _row(mapping: Any) -> dict[str, Any]:
    out = {}
    for column, value in mapping.items():
        if _is_secret(column):
            out[column] = {"set": value is not None}
        elif isinstance(value, str) and value.startswith(CARD_SUBJECT):
            out[column] = CARD_SUBJECT + "(keyed hash of the card number)"  # an eID card link
        else:
            out[column] = value
    return out


def export_account(account: Account) -> dict[str, Any]:
    """Everything the provider holds about the account, as one JSON-ready document."""
    settings = current_app.extensions["idp.settings"]
    clients = current_app.extensions["idp.clients"]
    account_row = (
        db.session.execute(sa.select(Account.__table__).where(Account.__table__.c.id == account.id))
        .mappings()
        .one()
    )
    tables: dict[str, list] = {}
    for table, cond in _ownership(account.id):
        rows = [_row(r) for r in db.session.execute(sa.select(table).where(cond)).mappings()]
        if rows:
            tables[table.name] = rows
    for name, column in _UNLINKED:
        table = db.metadata.tables.get(name)
        value = getattr(account, column, None)
        if table is not None and value:
            rows = db.session.execute(sa.select(table).where(sa.func.lower(table.c[column]) == value.lower()))
            if found := [_row(r) for r in rows.mappings()]:
                tables[name] = found
    customer = db.session.get(Customer, account.customer_id) if account.customer_id else None
    if customer is not None:
        tables["customers"] = [
            _row(
                db.session.execute(
                    sa.select(Customer.__table__).where(Customer.__table__.c.id == customer.id)
                )
                .mappings()
                .one()
            )
        ]
    events = db.session.execute(
        sa.select(AuditEvent.__table__)
        .where(AuditEvent.account_id == account.id)
        .order_by(AuditEvent.at, AuditEvent.id)
    ).mappings()
    client_ids = {g["client_id"] for g in tables.get("grants", [])} | {
        c["client_id"] for c in tables.get("consents", [])
    }
    return {
        "format": EXPORT_FORMAT,
        "issuer": settings.issuer,
        "exported_at": int(time.time()),
        "account": _row(account_row),
        "applications": {
            cid: (clients.get(cid).settings.name if clients.get(cid) else cid) for cid in sorted(client_ids)
        },
        "tables": tables,
        "audit_events": [dict(e) for e in events],
    }


# ---------------------------------------------------------------------------
# Erasure
# ---------------------------------------------------------------------------


def _notify_relying_parties(account: Account) -> int:
    """End every session (back-channel logout to each RP in it), then tell the RPs that hold
    a grant outside any session. The number of sessions ended."""
    sessions = db.session.scalars(select_sessions(account.id)).all()
    for row in sessions:
        end_sso(row, reason="account_erased", extra_events={ERASED_EVENT: {}})
    told_clients = set(
        db.session.scalars(
            sa.select(SessionClient.client_id).where(SessionClient.session_id.in_([r.id for r in sessions]))
        )
    )
    clients = current_app.extensions["idp.clients"]
    jobs = []
    for grant in db.session.scalars(sa.select(Grant).where(Grant.account_id == account.id)):
        client = clients.get(grant.client_id)
        if grant.client_id in told_clients or client is None or not client.settings.backchannel_logout_uri:
            continue
        told_clients.add(grant.client_id)
        subject = subject_for(client.settings, account)
        token = backchannel.logout_token(grant.client_id, subject, grant.session_id or "", {ERASED_EVENT: {}})
        jobs.append((client.settings.backchannel_logout_uri, token))
    timeout = current_app.extensions["idp.settings"].backchannel_logout_timeout
    if jobs:
        with ThreadPoolExecutor(max_workers=min(8, len(jobs))) as pool:
            list(pool.map(lambda j: backchannel.post_logout_token(j[0], j[1], timeout), jobs))
    return len(sessions)


def select_sessions(account_id: int) -> sa.Select:
    return sa.select(SsoSession).where(SsoSession.account_id == account_id)


def _delete_unlinked(account: Account, counts: dict[str, int]) -> None:
    for name, column in _UNLINKED:
        table = db.metadata.tables.get(name)
        value = getattr(account, column, None)
        if table is None or not value:
            continue
        n = db.session.execute(
            sa.delete(table).where(sa.func.lower(table.c[column]) == value.lower())
        ).rowcount
        if n:
            counts[name] = n


def erase_account(account: Account, actor: str) -> dict[str, int]:
    """Erase the account: RPs told, every row that names it gone or made anonymous, at once.

    Returns how many rows went per table (and how many audit events were anonymised).
    """
    account_id = account.id
    counters = [lockout.password_key(account.username or ""), otp.failure_key("login", "", account_id)]
    sessions = _notify_relying_parties(account)
    counts: dict[str, int] = {}
    try:
        for table, cond in reversed(_ownership(account_id)):
            result = db.session.execute(sa.delete(table).where(cond))
            if result.rowcount:
                counts[table.name] = result.rowcount
        anonymised = db.session.execute(
            sa.update(AuditEvent)
            .where(AuditEvent.account_id == account_id)
            .values(**{c: None for c in _AUDIT_PERSONAL})
        ).rowcount
        counts["audit_events (anonymised)"] = anonymised
        db.session.execute(sa.delete(FailureCounter).where(FailureCounter.key.in_(counters)))
        _delete_unlinked(account, counts)
        db.session.execute(sa.delete(Account).where(Account.id == account_id))
        counts["accounts"] = 1
        audit.record("account_erased", actor=actor, sessions=sessions, commit=False)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    log.info("account erased actor=%s", actor)
    return counts


def describe(counts: dict[str, int]) -> Iterable[str]:
    for name, n in sorted(counts.items()):
        yield f"{name}: {n}"
