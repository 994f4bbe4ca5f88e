"""Versioned identifier hashes: which key made each stored national register and card
number hash, and re-keying them when the identifier key changes.

Every hash column has a key-id column beside it (``national_number_key``,
``card_number_key``), filled with the current key id whenever the hash is
written (a ``before_flush`` hook, so no writer can forget). After
``[provider] identifier_key_version`` is raised:

- at the next login with itsme or eID (or a forgotten-username / registration
  by card), :func:`rekey` finds rows that hold the same number under an older
  key and rewrites them under the current one — the number is known then;
- ``idp keys rehash-identifiers`` (:func:`rehash_all`) re-keys every other row
  at once *without* the numbers: it wraps the stored hash under the current
  key (HMAC of the old hash) and records the chain, e.g. ``1>2``, which
  :func:`rekey` can still match at login. After it ran, a stolen database is
  of no use without the *current* key.

The chains in use are few and listed in ``identifier_key_chains`` (no
personal data), so a login computes a handful of candidate hashes, not one per
row.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Mapped, Session, mapped_column

from idp.core.hashing import LEGACY_KID, identifier_hash, identifier_key_version, wrap_identifier_hash
from idp.core.storage import Account, Customer, db, utcnow

log = logging.getLogger(__name__)


class IdentifierKeyChain(db.Model):
    """A wrapped key id (``1>2``) that some stored hash carries."""

    __tablename__ = "identifier_key_chains"
    kid: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    created_at: Mapped[int] = mapped_column(sa.BigInteger, default=utcnow)


@dataclass(frozen=True)
class Column:
    model: type
    hash: str
    key: str
    kind: str  # "national-number" | "card-number"


COLUMNS = (
    Column(Account, "national_number_hash", "national_number_key", "national-number"),
    Column(Customer, "national_number_hash", "national_number_key", "national-number"),
    Column(Customer, "card_number_hash", "card_number_key", "card-number"),
)


def current_kid() -> str:
    return str(identifier_key_version())


@event.listens_for(Session, "before_flush")
def _stamp_key_ids(session, _flush_context, _instances) -> None:
    """A hash written without its key id was made under the current key."""
    for obj in list(session.new) + list(session.dirty):
        for col in COLUMNS:
            if not isinstance(obj, col.model):
                continue
            state = sa.inspect(obj)
            if not state.attrs[col.hash].history.has_changes() or state.attrs[col.key].history.has_changes():
                continue
            setattr(obj, col.key, None if getattr(obj, col.hash) is None else current_kid())


def _old_kids() -> list[str]:
    current = identifier_key_version()
    direct = [LEGACY_KID, *(str(v) for v in range(1, current))]
    chains = db.session.scalars(sa.select(IdentifierKeyChain.kid)).all()
    return direct + [c for c in chains if c != str(current)]


def rekey(national_number: str | None = None, card_number: str | None = None) -> int:
    """Rewrite under the current key the rows that hold this number under an older one.

    Called before a lookup by number; commits. How many rows were re-keyed.
    """
    values = {"national-number": national_number, "card-number": card_number}
    if not any(values.values()):
        return 0
    kids = _old_kids()
    changed = 0
    for col in COLUMNS:
        value = values[col.kind]
        if not value:
            continue
        table = col.model.__table__
        old = {identifier_hash(col.kind, value, kid) for kid in kids}
        # Look first: an UPDATE that matches nothing still takes SQLite's write lock.
        ids = db.session.scalars(sa.select(table.c.id).where(table.c[col.hash].in_(old))).all()
        if not ids:
            continue
        result = db.session.execute(
            sa.update(table)
            .where(table.c.id.in_(ids), table.c[col.hash].in_(old))
            .values({col.hash: identifier_hash(col.kind, value), col.key: current_kid()})
        )
        changed += result.rowcount
    if changed:
        db.session.commit()
        log.info("identifier hashes re-keyed at login: %d", changed)
    return changed


def rehash_all(batch_size: int = 1000) -> dict[str, int]:
    """Wrap every hash not made under the current key: ``idp keys rehash-identifiers``."""
    current = current_kid()
    counts: dict[str, int] = {}
    for col in COLUMNS:
        table = col.model.__table__
        done = 0
        while True:
            rows = db.session.execute(
                sa.select(table.c.id, table.c[col.hash], table.c[col.key])
                .where(
                    table.c[col.hash].is_not(None),
                    sa.or_(table.c[col.key].is_(None), table.c[col.key] != current),
                    ~sa.func.coalesce(table.c[col.key], LEGACY_KID).like(f"%>{current}"),
                )
                .limit(batch_size)
            ).all()
            for row_id, stored, kid in rows:
                chain = f"{kid or LEGACY_KID}>{current}"
                _register(chain)
                db.session.execute(
                    sa.update(table)
                    .where(table.c.id == row_id, table.c[col.hash] == stored)
                    .values({col.hash: wrap_identifier_hash(col.kind, stored, int(current)), col.key: chain})
                )
            db.session.commit()
            done += len(rows)
            if len(rows) < batch_size:
                break
        counts[f"{table.name}.{col.hash}"] = done
    return counts


def _register(chain: str) -> None:
    if db.session.get(IdentifierKeyChain, chain) is None:
        db.session.add(IdentifierKeyChain(kid=chain))
        db.session.flush()


def remaining() -> dict[str, int]:
    """Hashes per column that are not under the current key directly (wrapped or older)."""
    current = current_kid()
    out = {}
    for col in COLUMNS:
        table = col.model.__table__
        out[f"{table.name}.{col.hash}"] = db.session.execute(
            sa.select(sa.func.count())
            .select_from(table)
            .where(table.c[col.hash].is_not(None), sa.func.coalesce(table.c[col.key], LEGACY_KID) != current)
        ).scalar()
    return out
