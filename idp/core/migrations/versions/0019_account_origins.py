"""account_origins: accounts brought over from the old system (import or lazy migration)

Revision ID: 0019_account_origins
Revises: 0006_drop_dead_columns
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0019_account_origins"
down_revision = "0006_drop_dead_columns"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "account_origins",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("first_login_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("account_id"),
    )
    with op.batch_alter_table("account_origins", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_account_origins_source"), ["source"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("account_origins", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_account_origins_source"))
    op.drop_table("account_origins")
