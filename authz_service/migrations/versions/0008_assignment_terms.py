"""time-bound assignments: an assignment may hold from ``valid_from`` and/or until ``valid_until``
(``assignment_term``, one row per bounded ``g`` row ``user:U -> profile:P``); existing assignments have no
row and keep holding as before.

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "assignment_term",
        sa.Column("cpas_id", sa.String(length=10), nullable=False),
        sa.Column("user", sa.String(length=128), nullable=False),
        sa.Column("profile_id", sa.Integer(), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_recorded", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("cpas_id", "user", "profile_id", name=op.f("pk_assignment_term")),
    )
    op.create_index("ix_assignment_term_valid_until", "assignment_term", ["valid_until"])


def downgrade() -> None:
    op.drop_index("ix_assignment_term_valid_until", table_name="assignment_term")
    op.drop_table("assignment_term")
