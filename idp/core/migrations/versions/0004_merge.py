"""merge the one-time-code and registration branches

Revision ID: 0004_merge
Revises: 0002_otp, 0003_registration
Create Date: 2026-11-23
"""

revision = "0004_merge"
down_revision = ("0002_otp", "0003_registration")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
