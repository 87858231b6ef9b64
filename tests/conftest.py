"""Fixtures: a real database per test (SQLite file, or PostgreSQL when the test asks for it), the app
built from overrides, API keys, and a small JSON client."""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from authz_service import create_app
from authz_service.cli import init_db
from authz_service.config import load_settings
from authz_service.db import Database
from authz_service.freshness import default_path
from authz_service.security import new_api_key
from authz_service.store import Store

POSTGRES_URL = os.environ.get("AUTHZ_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"



def _postgres_available() -> str | None:
    try:
        engine = create_engine(POSTGRES_URL)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:  # the server is not there
        return str(exc).splitlines()[0]


@contextlib.contextmanager
def backend_service(backend: str, folder: Path, prefix: str) -> Iterator[Any]:
    """A migrated database with the catalog loaded, on SQLite (in ``folder``) or PostgreSQL (a schema of its
    own, dropped after; skipped when the server is missing, a failure in CI), and one Service on it that
    neither polls nor listens: ``Service.admin`` rebuilds the CPAS it changed itself."""
    from authz_service.service import Service

    schema = None
    if backend == "postgres":
        problem = _postgres_available()
        if problem:
            if IN_CI:
                pytest.fail(f"PostgreSQL is required in CI: {problem}")
            pytest.skip(f"PostgreSQL not available: {problem}")
        schema = f"t_{prefix}_{uuid.uuid4().hex[:10]}"
        url = postgres_schema(schema)
    else:
        url = f"sqlite:///{folder / 'authz.sqlite3'}"
    settings = load_settings({"database_url": url, "poll_interval": 0, "notify": "off", "secret_key": "x"})
    init_db(settings)
    service = Service(settings)
    try:
        assert service.sync()
        yield service
    finally:
        service.close()
        if schema is not None:
            postgres_schema(schema, drop=True)


@contextlib.contextmanager
def serving(app: Any, name: str = "live-server") -> Iterator[str]:
    """``app`` served on 127.0.0.1 by werkzeug in a thread: its base URL while inside."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


def postgres_schema(name: str, *, drop: bool = False) -> str:
    """A schema of our own per test (parallel runs share the server); returns the URL that uses it."""
    engine = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        if not drop:
            conn.execute(text(f'CREATE SCHEMA "{name}"'))
    engine.dispose()
    separator = "&" if "?" in POSTGRES_URL else "?"
    url = f"{POSTGRES_URL}{separator}options=-csearch_path%3D{name}"
    board = default_path(url)  # the schema's version board, in the temporary folder
    if drop and board is not None:
        board.unlink(missing_ok=True)
    return url


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    if backend == "postgres":
        problem = _postgres_available()
        if problem:
            if IN_CI:
                pytest.fail(f"PostgreSQL is required in CI: {problem}")
            pytest.skip(f"PostgreSQL not available: {problem}")
        name = f"t_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        yield postgres_schema(name)
        postgres_schema(name, drop=True)
        return
    yield f"sqlite:///{tmp_path / 'authz.sqlite3'}"


@pytest.fixture
def overrides(database_url: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    """The settings of the test's app; ``@pytest.mark.web_settings(per_page=5)`` sets the web UI's."""
    values: dict[str, Any] = {"database_url": database_url, "poll_interval": 0, "secret_key": "test-secret"}
    marker = request.node.get_closest_marker("web_settings")
    if marker is not None:
        values["web"] = dict(marker.kwargs)
    return values


@pytest.fixture
def settings(overrides: dict[str, Any]):  # type: ignore[no-untyped-def]
    settings = load_settings(overrides)
    init_db(settings)
    return settings


@pytest.fixture
def app(settings, overrides: dict[str, Any]) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    app = create_app(overrides, start_polling=False)
    app.config["TESTING"] = True
    yield app
    app.extensions["authz"].close()


@pytest.fixture
def service(app):  # type: ignore[no-untyped-def]
    return app.extensions["authz"]


@pytest.fixture
def make_key(settings) -> Callable[..., str]:  # type: ignore[no-untyped-def]
    def make(scopes: str = "enforce,users,admin", cpas: list[str] | None = None, name: str = "test") -> str:
        database = Database(settings.database_url)
        try:
            with database.transaction() as session:
                return new_api_key(Store(session), name, tuple(scopes.split(",")), cpas)
        finally:
            database.dispose()

    return make


class Api:
    """A JSON client bound to one API key."""

    def __init__(self, client: Any, key: str | None) -> None:
        self.client = client
        self.key = key

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        headers.update(extra or {})
        return headers

    def call(self, method: str, url: str, body: Any = None, **kwargs: Any) -> Any:
        headers = self.headers(kwargs.pop("headers", None))
        if body is not None:
            kwargs["json"] = body
        return self.client.open(url, method=method, headers=headers, **kwargs)

    def get(self, url: str, **kw: Any) -> Any:
        return self.call("GET", url, **kw)

    def post(self, url: str, body: Any = None, **kw: Any) -> Any:
        return self.call("POST", url, body, **kw)

    def put(self, url: str, body: Any = None, **kw: Any) -> Any:
        return self.call("PUT", url, body, **kw)

    def delete(self, url: str, **kw: Any) -> Any:
        return self.call("DELETE", url, **kw)


@pytest.fixture
def operator(app, make_key) -> Api:  # type: ignore[no-untyped-def]
    return Api(app.test_client(), make_key())


@pytest.fixture
def api_for(app, make_key) -> Callable[..., Api]:  # type: ignore[no-untyped-def]
    def build(scopes: str = "enforce,users,admin", cpas: list[str] | None = None) -> Api:
        return Api(app.test_client(), make_key(scopes, cpas))

    return build


@pytest.fixture
def demo(settings, service) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """The demo CPAS of seed/demo.yaml loaded through `seed_demo`, engine in step.
    Returns {"cpas": KBO, "data": the parsed YAML, "profiles": {key: id}, "users": {user: entry}}."""
    import yaml

    from authz_service.cli import seed_demo

    created = seed_demo(settings)
    service.sync()
    data = yaml.safe_load((settings.seed_dir / "demo.yaml").read_text(encoding="utf-8"))
    cpas = str(created["cpas_id"])

    def ids(store: Store) -> dict[str, int]:
        by_label = {(p.description_fr or p.description_nl): p.id for p in store.profiles(cpas)}
        builtin = store.builtin_profile(cpas)
        keys = {"builtin": builtin.id} if builtin else {}
        for item in data.get("profiles", []):
            keys[item["key"]] = by_label[item.get("description_fr") or item.get("description_nl")]
        return keys

    return {
        "cpas": cpas,
        "data": data,
        "profiles": service.read(ids),
        "users": {str(u["user"]): u for u in data.get("users", [])},
    }
