"""the policy's history: an append-only table of what each CPAS's policy is built from, written by ``Store``
in the transaction of every change (``?at=`` on the decision reads, "Qui avait accès ?"), started here with
a snapshot of every CPAS as it is at this migration's instant (the history begins there: an earlier instant
is refused with ``history_unavailable``).

The snapshot's form is copied here from ``store.py`` as it was at this revision, so that this migration does
what it did whatever later code does.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    history = op.create_table(
        "policy_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cpas_id", sa.String(length=10), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_history")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_policy_history_cpas_id_at", "policy_history", ["cpas_id", "at"])
    bind = op.get_bind()
    now = datetime.now(UTC)
    for cpas, version in bind.execute(sa.text("SELECT id, policy_version FROM cpas ORDER BY id")).all():
        links: dict[str, list[str]] = {}
        for child, parent in bind.execute(sa.text(
                "SELECT v0, v1 FROM casbin_rule WHERE ptype = 'g' AND v2 = :cpas ORDER BY v0, v1"), {"cpas": cpas}):
            links.setdefault(str(child), []).append(str(parent))
        users = {str(u): bool(a) for u, a in bind.execute(
            sa.text("SELECT \"user\", active FROM app_user WHERE cpas_id = :cpas"), {"cpas": cpas})}
        descriptions = {str(pid): [fr, nl] for pid, fr, nl in bind.execute(sa.text(
            "SELECT id, description_fr, description_nl FROM profile WHERE cpas_id = :cpas"), {"cpas": cpas})}
        op.bulk_insert(history, [{"cpas_id": cpas, "at": now, "version": int(version), "kind": "snapshot",
                                  "subject": None,
                                  "payload": {"links": links, "users": users, "descriptions": descriptions}}])


def downgrade() -> None:
    op.drop_index("ix_policy_history_cpas_id_at", table_name="policy_history")
    op.drop_table("policy_history")
