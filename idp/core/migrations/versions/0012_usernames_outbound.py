"""usernames: PRECIS comparison form and look-alike skeleton; the outbound message queue

Revision ID: 0012_usernames_outbound
Revises: 0011_dpop_binding
Create Date: 2026-12-02

Every existing account gets ``username_skeleton``; its ``username_norm`` is
recomputed with the PRECIS rule unless that would collide with another
account's (then the old form stays, and both owners can still log in).
"""

import sqlalchemy as sa
from alembic import op

from idp.accounts.usernames import normalize_username, skeleton

revision = "0012_usernames_outbound"
down_revision = "0011_dpop_binding"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("username_skeleton", sa.String(length=255), nullable=True))
        batch.create_index("ix_accounts_username_skeleton", ["username_skeleton"])
    conn = op.get_bind()
    accounts = sa.table(
        "accounts",
        sa.column("id", sa.Integer),
        sa.column("username", sa.String),
        sa.column("username_norm", sa.String),
        sa.column("username_skeleton", sa.String),
    )
    rows = conn.execute(sa.select(accounts.c.id, accounts.c.username, accounts.c.username_norm)).all()
    taken = {r.username_norm for r in rows}
    for row in rows:
        if not row.username:
            continue
        norm = normalize_username(row.username)
        values = {"username_skeleton": skeleton(row.username)}
        if norm != row.username_norm and norm not in taken:
            values["username_norm"] = norm
            taken.add(norm)
        conn.execute(sa.update(accounts).where(accounts.c.id == row.id).values(**values))


    op.create_table(
        "outbound_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("release", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.BigInteger(), nullable=False),
        sa.Column("locked_until", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("finished_at", sa.BigInteger(), nullable=True),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    op.create_index("ix_outbound_messages_status", "outbound_messages", ["status"])
    op.create_index("ix_outbound_messages_next_attempt_at", "outbound_messages", ["next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_outbound_messages_next_attempt_at", table_name="outbound_messages")
    op.drop_index("ix_outbound_messages_status", table_name="outbound_messages")
    op.drop_table("outbound_messages")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_index("ix_accounts_username_skeleton")
        batch.drop_column("username_skeleton")
