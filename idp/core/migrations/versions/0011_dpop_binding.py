"""grants remember the DPoP key they are bound to (RFC 9449 sections 5 and 10)

A code bound with ``dpop_jkt`` at PAR or the authorization endpoint, and a
public client's refresh tokens, may only be used with proofs of that key.

Revision ID: 0011_dpop_binding
Revises: 0014_privacy
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_dpop_binding"
down_revision = "0014_privacy"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("grants") as batch:
        batch.add_column(sa.Column("dpop_jkt", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("grants") as batch:
        batch.drop_column("dpop_jkt")
