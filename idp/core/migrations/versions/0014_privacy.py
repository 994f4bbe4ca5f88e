"""privacy: failure counters no longer named by what was typed

The password-login counters were keyed ``password:<typed username>``: a
password typed into the username field stayed in the table. They are now
keyed by a keyed hash of the normalised name; the old rows (clear text) go.

Revision ID: 0014_privacy
Revises: 0005_no_access_token_rows
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_privacy"
down_revision = "0005_no_access_token_rows"
branch_labels = None
depends_on = None

# A new-style key is "password:" + 64 hex digits.
_NEW_KEY_LENGTH = len("password:") + 64


def upgrade() -> None:
    counters = sa.table("failure_counters", sa.column("key", sa.String))
    op.execute(
        counters.delete().where(
            counters.c.key.like("password:%"), sa.func.length(counters.c.key) != _NEW_KEY_LENGTH
        )
    )


def downgrade() -> None:
    pass  # the deleted rows held only counts, and text that should never have been kept
