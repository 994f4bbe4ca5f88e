"""drop columns nothing reads: accounts.failed_logins and locked_until (lockout counters live in
failure_counters), customers.contract_numbers (the customer_contracts table is the one record)

Revision ID: 0006_drop_dead_columns
Revises: 0005_no_access_token_rows
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_drop_dead_columns"
down_revision = "0005_no_access_token_rows"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch_op:
        batch_op.drop_column("failed_logins")
        batch_op.drop_column("locked_until")
    with op.batch_alter_table("customers") as batch_op:
        batch_op.drop_column("contract_numbers")


def downgrade() -> None:
    with op.batch_alter_table("customers") as batch_op:
        batch_op.add_column(sa.Column("contract_numbers", sa.JSON(), nullable=False, server_default="[]"))
    with op.batch_alter_table("accounts") as batch_op:
        batch_op.add_column(sa.Column("locked_until", sa.BigInteger(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("failed_logins", sa.Integer(), nullable=False, server_default="0"))
