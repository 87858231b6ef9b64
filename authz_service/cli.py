"""The ``authz-service`` command: schema and catalog, demo data, credentials, the server."""

from __future__ import annotations

import gc
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, NoReturn

import click
import yaml
from alembic import command
from alembic.config import Config

from .admin import Admin
from .config import Settings, load_settings
from .db import Database
from .errors import ServiceError
from .models import AdminAccount, iso, utcnow
from .schemas import parse_kbo
from .security import hash_password, new_api_key, parse_scopes
from .store import Store

HERE = Path(__file__).resolve().parent


def migrate(settings: Settings) -> None:
    """Create or upgrade the schema to the newest Alembic revision."""
    database = Database(settings.database_url, board=settings.version_board or None)
    try:
        cfg = Config(str(HERE / "alembic.ini"))
        cfg.set_main_option("script_location", str(HERE / "migrations"))
        with database.engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "head")
    finally:
        database.dispose()


def init_db(settings: Settings, actor: str = "cli:init-db") -> bool:
    """Schema, then the catalog's rule rows (and every built-in profile) if the catalog changed."""
    from .catalog import load_catalog

    migrate(settings)
    catalog = load_catalog(settings.policies_dir)
    database = Database(settings.database_url, board=settings.version_board or None)
    try:
        with database.transaction() as session:
            return Admin(Store(session), catalog, actor).sync_catalog()
    finally:
        database.dispose()


def seed_demo(settings: Settings, path: Path | None = None, actor: str = "cli:seed-demo") -> dict[str, Any]:
    """Load seed/demo.yaml: the CPAS, its profiles and users. Idempotent: what exists is left alone."""
    from .catalog import SAFE_LOADER, load_catalog

    data = yaml.load((path or settings.seed_dir / "demo.yaml").read_text(encoding="utf-8"), Loader=SAFE_LOADER)
    catalog = load_catalog(settings.policies_dir)
    database = Database(settings.database_url, board=settings.version_board or None)
    created = {"cpas": 0, "profiles": 0, "users": 0}
    try:
        with database.transaction() as session:
            store = Store(session)
            admin = Admin(store, catalog, actor, settings.max_inclusion_depth)
            info = data["cpas"]
            cpas = parse_kbo(info["cpas"])
            if store.get_cpas(cpas) is None:
                admin.create_cpas(cpas, info["name_fr"], info["name_nl"], info["region"])
                created["cpas"] += 1
            existing = {(p.description_fr or p.description_nl): p.id for p in store.profiles(cpas)}
            builtin = store.builtin_profile(cpas)
            keys: dict[str, int] = {"builtin": builtin.id} if builtin else {}
            for item in data.get("profiles", []):
                label = item.get("description_fr") or item.get("description_nl")
                if label in existing:
                    keys[item["key"]] = existing[label]
                    continue
                profile = admin.create_profile(
                    cpas,
                    description_fr=item.get("description_fr"),
                    description_nl=item.get("description_nl"),
                    functions=item.get("functions", []),
                    includes=[keys[k] for k in item.get("includes", [])],
                )
                keys[item["key"]] = profile.id
                created["profiles"] += 1
            for item in data.get("users", []):
                row, is_new = admin.user_seen(cpas, str(item["user"]), name=item["name"], lang=item.get("lang", "fr"))
                if not is_new:
                    continue
                created["users"] += 1
                if item.get("active", True):
                    if item.get("profiles"):
                        admin.set_user_profiles(cpas, row.user, [keys[k] for k in item["profiles"]])
                else:
                    admin.deactivate_user(cpas, row.user)
    finally:
        database.dispose()
    created["cpas_id"] = cpas  # type: ignore[assignment]
    return created


@click.group()
def main() -> None:
    """Authorization service for CPAS/OCMW applications (settings from AUTHZ_* variables)."""


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


@main.command("init-db")
def init_db_cmd() -> None:
    """Create or migrate the schema and load the function catalog (idempotent)."""
    settings = load_settings()
    changed = init_db(settings)
    click.echo("catalog loaded" if changed else "catalog already up to date")


@main.command("seed-demo")
@click.option("--file", "path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
def seed_demo_cmd(path: Path | None) -> None:
    """Load the demo CPAS of seed/demo.yaml (idempotent)."""
    try:
        created = seed_demo(load_settings(), path)
    except ServiceError as err:
        _fail(err.message)
    click.echo(
        f"demo CPAS {created['cpas_id']}: {created['cpas']} CPAS, {created['profiles']} profiles, "
        f"{created['users']} users created"
    )


@main.command("create-api-key")
@click.option("--name", required=True)
@click.option("--scopes", required=True, help="comma-separated: enforce,users,admin")
@click.option("--cpas", "cpas_list", multiple=True, help="limit the key to these CPAS (repeatable)")
def create_api_key_cmd(name: str, scopes: str, cpas_list: tuple[str, ...]) -> None:
    """Create an API key and print it (alone, on the last line). It is shown only this once."""
    settings = load_settings()
    try:
        scope_list = parse_scopes(scopes)
        limited = [parse_kbo(c) for c in cpas_list] if cpas_list else None
    except (ServiceError, ValueError) as err:
        _fail(getattr(err, "message", str(err)))
    database = Database(settings.database_url, board=settings.version_board or None)
    try:
        with database.transaction() as session:
            store = Store(session)
            for cpas in limited or []:
                if store.get_cpas(cpas) is None:
                    _fail(f"CPAS {cpas} is not known to the service")
            key = new_api_key(store, name, scope_list, limited)
            store.audit(None, "cli", "api_key.create", f"api_key:{name}", None,
                        {"name": name, "scopes": list(scope_list), "cpas": limited})
    except ServiceError as err:
        _fail(err.message)
    finally:
        database.dispose()
    click.echo(f"API key '{name}' (scopes {','.join(scope_list)}; CPAS {', '.join(limited) if limited else 'all'}):")
    click.echo(key)


@main.command("list-api-keys")
def list_api_keys_cmd() -> None:
    """List API keys (never their secret): prefix, name, scopes, CPAS, created, revoked."""
    settings = load_settings()
    database = Database(settings.database_url, board=settings.version_board or None)
    try:
        with database.reading() as session:
            keys = Store(session).api_keys()
    finally:
        database.dispose()
    for key in keys:
        click.echo(
            f"{key.prefix}  {key.name:<20}  {key.scopes:<20}  {','.join(key.cpas) if key.cpas else 'all CPAS':<24}  "
            f"created {iso(key.created_at)}" + (f"  REVOKED {iso(key.revoked_at)}" if key.revoked_at else "")
        )


@main.command("revoke-api-key")
@click.argument("prefix")
def revoke_api_key_cmd(prefix: str) -> None:
    """Revoke the API key whose prefix (the part after azk_) is PREFIX; servers stop accepting it within
    10 seconds (their key cache)."""
    settings = load_settings()
    database = Database(settings.database_url, board=settings.version_board or None)
    try:
        with database.transaction() as session:
            store = Store(session)
            key = store.api_key_by_prefix(prefix.removeprefix("azk_").split("_")[0])
            if key is None:
                _fail(f"no API key with prefix {prefix}")
            if key.revoked_at is not None:
                click.echo(f"API key {key.prefix} ('{key.name}') was already revoked")
                return
            key.revoked_at = utcnow()
            store.audit(None, "cli", "api_key.revoke", f"api_key:{key.name}", {"prefix": key.prefix},
                        {"prefix": key.prefix, "revoked": True})
            name = key.name
    finally:
        database.dispose()
    click.echo(f"API key {prefix} ('{name}') revoked")


@main.command("create-admin")
@click.option("--username", required=True)
@click.option("--cpas", "cpas_list", multiple=True, help="CPAS this configuration manager administers")
@click.option("--operator", is_flag=True, help="an operator: every CPAS")
@click.option("--if-missing", is_flag=True, help="do nothing when the account already exists")
def create_admin_cmd(username: str, cpas_list: tuple[str, ...], operator: bool, if_missing: bool) -> None:
    """Create an admin account; the password is read from standard input."""
    if bool(cpas_list) == operator:
        _fail("give either --cpas (one or more) or --operator")
    settings = load_settings()
    try:
        limited = [parse_kbo(c) for c in cpas_list]
    except ValueError as err:
        _fail(str(err))
    database = Database(settings.database_url, board=settings.version_board or None)
    try:
        with database.transaction() as session:
            store = Store(session)
            if store.admin_by_username(username) is not None:
                if if_missing:
                    click.echo(f"admin '{username}' already exists")
                    return
                _fail(f"admin '{username}' already exists")
            password = sys.stdin.readline().rstrip("\n")
            if len(password) < 8:
                _fail("the password (read from standard input) must have at least 8 characters")
            for cpas in limited:
                if store.get_cpas(cpas) is None:
                    _fail(f"CPAS {cpas} is not known to the service")
            store.add_admin(AdminAccount(username=username, password_hash=hash_password(password),
                                         operator=operator, cpas=limited))
            store.audit(None, "cli", "admin.create", f"admin:{username}", None,
                        {"username": username, "operator": operator, "cpas": limited})
    finally:
        database.dispose()
    click.echo(f"admin '{username}' created")


@main.command("verify-audit")
@click.option("--cpas", default=None, help="only this CPAS's chain")
def verify_audit_cmd(cpas: str | None) -> None:
    """Check that no audit row was changed, deleted, inserted or moved: walk each chain (one per CPAS,
    one for the rows without a CPAS) and report the first broken link of each; exit status 1 if any."""
    from .reads import check_audit_chain, check_audit_chains

    settings = load_settings()
    try:
        only = parse_kbo(cpas) if cpas is not None else None
    except ValueError as err:
        _fail(str(err))
    database = Database(settings.database_url, board=settings.version_board or None)
    try:
        with database.reading() as session:
            store = Store(session)
            if only is not None and store.get_cpas(only) is None:
                _fail(f"CPAS {only} is not known to the service")
            checks = [check_audit_chain(store, only)] if only is not None else check_audit_chains(store)
    finally:
        database.dispose()
    rows = sum(c.rows for c in checks)
    broken = [c.broken for c in checks if c.broken is not None]
    for found in broken:
        click.echo(f"broken: {found.describe()}")
    if broken:
        click.echo(f"{len(broken)} of {_count(len(checks), 'chain')} broken "
                   f"({_count(rows, 'row')} before the breaks hold)")
        sys.exit(1)
    click.echo(f"ok: {_count(rows, 'row')} in {_count(len(checks), 'chain')}")


@main.command("purge-history")
@click.option("--before", "before", required=True,
              help="an ISO 8601 date or instant (a date: midnight, Brussels time); what is older is forgotten")
def purge_history_cmd(before: str) -> None:
    """Forget the policy history before an instant: each CPAS keeps a snapshot of its state at that instant,
    so ``?at=`` answers from it on and refuses earlier instants (history_unavailable). The audit trail is
    not touched."""
    from datetime import datetime

    from .reads import local_zone

    try:
        cut = datetime.fromisoformat(before)
    except ValueError:
        _fail(f"--before {before!r} is not an ISO 8601 date or instant (2025-01-01, 2025-01-01T00:00:00+01:00)")
    if cut.tzinfo is None:
        cut = cut.replace(tzinfo=local_zone())
    settings = load_settings()
    database = Database(settings.database_url, board=settings.version_board or None)
    try:
        with database.transaction() as session:
            deleted = Store(session).purge_history(cut)
    finally:
        database.dispose()
    click.echo(f"purged {_count(deleted, 'history row')} before {iso(cut)}")


@main.command("record-expiries")
def record_expiries_cmd() -> None:
    """Write each assignment term that has ended to its CPAS's audit trail (assignment.expired, by
    system:expiry) and history, once. The service's pollers do it on their own; this is for a deployment
    whose pollers are off, or to run from cron. Decisions never wait for it: they follow terms to the instant."""
    from .admin import Admin
    from .catalog import load_catalog
    from .service import EXPIRY_ACTOR

    settings = load_settings()
    database = Database(settings.database_url, board=settings.version_board or None)
    try:
        with database.transaction() as session:
            done = Admin(Store(session), load_catalog(settings.policies_dir), EXPIRY_ACTOR).record_expiries()
    finally:
        database.dispose()
    click.echo(f"recorded {_count(done, 'ended assignment')}")


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


@main.command("generate")
@click.option("--scale", type=click.Choice(["national"]), default=None, help="580 CPAS, 20,000 users")
@click.option("--cpas", "cpas_count", type=int, default=None, help="this many CPAS instead (users in proportion)")
@click.option("--users", type=int, default=None, help="total users (default: 20,000 x CPAS / 580)")
@click.option("--seed", type=int, default=1, show_default=True)
def generate_cmd(scale: str | None, cpas_count: int | None, users: int | None, seed: int) -> None:
    """Fill the database with a realistic, deterministic dataset (idempotent per seed)."""
    from .catalog import load_catalog
    from .generate import generate, plan

    if scale is None and cpas_count is None:
        _fail("give --scale national or --cpas K")
    try:
        p = plan(scale, cpas_count, seed, users)
    except ValueError as err:
        _fail(str(err))
    settings = load_settings()
    database = Database(settings.database_url, board=settings.version_board or None)
    try:
        totals = generate(database, load_catalog(settings.policies_dir), p,
                          progress=lambda i, n: click.echo(f"  {i}/{n} CPAS", err=True) if i % 50 == 0 else None)
    finally:
        database.dispose()
    click.echo(f"generated {totals['cpas']} CPAS, {totals['profiles']} profiles, {totals['users']} users, "
               f"about {totals['rules']} rule rows")


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, type=int, show_default=True)
@click.option("--workers", default=2, type=int, show_default=True)
@click.option("--threads", default=4, type=int, show_default=True, help="threads per worker (gthread)")
@click.option("--preload/--no-preload", default=True, show_default=True,
              help="load the policy once in gunicorn's master and share its memory with the workers "
                   "(copy-on-write); --no-preload: every worker loads its own")
def serve_cmd(host: str, port: int, workers: int, threads: int, preload: bool) -> None:
    """Run the server under gunicorn."""
    from gunicorn.app.base import BaseApplication
    from gunicorn.glogging import Logger

    from .logs import configure as configure_logging

    settings = load_settings()  # fail early on bad settings
    # the process's logging is the server's to set, once, before gunicorn forks its workers (create_app
    # leaves it alone: an application embedding the service keeps its own): JSON lines on standard output
    try:
        configure_logging(settings.log_level)
    except ValueError as err:
        _fail(f"AUTHZ_LOG_LEVEL={settings.log_level}: {err}")
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="authz-metrics-")
    from .telemetry import TelemetryConfig

    try:
        TelemetryConfig.from_environment()  # checked here; each worker starts its own exporters
    except ValueError as err:
        _fail(str(err))

    class JsonLogger(Logger):
        """gunicorn's own lines (start, workers, errors) through the root logger, as JSON. Its access log
        stays off: the request lines are ``authz.access``'s (AUTHZ_ACCESS_LOG), with request and trace ids."""

        def setup(self, cfg: Any) -> None:
            super().setup(cfg)
            for handler in list(self.error_log.handlers):
                self.error_log.removeHandler(handler)
            self.error_log.propagate = True

    class Server(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("threads", threads)
            self.cfg.set("logger_class", JsonLogger)
            self.cfg.set("loglevel", settings.log_level.lower())
            self.cfg.set("accesslog", None)
            # preloaded: the app and its decision index are made once, in the master, and the workers share
            # their pages (copy-on-write); what must be a worker's own (OpenTelemetry providers and export
            # threads, the request log's hooks, connections, the version board's lock, the poller and the
            # listener) is set up after the fork (_after_fork). Not preloaded: all of it in each worker.
            self.cfg.set("preload_app", preload)
            if preload:
                self.cfg.set("post_fork", _after_fork)
            self.cfg.set("child_exit", _child_exit)

        def load(self) -> Any:
            from . import create_app

            if not preload:
                return create_app()
            app = create_app(start_polling=False, observe=False)
            app.extensions["authz"].db.engine.dispose()  # no connection of the master's goes to a worker
            # every object made so far (most of it the index) out of the collector's reach: a collection in
            # a worker would otherwise write to their headers and copy every page it touches
            gc.collect()
            gc.freeze()
            _PRELOADED.append(app)
            return app

    Server().run()


_PRELOADED: list[Any] = []  # the app ``serve --preload`` made in gunicorn's master


def _after_fork(_server: Any, _worker: Any) -> None:
    """In each worker, just forked from a master that preloaded the app: what must be the worker's own."""
    from .telemetry import install as install_telemetry

    app = _PRELOADED[0]
    service = app.extensions["authz"]
    service.db.after_fork()  # its own connections and its own lock on the version board
    install_telemetry(app, service)  # its own providers, export threads and service.instance.id
    service.sync()  # what changed since the master loaded (a worker may be replaced hours later)
    service.start_polling()


def _child_exit(_server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


if __name__ == "__main__":
    main()
