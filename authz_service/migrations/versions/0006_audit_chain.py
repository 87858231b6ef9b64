"""the audit trail as hash chains: one per CPAS, one for the rows without a CPAS

Each row gets ``prev_hash`` (its chain's previous row's hash, or the chain's genesis value) and
``row_hash`` (SHA-256 of its canonical content and ``prev_hash``); every existing row is chained here, in id
order per CPAS, so that an upgraded database verifies (``authz-service verify-audit``). ``prev_hash`` is
unique: two rows can never follow the same one. The index on ``cpas_id`` becomes (``cpas_id``, ``id``): a
chain in order, and its last row, without a sort.

The canonical form is copied here from ``models.py`` as it was at this revision (format 1), so that this
migration does what it did whatever later code does; tests/test_audit_chain.py checks both agree.

On SQLite the table is rebuilt (NOT NULL), keeping AUTOINCREMENT and its counter.

Revision ID: 0006
Revises: 0005
"""

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FORMAT = 1
BATCH = 1000


def _digest(document: dict[str, Any]) -> str:
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _instant(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def upgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    counter = bind.execute(sa.text("SELECT seq FROM sqlite_sequence WHERE name = 'audit'")).scalar() if sqlite else None
    with op.batch_alter_table("audit") as batch:
        batch.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("row_hash", sa.String(length=64), nullable=True))
    _chain_every_row(bind)
    with op.batch_alter_table("audit", recreate="always" if sqlite else "auto",
                              table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.alter_column("prev_hash", existing_type=sa.String(length=64), nullable=False)
        batch.alter_column("row_hash", existing_type=sa.String(length=64), nullable=False)
        batch.drop_index("ix_audit_cpas_id")
        batch.create_index("ix_audit_cpas_id_id", ["cpas_id", "id"])
        batch.create_index("ix_audit_prev_hash", ["prev_hash"], unique=True)
    _keep_counter(bind, counter)


def _chain_every_row(bind: sa.engine.Connection) -> None:
    chains = [c for (c,) in bind.execute(sa.text("SELECT DISTINCT cpas_id FROM audit"))]
    columns: dict[str, sa.types.TypeEngine[Any]] = {  # by name, read as the ORM reads them
        "at": sa.DateTime(timezone=True), "before": sa.JSON(), "after": sa.JSON()}
    select = "SELECT id, at, actor, action, target, before, after FROM audit WHERE {} ORDER BY id"
    update = sa.text("UPDATE audit SET prev_hash = :prev, row_hash = :hash WHERE id = :id")
    for cpas in chains:
        rows = (sa.text(select.format("cpas_id IS NULL")) if cpas is None
                else sa.text(select.format("cpas_id = :cpas")).bindparams(cpas=cpas)).columns(**columns)
        prev = _digest({"chain": cpas, "v": FORMAT})
        links: list[dict[str, Any]] = []
        for id_, at, actor, action, target, before, after in bind.execute(rows).all():
            digest = _digest({"v": FORMAT, "cpas": cpas, "at": _instant(at), "actor": actor, "action": action,
                              "target": target, "before": before, "after": after, "prev": prev})
            links.append({"id": id_, "prev": prev, "hash": digest})
            prev = digest
            if len(links) == BATCH:
                bind.execute(update, links)
                links = []
        if links:
            bind.execute(update, links)


def _keep_counter(bind: sa.engine.Connection, counter: int | None) -> None:
    """SQLite: a rebuilt table's AUTOINCREMENT counter starts again from its highest id; put it back, so
    that the id of a row deleted at the end is not handed out again."""
    if counter is None:
        return
    found = bind.execute(sa.text("SELECT seq FROM sqlite_sequence WHERE name = 'audit'")).scalar()
    if found is None:
        bind.execute(sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES ('audit', :n)"), {"n": counter})
    elif int(found) < counter:
        bind.execute(sa.text("UPDATE sqlite_sequence SET seq = :n WHERE name = 'audit'"), {"n": counter})


def downgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    counter = bind.execute(sa.text("SELECT seq FROM sqlite_sequence WHERE name = 'audit'")).scalar() if sqlite else None
    with op.batch_alter_table("audit", recreate="always" if sqlite else "auto",
                              table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_index("ix_audit_prev_hash")
        batch.drop_index("ix_audit_cpas_id_id")
        batch.create_index("ix_audit_cpas_id", ["cpas_id"])
        batch.drop_column("row_hash")
        batch.drop_column("prev_hash")
    _keep_counter(bind, counter)
