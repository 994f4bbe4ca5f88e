"""Where an account came from when it was brought over from the old system, and the cut-over report.

An account imported by ``idp users import`` or created by the lazy migration
(:mod:`idp.accounts.legacy_source`) has one :class:`AccountOrigin` row. Its
``first_login_at`` is set at the account's first successful password login
here, which is also when a legacy hash is replaced by Argon2id
(:func:`note_login`). ``idp users migration-status`` reads the counts
(:func:`migration_status`) so the operator knows when the old system can go.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, ForeignKey, String, func, select
from sqlalchemy.orm import Mapped, mapped_column

from idp.core.storage import Account, db, utcnow

IMPORT = "import"
LAZY = "lazy"


class AccountOrigin(db.Model):
    """One account brought over from the old system: how, when, and when it first signed in here."""

    __tablename__ = "account_origins"
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    source: Mapped[str] = mapped_column(String(8), index=True)  # IMPORT | LAZY
    created_at: Mapped[int] = mapped_column(BigInteger, default=utcnow)
    first_login_at: Mapped[int | None] = mapped_column(BigInteger)


def brought_over(account: Account) -> bool:
    """Whether the account came from the old system (import or lazy migration)."""
    return db.session.get(AccountOrigin, account.id) is not None


def note_login(account: Account) -> None:
    """Record the first password login of a migrated account (the caller commits)."""
    origin = db.session.get(AccountOrigin, account.id)
    if origin is not None and origin.first_login_at is None:
        origin.first_login_at = utcnow()


@dataclass(frozen=True)
class MigrationStatus:
    imported: int
    imported_logged_in: int
    imported_legacy_hash: int
    lazy: int
    last_first_login_at: int | None

    @property
    def imported_waiting(self) -> int:
        return self.imported - self.imported_logged_in


def migration_status(current_prefix: str) -> MigrationStatus:
    """Counts for the cut-over; ``current_prefix`` starts every hash that needs no re-hash
    (``$argon2id$v=19$m=…,t=…,p=…$``), so anything else is still the old system's hash."""

    def count(*where) -> int:
        stmt = (
            select(func.count())
            .select_from(AccountOrigin)
            .join(Account, Account.id == AccountOrigin.account_id)
        )
        return db.session.scalar(stmt.where(*where)) or 0

    imported = AccountOrigin.source == IMPORT
    return MigrationStatus(
        imported=count(imported),
        imported_logged_in=count(imported, AccountOrigin.first_login_at.is_not(None)),
        imported_legacy_hash=count(
            imported,
            Account.password_hash.is_not(None),
            ~Account.password_hash.startswith(current_prefix, autoescape=True),
        ),
        lazy=count(AccountOrigin.source == LAZY),
        last_first_login_at=db.session.scalar(select(func.max(AccountOrigin.first_login_at))),
    )
