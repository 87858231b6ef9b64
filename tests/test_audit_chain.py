"""The audit trail as hash chains (issue 13): every use case's row is chained, migration 0006 chains the rows
written before it, tampering with a row (changed, deleted, inserted, moved) is found at the right row by
``authz-service verify-audit`` and shown on the CPAS's Admin-Logs page and in ``/metrics``, and concurrent
appends on PostgreSQL never fork a chain."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner, Result
from sqlalchemy import DateTime, bindparam, func, select, text, update
from sqlalchemy.exc import IntegrityError

from authz_service import create_app
from authz_service.admin import MAX_FAILED_LOGINS, Admin
from authz_service.catalog import load_catalog
from authz_service.cli import init_db, main
from authz_service.config import load_settings
from authz_service.db import Database
from authz_service.generate import generate, plan
from authz_service.models import AdminAccount, AuditEntry, CatalogState, audit_genesis, audit_hash
from authz_service.reads import check_audit_chain, check_audit_chains
from authz_service.store import Store

from .test_consistency import _migrate
from .web.conftest import Web

CPAS = "0212345668"
OTHER = "0207196354"
USER = "71020312345"
PASSWORD = "correct horse battery"


def cli(url: str, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env={"AUTHZ_DATABASE_URL": url}, input=input,
                              catch_exceptions=False)


def checks(database: Database) -> list[Any]:
    with database.reading() as session:
        return check_audit_chains(Store(session))


def rows_of(database: Database, cpas: str | None) -> list[AuditEntry]:
    with database.reading() as session:
        where = AuditEntry.cpas_id.is_(None) if cpas is None else AuditEntry.cpas_id == cpas
        return list(session.scalars(select(AuditEntry).where(where).order_by(AuditEntry.id)))


# -- every writer chains its row -------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
def test_every_use_case_writes_a_chained_row(settings: Any, database_url: str) -> None:
    catalog = load_catalog(settings.policies_dir)
    database = Database(database_url)
    try:
        with database.transaction() as session:
            admin = Admin(Store(session), catalog, "test")
            admin.create_cpas(CPAS, "CPAS", "OCMW", "wallonia")
            admin.create_cpas(OTHER, "CPAS 2", "OCMW 2", "brussels")
            admin.user_seen(CPAS, USER, name="Agent", lang="fr")
            admin.user_seen(CPAS, USER, name="Agent renamed", lang="nl")
            profile = admin.create_profile(CPAS, description_fr="P", description_nl=None, functions=["dossier.search"])
            admin.update_profile(CPAS, profile.id, version=1, description_fr="P2", description_nl=None,
                                 functions=["dossier.list"], includes=None)
            admin.set_user_profiles(CPAS, USER, [profile.id])
            admin.deactivate_user(CPAS, USER)
            admin.reactivate_user(CPAS, USER)
            admin.delete_profile(CPAS, profile.id)
            Store(session).add_admin(AdminAccount(username="multi", password_hash="x", cpas=[CPAS, OTHER]))
            session.execute(update(CatalogState).values(digest="older"))
            assert admin.sync_catalog()
        now = datetime.now(UTC)
        for attempt in range(MAX_FAILED_LOGINS):  # locked: a row in each CPAS of the account
            with database.transaction() as session:
                Admin(Store(session), catalog, "web:login").record_sign_in(
                    "multi", right=False, checked_hash="y", at=now + timedelta(seconds=attempt), address=None)
        with database.transaction() as session:  # unlocked once the lock's time passed
            Admin(Store(session), catalog, "web:login").record_sign_in(
                "multi", right=False, checked_hash="y", at=now + timedelta(hours=1), address=None)
        generate(database, catalog, plan(None, 1, 1, 3))
        assert cli(database_url, "create-api-key", "--name", "app", "--scopes", "enforce").exit_code == 0
        made = cli(database_url, "create-admin", "--username", "marie", "--operator", input="long enough\n")
        assert made.exit_code == 0

        actions = {r.action for c in (None, CPAS, OTHER) for r in rows_of(database, c)}
        assert actions >= {"cpas.create", "user.first_login", "user.update", "profile.create", "profile.update",
                           "user.assign", "user.deactivate", "user.reactivate", "profile.delete", "admin.locked",
                           "admin.unlocked", "catalog.load", "api_key.create", "admin.create"}
        found = checks(database)
        with database.reading() as session:
            total = session.scalar(select(func.count()).select_from(AuditEntry))
        assert [c.broken for c in found] == [None] * len(found)
        assert sum(c.rows for c in found) == total and len(found) == 4  # no CPAS, two CPAS, the generated one
        for cpas in (None, CPAS, OTHER):  # each row names the one before it in its chain, the first the start
            chain = rows_of(database, cpas)
            assert [r.prev_hash for r in chain] == [audit_genesis(cpas)] + [r.row_hash for r in chain[:-1]]
        result = cli(database_url, "verify-audit")
        assert result.exit_code == 0 and result.stdout == f"ok: {total} rows in 4 chains\n"
        assert cli(database_url, "verify-audit", "--cpas", OTHER).stdout == "ok: 3 rows in 1 chain\n"
        # two rows after the same one are refused by the database itself, whoever writes them
        last = rows_of(database, OTHER)[-1]
        with pytest.raises(IntegrityError), database.transaction() as session:
            session.add(AuditEntry(cpas_id=OTHER, actor="x", action="x", target="x", prev_hash=last.prev_hash,
                                   row_hash="0" * 64))
    finally:
        database.dispose()


# -- migration 0006 ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
def test_migration_0006_chains_every_existing_row(database_url: str) -> None:
    _migrate(database_url, "0005")
    database = Database(database_url)
    try:
        with database.engine.begin() as conn:
            for cpas in (CPAS, OTHER):
                conn.execute(text("INSERT INTO cpas (id, name_fr, name_nl, region, policy_version, created_at) "
                                  "VALUES (:c, 'x', 'y', 'wallonia', 1, CURRENT_TIMESTAMP)"), {"c": cpas})
            insert = text("INSERT INTO audit (cpas_id, at, actor, action, target, before, after) "
                          "VALUES (:c, :at, 'cli:x', :action, 't', :before, :after)"
                          ).bindparams(bindparam("at", type_=DateTime(timezone=True)))
            rows = [(CPAS, "profile.create", None, '{"description_fr": "Épargne", "functions": ["a", "b"]}'),
                    (None, "catalog.load", None, '{"version": "1", "digest": "d"}'),
                    (OTHER, "cpas.create", None, None),
                    (CPAS, "profile.update", '{"n": 1.5, "z": null, "a": [1, {"b": true}]}', '{"n": 2}'),
                    (CPAS, "user.deactivate", None, None)]
            for i, (cpas, action, before, after) in enumerate(rows):
                at = datetime(2025, 3, 30, 1, 59, 59, 999999 if i % 2 else 0, tzinfo=UTC) + timedelta(minutes=i)
                conn.execute(insert, {"c": cpas, "at": at, "action": action, "before": before, "after": after})
            for cpas in (CPAS, OTHER):  # the second is deleted below
                conn.execute(text("INSERT INTO audit (cpas_id, at, actor, action, target) "
                                  "VALUES (:c, CURRENT_TIMESTAMP, 't', 'user.assign', 'user:1')"), {"c": cpas})
            highest = conn.execute(text("SELECT max(id) FROM audit")).scalar()
            conn.execute(text("DELETE FROM audit WHERE id = :id"), {"id": highest})  # its id is never used again
        _migrate(database_url, "head")
        found = checks(database)
        assert [(c.cpas, c.rows, c.broken) for c in found] == [(None, 1, None), (OTHER, 1, None), (CPAS, 4, None)]
        with database.transaction() as session:  # the service goes on from the migrated chain
            Store(session).audit(CPAS, "test", "user.assign", "user:2", None, {"profiles": []})
        found = checks(database)
        assert [(c.cpas, c.rows, c.broken) for c in found] == [(None, 1, None), (OTHER, 1, None), (CPAS, 5, None)]
        assert rows_of(database, CPAS)[-1].id > highest
    finally:
        database.dispose()


# -- tampering -------------------------------------------------------------------------------------------------
ACCOUNTS = {"gestionnaire": "fr", "beheerder": "nl"}


@pytest.fixture(scope="module")
def trail_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with two CPAS whose rows interleave (so that a chain's ids have gaps) and a manager of
    the first in each language; each test tampers with its own copy."""
    path = tmp_path_factory.mktemp("trail") / "authz.sqlite3"
    settings = load_settings({"database_url": f"sqlite:///{path}", "poll_interval": 0, "secret_key": "x"})
    init_db(settings)
    catalog = load_catalog(settings.policies_dir)
    database = Database(settings.database_url)
    try:
        with database.transaction() as session:
            store = Store(session)
            admin = Admin(store, catalog, "test")
            admin.create_cpas(CPAS, "CPAS de Test", "OCMW Test", "wallonia")
            admin.create_cpas(OTHER, "CPAS 2", "OCMW 2", "wallonia")
            for i in range(4):
                admin.user_seen(CPAS, f"7102031234{i}", name=f"Agent {i}", lang="fr")
                session.execute(text("UPDATE sqlite_sequence SET seq = seq + 1 WHERE name = 'audit'"))  # a free id
                admin.user_seen(OTHER, f"7102031234{i}", name=f"Agent {i}", lang="fr")
            digest = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)
            for username, lang in ACCOUNTS.items():
                store.add_admin(AdminAccount(username=username, password_hash=digest, lang=lang, cpas=[CPAS]))
    finally:
        database.dispose()
    return path


@pytest.fixture
def trail(trail_db: Path, tmp_path: Path) -> Iterator[tuple[str, Database, list[AuditEntry]]]:
    target = tmp_path / "authz.sqlite3"
    shutil.copyfile(trail_db, target)
    url = f"sqlite:///{target}"
    database = Database(url)
    yield url, database, rows_of(database, CPAS)
    database.dispose()


def tamper(database: Database, sql: str, **params: Any) -> None:
    with database.engine.begin() as conn:
        conn.execute(text(sql), params)


def admin_logs(url: str, username: str) -> tuple[str, str]:
    """(the CPAS's Admin-Logs page as ``username`` sees it, then /metrics)."""
    app = create_app({"database_url": url, "poll_interval": 0, "secret_key": "x"}, start_polling=False)
    try:
        web = Web(app.test_client())
        assert web.login(username).status_code == 303
        shown = web.text(f"/ui/cpas/{CPAS}/audit")
        return shown, app.test_client().get("/metrics").get_data(as_text=True)
    finally:
        app.extensions["authz"].close()


WARNING = {"fr": "Ces Admin-Logs ont été modifiés en dehors du service : l'entrée n° {id} ",
           "nl": "Deze Admin-Logs zijn buiten de dienst gewijzigd: vermelding nr. {id} "}


def test_a_whole_trail_verifies(trail: tuple[str, Database, list[AuditEntry]]) -> None:
    url, database, rows = trail
    result = cli(url, "verify-audit")
    assert result.exit_code == 0 and result.stdout == "ok: 11 rows in 3 chains\n"
    app = create_app({"database_url": url, "poll_interval": 0, "secret_key": "x"}, start_polling=False)
    try:
        web = Web(app.test_client())
        assert web.login("gestionnaire").status_code == 303
        assert "en dehors du service" not in web.text(f"/ui/cpas/{CPAS}/audit")
        metrics = app.test_client().get("/metrics").get_data(as_text=True)
        assert f'authz_audit_chain_broken{{cpas="{CPAS}"}} 0.0' in metrics
        # the next view checks the rows added since, and notices at once a row deleted before them
        with database.transaction() as session:
            Store(session).audit(CPAS, "test", "user.assign", "user:1", None, None)
        assert "en dehors du service" not in web.text(f"/ui/cpas/{CPAS}/audit")
        tamper(database, "DELETE FROM audit WHERE id = :id", id=rows[1].id)
        assert WARNING["fr"].format(id=rows[2].id) in web.text(f"/ui/cpas/{CPAS}/audit")
    finally:
        app.extensions["authz"].close()


@pytest.mark.parametrize("how", ["changed", "deleted", "inserted", "moved"])
def test_tampering_is_found_at_the_right_row(trail: tuple[str, Database, list[AuditEntry]], how: str) -> None:
    url, database, rows = trail
    first, second, third, fourth = rows[1], rows[2], rows[3], rows[4]  # user.first_login rows, ids with gaps
    if how == "changed":  # an entry's "after" rewritten
        tamper(database, "UPDATE audit SET after = :after WHERE id = :id", id=second.id, after='{"name": "Other"}')
        bad, expected = second.id, "its content does not match its row_hash"
    elif how == "deleted":
        tamper(database, "DELETE FROM audit WHERE id = :id", id=second.id)
        bad, expected = third.id, f"its prev_hash is not the row_hash of row {first.id}"
    elif how == "inserted":  # a made-up entry between two others
        bad = second.id + 1
        assert bad < third.id
        tamper(database, "INSERT INTO audit (id, cpas_id, at, actor, action, target, prev_hash, row_hash) VALUES "
                         "(:id, :c, CURRENT_TIMESTAMP, 'admin:x', 'user.assign', 'user:1', :h, :h)",
               id=bad, c=CPAS, h="f" * 64)
        expected = f"its prev_hash is not the row_hash of row {second.id}"
    else:  # two entries swap places: every column but the id
        columns = "cpas_id, at, actor, action, target, before, after, prev_hash, row_hash"
        with database.engine.begin() as conn:
            a, b = (conn.execute(text(f"SELECT {columns} FROM audit WHERE id = :id"), {"id": i}).one()
                    for i in (second.id, fourth.id))
            conn.execute(text("DELETE FROM audit WHERE id IN (:a, :b)"), {"a": second.id, "b": fourth.id})
            for row_id, values in ((second.id, b), (fourth.id, a)):
                conn.execute(text(f"INSERT INTO audit (id, {columns}) VALUES (:id, :v0, :v1, :v2, :v3, :v4, :v5, "
                                  ":v6, :v7, :v8)"), {"id": row_id, **{f"v{i}": v for i, v in enumerate(values)}})
        bad, expected = second.id, f"its prev_hash is not the row_hash of row {first.id}"
    result = cli(url, "verify-audit")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"broken: audit row {bad} (CPAS {CPAS}): {expected}"), lines
    assert lines[1].startswith("1 of 3 chains broken")
    assert cli(url, "verify-audit", "--cpas", OTHER).exit_code == 0
    assert cli(url, "verify-audit", "--cpas", CPAS).exit_code == 1
    for username, lang in ACCOUNTS.items():
        shown, metrics = admin_logs(url, username)
        assert WARNING[lang].format(id=bad) in shown
        assert f'authz_audit_chain_broken{{cpas="{CPAS}"}} 1.0' in metrics


# -- concurrent appends ------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_concurrent_appends_keep_every_chain_whole(settings: Any, database_url: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Writers with the CPAS's lock (use cases), without it (as the sign-in's rows) and without a CPAS, from
    many threads at once; hashing is slowed down so that each append holds its chain's last row a while."""
    import authz_service.store as store_module

    catalog = load_catalog(settings.policies_dir)
    database = Database(database_url, timeout=30)

    pause = [0.002]

    def slow_hash(*args: Any) -> str:
        time.sleep(pause[0])
        return audit_hash(*args)

    monkeypatch.setattr(store_module, "audit_hash", slow_hash)
    with database.transaction() as session:
        for cpas in (CPAS, OTHER):
            Admin(Store(session), catalog, "test").create_cpas(cpas, "CPAS", "OCMW", "wallonia")
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(6):
                with database.transaction() as session:
                    admin = Admin(Store(session), catalog, f"thread:{n}")
                    cpas = (CPAS, OTHER)[(n + i) % 2]
                    if n % 3 == 0:
                        admin.user_seen(cpas, f"{n:05d}{i:06d}", name="Agent", lang="fr")  # under the CPAS's lock
                    else:
                        admin.store.audit(None if n % 3 == 1 else cpas, admin.actor, "admin.locked", "admin:x",
                                          None, {"n": n, "i": i})
        except BaseException as exc:
            errors.append(exc)

    try:
        threads = [threading.Thread(target=writer, args=(n,)) for n in range(9)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        found = checks(database)
        with database.reading() as session:
            total = session.scalar(select(func.count()).select_from(AuditEntry))
        assert [c.broken for c in found] == [None, None, None]
        assert sum(c.rows for c in found) == total == 1 + 2 + 9 * 6  # init-db's catalog load, the CPAS, the threads
        # and without the chain's lock the same appends would fork a chain: the unique index refuses it
        monkeypatch.setattr(Store, "_lock_chain", lambda self, cpas: None)
        errors.clear()
        pause[0] = 0.02
        threads = [threading.Thread(target=writer, args=(n,)) for n in (1, 4, 7)]  # rows without a CPAS
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors and all(isinstance(e, IntegrityError) for e in errors)
        assert [c.broken for c in checks(database)] == [None, None, None]
    finally:
        database.dispose()


def test_an_incremental_check_goes_on_from_the_last_one(trail: tuple[str, Database, list[AuditEntry]]) -> None:
    _url, database, rows = trail
    with database.reading() as session:
        whole = check_audit_chain(Store(session), CPAS)
    assert (whole.rows, whole.last_id, whole.last_hash) == (5, rows[-1].id, rows[-1].row_hash)
    with database.transaction() as session:
        Store(session).audit(CPAS, "test", "user.assign", "user:1", None, None)
    with database.reading() as session:
        more = check_audit_chain(Store(session), CPAS, since=whole)
    assert more.rows == 6 and more.broken is None
    tamper(database, "UPDATE audit SET row_hash = :h WHERE id = :id", id=more.last_id, h="0" * 64)
    with database.reading() as session:  # the row it would go on from changed: from the start again
        again = check_audit_chain(Store(session), CPAS, since=more)
        assert again == check_audit_chain(Store(session), CPAS)
    assert again.rows == 5 and again.broken is not None and again.broken.id == more.last_id
