"""No per-process session key, ever. Workers that start while the database is unreachable answer 503
(an HTML page in the UI, the JSON envelope on the JSON admin API for a request with the session
cookie) instead of signing sessions with a key of their own; once the database answers they read the
shared key, and a sign-in made on one worker holds on the other."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from authz_service import create_app
from authz_service.cli import init_db
from authz_service.config import load_settings
from authz_service.db import Database
from authz_service.models import AdminAccount
from authz_service.security import hash_password
from authz_service.store import Store
from tests.conftest import IN_CI, _postgres_available, postgres_schema

from .conftest import PASSWORD, browser, cookie_of, page, with_cookie


class Forwarder:
    """A TCP port of 127.0.0.1 that nobody listens on until ``start``; then every connection to it is
    piped to ``target`` (the PostgreSQL server): a database that comes back."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.server: socket.socket | None = None
        self.sockets: list[socket.socket] = []

    def start(self) -> None:
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", self.port))
        self.server.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        assert self.server is not None
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target, timeout=10)
            upstream.settimeout(None)
            self.sockets += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for sock in self.sockets:
            sock.close()


def _add_admin(url: str) -> None:
    database = Database(url)
    try:
        with database.transaction() as session:
            store = Store(session)
            store.add_admin(AdminAccount(username="gestionnaire", password_hash=hash_password(PASSWORD),
                                         operator=True, cpas=[], lang="fr"))
    finally:
        database.dispose()


@contextmanager
def sqlite_down_then_up(tmp_path: Path) -> Iterator[tuple[str, Callable[[], None]]]:
    """A database file that is a folder at first (every connection fails), then a real database."""
    ready = tmp_path / "ready.sqlite3"
    settings = load_settings({"database_url": f"sqlite:///{ready}", "poll_interval": 0})
    init_db(settings)
    _add_admin(settings.database_url)
    path = tmp_path / "authz.sqlite3"
    path.mkdir()

    def come_back() -> None:
        path.rmdir()
        shutil.copyfile(ready, path)

    yield f"sqlite:///{path}", come_back


@contextmanager
def postgres_down_then_up() -> Iterator[tuple[str, Callable[[], None]]]:
    """A PostgreSQL URL through a port nobody listens on, until the forwarder starts."""
    problem = _postgres_available()
    if problem:
        if IN_CI:
            pytest.fail(f"PostgreSQL is required in CI: {problem}")
        pytest.skip(f"PostgreSQL not available: {problem}")
    name = f"t_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    direct = postgres_schema(name)
    forwarder = None
    try:
        init_db(load_settings({"database_url": direct, "poll_interval": 0}))
        _add_admin(direct)
        real = make_url(direct)
        forwarder = Forwarder((real.host or "127.0.0.1", real.port or 5432))
        yield real.set(port=forwarder.port).render_as_string(hide_password=False), forwarder.start
    finally:
        if forwarder is not None:
            forwarder.stop()
        postgres_schema(name, drop=True)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_no_per_process_key_while_the_database_is_down(kind: str, tmp_path: Path) -> None:
    database = sqlite_down_then_up(tmp_path) if kind == "sqlite" else postgres_down_then_up()
    with database as (url, come_back):
        overrides = {"database_url": url, "poll_interval": 0, "notify": "off"}  # no AUTHZ_SECRET_KEY
        first = create_app(overrides, start_polling=False)
        second = None
        try:
            client = first.test_client()
            for attempt in range(2):  # asked again on each request, never a key of its own
                down = client.get("/ui/login", headers={"Accept-Language": "fr"})
                assert down.status_code == 503 and down.mimetype == "text/html", attempt
                assert "Service indisponible" in page(down) and down.headers["Retry-After"]
                assert first.secret_key is None
            down_nl = client.get("/ui/", headers={"Accept-Language": "nl"})
            assert down_nl.status_code == 503 and "Dienst niet beschikbaar" in page(down_nl)
            client.set_cookie("authz_session", "a cookie of before")
            api = client.get("/cpas/0212345668/profiles")
            assert api.status_code == 503 and api.json["error"]["code"] == "unavailable"
            assert first.test_client().get("/healthz").status_code == 200  # the rest never waits for the key

            come_back()
            second = create_app(overrides, start_polling=False)  # another worker, started after the outage
            web = browser(first)
            assert web.login("gestionnaire").status_code == 303
            assert second.secret_key is None  # read on its first request that needs it
            cookie = cookie_of(web)
            for n in range(10):  # page loads spread over both workers: never back to the login page
                worker = (first, second)[n % 2]
                response = with_cookie(worker, cookie).get("/ui/cpas")
                assert response.status_code == 200, (n, response.status_code, response.headers.get("Location"))
            assert with_cookie(second, cookie).client.get("/catalog").status_code == 200  # the JSON API too
            assert first.secret_key and first.secret_key == second.secret_key
        finally:
            first.extensions["authz"].close()
            if second is not None:
                second.extensions["authz"].close()
