"""ids never reused (SQLite AUTOINCREMENT), and no inactive user holding a profile

SQLite hands a deleted row's id to the next insert unless the table is AUTOINCREMENT: a form opened on
a deleted profile would then save over a new one. The tables whose ids a client, a form or a session
can hold are rebuilt with AUTOINCREMENT. PostgreSQL's sequences never reuse an id. On both, the profile
counter is set above every profile id the audit trail ever named, so that an id deleted before this
migration is not handed out again either.

An inactive user holding profiles (a deactivation that raced an assignment before 0.3) is repaired:
the profiles are removed, the CPAS's policy version bumped, and the repair written to its audit trail.

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("profile", "admin_account", "api_key", "audit")


def upgrade() -> None:
    bind = op.get_bind()
    highest = int(bind.execute(sa.text("SELECT COALESCE(MAX(id), 0) FROM profile")).scalar() or 0)
    for (target,) in bind.execute(sa.text("SELECT target FROM audit WHERE target LIKE 'profile:%'")):
        tail = str(target).split(":", 1)[1]
        if tail.isdigit() and len(tail) < 10:
            highest = max(highest, int(tail))
    if bind.dialect.name == "postgresql":
        if highest:  # a sequence never goes back; make sure it starts above every id ever handed out
            bind.execute(sa.text("SELECT setval(pg_get_serial_sequence('profile', 'id'), "
                                 "GREATEST(:n, (SELECT last_value FROM profile_id_seq)))"), {"n": highest})
    elif bind.dialect.name == "sqlite":
        for table in TABLES:
            with op.batch_alter_table(table, recreate="always", table_kwargs={"sqlite_autoincrement": True}):
                pass
        current = bind.execute(sa.text("SELECT seq FROM sqlite_sequence WHERE name = 'profile'")).scalar()
        if current is None:
            bind.execute(sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES ('profile', :n)"), {"n": highest})
        elif highest > int(current):
            bind.execute(sa.text("UPDATE sqlite_sequence SET seq = :n WHERE name = 'profile'"), {"n": highest})
    _repair_inactive_users(bind)


def _repair_inactive_users(bind: sa.engine.Connection) -> None:
    rows = bind.execute(sa.text(
        "SELECT u.cpas_id, u.user, r.v1 FROM app_user u JOIN casbin_rule r "
        "ON r.ptype = 'g' AND r.v2 = u.cpas_id AND r.v0 = 'user:' || u.user "
        "WHERE u.active = :inactive ORDER BY u.cpas_id, u.user, r.v1"
    ), {"inactive": False}).all()
    held: dict[tuple[str, str], list[int]] = {}
    for cpas, user, role in rows:
        if str(role).startswith("profile:"):
            held.setdefault((cpas, user), []).append(int(str(role)[len("profile:"):]))
    now = datetime.now(UTC)
    for (cpas, user), profiles in held.items():
        bind.execute(sa.text("DELETE FROM casbin_rule WHERE ptype = 'g' AND v2 = :cpas AND v0 = :subject"),
                     {"cpas": cpas, "subject": f"user:{user}"})
        bind.execute(sa.text("UPDATE cpas SET policy_version = policy_version + 1 WHERE id = :cpas"), {"cpas": cpas})
        insert = sa.text(
            "INSERT INTO audit (cpas_id, at, actor, action, target, before, after) "
            "VALUES (:cpas, :at, 'migration:0005', 'user.repair', :target, :before, :after)"
        ).bindparams(sa.bindparam("before", type_=sa.JSON), sa.bindparam("after", type_=sa.JSON),
                     sa.bindparam("at", type_=sa.DateTime(timezone=True)))
        bind.execute(insert, {"cpas": cpas, "at": now, "target": f"user:{user}",
                              "before": {"active": False, "profiles": sorted(profiles)},
                              "after": {"active": False, "profiles": []}})


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table in TABLES:
            with op.batch_alter_table(table, recreate="always", table_kwargs={"sqlite_autoincrement": False}):
                pass
