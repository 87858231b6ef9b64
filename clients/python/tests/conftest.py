"""Fixtures of the client tests: the real service on a real socket with the demo CPAS (one for the run),
a requests.Session that counts what it sends, and a tiny local stub server. Helpers live in support.py."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from authz_service import create_app

from support import DEMO_CPAS, UNKNOWN_CPAS, CountingSession, Live, Stub, make_key, prepare_database, reply, serve


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    # One server for the whole run (building the catalog and the demo takes a second or two). The app is
    # built with start_polling=False, so nothing refreshes its "last synced" time: without a long
    # max_staleness it would answer 503 to every decision 15 s after start.
    path = tmp_path_factory.mktemp("live") / "authz.sqlite3"
    overrides, settings = prepare_database(path, max_staleness=3600)
    keys = {
        "full": make_key(settings, "enforce,users"),
        "enforce": make_key(settings, "enforce"),
        "admin": make_key(settings, "admin"),
        "other_cpas": make_key(settings, "enforce,users", [UNKNOWN_CPAS]),
    }
    app = create_app(overrides, start_polling=False)
    service = app.extensions["authz"]
    service.sync()
    profiles = service.read(lambda store: {p.description_fr: p.id for p in store.profiles(DEMO_CPAS)})
    try:
        with serve(app) as url:
            yield Live(url=url, keys=keys, profiles=profiles, settings=settings, overrides=overrides)
    finally:
        service.close()


@pytest.fixture
def counting() -> Iterator[CountingSession]:
    session = CountingSession()
    yield session
    session.close()


@pytest.fixture
def stub() -> Iterator[Stub]:
    state = Stub(url="")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def handle_any(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with state.lock:
                state.requests.append((self.command, self.path, dict(self.headers), body))
                index = len(state.requests) - 1
                behaviour = state.behaviours[min(index, len(state.behaviours) - 1)] if state.behaviours else None
            (behaviour or reply(500, "no behaviour"))(self)

        do_GET = do_POST = do_PUT = handle_any

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.block_on_close = False
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
