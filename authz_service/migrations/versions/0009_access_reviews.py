"""access reviews: ``review`` (a CPAS's periodic review: due date, who started and closed it, when; at most one
open per CPAS) and ``review_item`` (one per user: what they held when the review started, frozen, and the
reviewer's decision).

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "review",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cpas_id", sa.String(length=10), nullable=False),
        sa.Column("due", sa.Date(), nullable=False),
        sa.Column("started_by", sa.String(length=200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_by", sa.String(length=200), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["cpas_id"], ["cpas.id"], name=op.f("fk_review_cpas_id_cpas"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_review_cpas_id_id", "review", ["cpas_id", "id"])
    # one open review per CPAS (the use case checks it under the CPAS's lock; this makes it a fact)
    op.create_index("ix_review_open_cpas", "review", ["cpas_id"], unique=True,
                    sqlite_where=sa.text("closed_at IS NULL"), postgresql_where=sa.text("closed_at IS NULL"))
    op.create_table(
        "review_item",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("review_id", sa.Integer(), nullable=False),
        sa.Column("user", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("assignments", sa.JSON(), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=True),
        sa.Column("until", sa.Date(), nullable=True),
        sa.Column("comment", sa.String(length=500), nullable=True),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["review_id"], ["review.id"], name=op.f("fk_review_item_review_id_review"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_item")),
        sa.UniqueConstraint("review_id", "user", name="uq_review_item_review_id_user"),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("review_item")
    op.drop_index("ix_review_open_cpas", table_name="review")
    op.drop_index("ix_review_cpas_id_id", table_name="review")
    op.drop_table("review")
