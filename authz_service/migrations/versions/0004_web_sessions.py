"""admin UI sessions that end (per-account session epoch), a windowed lock count, and the failed
sign-ins counted by the login throttle when there is no Redis

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("admin_account") as batch:
        batch.add_column(sa.Column("failed_since", sa.DateTime(timezone=True), nullable=True))
        # NULL for the existing accounts: their current sessions (signed cookies without an epoch) end,
        # the next sign-in gives the account its first epoch
        batch.add_column(sa.Column("session_epoch", sa.String(length=32), nullable=True))
    op.create_table(
        "web_login_attempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bucket", sa.String(length=255), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("expires", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_login_attempt")),
    )
    op.create_index("ix_web_login_attempt_bucket_at", "web_login_attempt", ["bucket", "at"])
    op.create_index("ix_web_login_attempt_expires", "web_login_attempt", ["expires"])


def downgrade() -> None:
    op.drop_index("ix_web_login_attempt_expires", table_name="web_login_attempt")
    op.drop_index("ix_web_login_attempt_bucket_at", table_name="web_login_attempt")
    op.drop_table("web_login_attempt")
    with op.batch_alter_table("admin_account") as batch:
        batch.drop_column("session_epoch")
        batch.drop_column("failed_since")
