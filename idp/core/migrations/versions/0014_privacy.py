"""privacy: failure counters no longer named by what was typed; identifier hashes carry a key id

The password-login counters were keyed ``password:<typed username>``: a
password typed into the username field stayed in the table. They are now
keyed by a keyed hash of the normalised name; the old rows (clear text) go.

National register and card number hashes get the id of the key that made
them; existing ones were made by the derivation before keys per purpose
("0"), which is re-keyed at the next login or by ``idp keys rehash-identifiers``.

Revision ID: 0014_privacy
Revises: 0019_account_origins
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_privacy"
down_revision = "0019_account_origins"
branch_labels = None
depends_on = None

# A new-style key is "password:" + 64 hex digits.
_NEW_KEY_LENGTH = len("password:") + 64


_KEY_COLUMNS = (
    ("accounts", "national_number_hash", "national_number_key"),
    ("customers", "national_number_hash", "national_number_key"),
    ("customers", "card_number_hash", "card_number_key"),
)


def upgrade() -> None:
    counters = sa.table("failure_counters", sa.column("key", sa.String))
    op.execute(
        counters.delete().where(
            counters.c.key.like("password:%"), sa.func.length(counters.c.key) != _NEW_KEY_LENGTH
        )
    )
    for table_name, hash_column, key_column in _KEY_COLUMNS:
        with op.batch_alter_table(table_name) as batch_op:
            batch_op.add_column(sa.Column(key_column, sa.String(length=64), nullable=True))
        table = sa.table(table_name, sa.column(hash_column, sa.String), sa.column(key_column, sa.String))
        op.execute(table.update().where(table.c[hash_column].is_not(None)).values({key_column: "0"}))
    op.create_table(
        "identifier_key_chains",
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("kid"),
    )


def downgrade() -> None:
    # The deleted counters held only counts, and text that should never have been kept.
    op.drop_table("identifier_key_chains")
    for table_name, _hash_column, key_column in reversed(_KEY_COLUMNS):
        with op.batch_alter_table(table_name) as batch_op:
            batch_op.drop_column(key_column)
