"""access tokens are no longer stored: their jti names their grant, revocation deny-lists them

Revision ID: 0005_no_access_token_rows
Revises: 0004_merge
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_no_access_token_rows"
down_revision = "0004_merge"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_access_tokens_expires_at", table_name="access_tokens")
    op.drop_index("ix_access_tokens_grant_id", table_name="access_tokens")
    op.drop_table("access_tokens")


def downgrade() -> None:
    op.create_table(
        "access_tokens",
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("grant_id", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["grant_id"], ["grants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("jti"),
    )
    op.create_index("ix_access_tokens_grant_id", "access_tokens", ["grant_id"])
    op.create_index("ix_access_tokens_expires_at", "access_tokens", ["expires_at"])
