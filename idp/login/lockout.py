"""Failure counters with lockout and growing delays (NIST SP 800-63B §5.2.2, OWASP ASVS V2.2.1).

One row per guarded thing, named by :func:`key` (``password:<keyed hash of the
normalised username>``, ``otp:account:<id>``, ``otp:<purpose>:<binding>``), in
the database so that new sessions, new IPs, resends and restarts never reset it.
Every try is *reserved* before it is
checked: :func:`attempt` increments the counter with one atomic
``UPDATE ... SET failures = failures + 1 ... RETURNING`` and only a caller whose
number is within the policy may go on. Fifty parallel guesses therefore never
get more than ``max_failures`` tries, on SQLite and PostgreSQL alike.

Reaching the limit locks the key for ``base * 2**lockouts`` seconds (capped at
``max_delay``) and starts a fresh count; a success clears everything.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import ngettext
from sqlalchemy import BigInteger, Integer, String, select, update
from sqlalchemy.orm import Mapped, mapped_column

from idp.accounts.users import normalize_username
from idp.core.hashing import keyed_digest
from idp.core.storage import db


class FailureCounter(db.Model):
    __tablename__ = "failure_counters"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    lockouts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[int] = mapped_column(BigInteger, default=0)


def key(
    kind: str, *, typed: str | None = None, account_id: int | None = None, binding: str | None = None
) -> str:
    """The name of a failure or throttle counter: the one builder of such keys.

    ``typed`` is something a person typed (a username, a contract number), already
    normalised: it appears only as a keyed hash, so that a password typed into the
    username field is never stored (and the counter of a name cannot be found
    without the key). ``account_id`` names an account's counter; ``binding`` a
    random value the provider issued (a login transaction's), kept as it is.
    """
    if typed is not None:
        return f"{kind}:{keyed_digest('throttle', kind, typed)}"
    if account_id is not None:
        return f"{kind}:account:{account_id}"
    if binding is not None:
        return f"{kind}:{binding}"[:200]
    raise ValueError("a counter key needs typed, account_id or binding")


def password_key(username: str) -> str:
    """The password-login counter of what was typed as a username."""
    return key("password", typed=normalize_username(username or ""))


@dataclass(frozen=True)
class Policy:
    max_failures: int
    base: int
    max_delay: int

    def delay(self, lockouts: int) -> int:
        return min(self.base * 2 ** min(lockouts, 30), self.max_delay)


class Locked(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"locked for {retry_after} s")
        self.retry_after = max(1, int(retry_after))


def _ensure_row(key: str, now: int) -> None:
    table = FailureCounter.__table__
    values = {"key": key, "failures": 0, "lockouts": 0, "locked_until": 0, "updated_at": now}
    if db.engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    db.session.execute(insert(table).values(**values).on_conflict_do_nothing(index_elements=["key"]))


def status(key: str, now: int) -> tuple[int, int]:
    """(failures so far, seconds until unlocked — 0 when not locked)."""
    row = db.session.get(FailureCounter, key, populate_existing=True)
    if row is None:
        return 0, 0
    return row.failures, max(0, row.locked_until - now)


def check(key: str, now: int) -> None:
    """Raise :class:`Locked` if the key is locked now (without using a try)."""
    _failures, wait = status(key, now)
    if wait:
        raise Locked(wait)


def attempt(key: str, policy: Policy, now: int) -> int:
    """Reserve one try: its number (1..max_failures), or :class:`Locked`."""
    _ensure_row(key, now)
    stmt = (
        update(FailureCounter)
        .where(FailureCounter.key == key, FailureCounter.locked_until <= now)
        .values(failures=FailureCounter.failures + 1, updated_at=now)
        .returning(FailureCounter.failures)
    )
    number = db.session.execute(stmt).scalar()
    db.session.commit()
    if number is None:
        raise Locked(status(key, now)[1])
    if number > policy.max_failures:
        # Over the limit: whoever used the last try locks the key; if that
        # never happened (a crash in between), this caller does.
        raise Locked(_lock(key, policy, now))
    return number


def failed(key: str, policy: Policy, now: int, number: int) -> int | None:
    """The reserved try ``number`` failed: seconds of lockout if this one reached the limit."""
    if number >= policy.max_failures:
        return _lock(key, policy, now)
    return None


def succeeded(key: str, now: int) -> None:
    db.session.execute(
        update(FailureCounter)
        .where(FailureCounter.key == key)
        .values(failures=0, lockouts=0, locked_until=0, updated_at=now)
    )
    db.session.commit()


def clear(keys: list[str]) -> int:
    """Forget the counters (support: ``idp users unlock``); how many were locked or counting."""
    rows = db.session.scalars(select(FailureCounter).where(FailureCounter.key.in_(keys))).all()
    n = sum(1 for r in rows if r.failures or r.locked_until)
    for r in rows:
        db.session.delete(r)
    db.session.commit()
    return n


def _lock(key: str, policy: Policy, now: int) -> int:
    for _ in range(5):
        row = db.session.get(FailureCounter, key, populate_existing=True)
        if row is None:
            return policy.base
        if row.locked_until > now:
            return row.locked_until - now
        until = now + policy.delay(row.lockouts)
        # Optimistic: only the first caller past the limit sets the lock.
        done = db.session.execute(
            update(FailureCounter)
            .where(
                FailureCounter.key == key,
                FailureCounter.lockouts == row.lockouts,
                FailureCounter.locked_until <= now,
                FailureCounter.failures >= policy.max_failures,
            )
            .values(locked_until=until, lockouts=FailureCounter.lockouts + 1, failures=0, updated_at=now)
            .returning(FailureCounter.locked_until)
        ).scalar()
        db.session.commit()
        if done is not None:
            return until - now
    return policy.base


def locked_message(retry_after: int) -> str:
    n = minutes(retry_after)
    return ngettext(
        "Too many failed attempts. Try again in %(num)d minute, or log in with itsme or your eID card.",
        "Too many failed attempts. Try again in %(num)d minutes, or log in with itsme or your eID card.",
        n,
    )


def minutes(seconds: int) -> int:
    return max(1, -(-int(seconds) // 60))
