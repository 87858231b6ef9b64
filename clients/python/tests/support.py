"""Helpers of the client tests: the demo data's names, building the real service (as the service's own
tests/conftest.py does) and serving it on a real socket, a requests.Session that counts what it sends, and
stub-server behaviours for what the real service does not do (sleep, garbage, hang up)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import requests
from authz_service.cli import init_db, seed_demo
from authz_service.config import Settings, load_settings
from authz_service.db import Database
from authz_service.security import new_api_key
from authz_service.store import Store
from werkzeug.serving import make_server

# seed/demo.yaml
DEMO_CPAS = "0207196354"
MARIE = "85073003328"  # Marie LEBLANC, profile Full
ANNELIES = "96031220418"  # Annelies WILLEMS, help_request.* without the dossier.search prerequisite
MICHEL = "77070619530"  # Michel RENARD, inactive
CLAIRE = "91012704692"  # Claire MARTIN, Directeur général + clignotants
LUC = "75081815365"  # Luc LAMBERT, active, no profile
UNKNOWN_CPAS = "0212345668"  # a valid KBO number (mod-97) that the service does not know


def prepare_database(path: Path, **extra: Any) -> tuple[dict[str, Any], Settings]:
    overrides = {"database_url": f"sqlite:///{path}", "poll_interval": 0, "secret_key": "client-tests", **extra}
    settings = load_settings(overrides)
    init_db(settings)
    seed_demo(settings)
    return overrides, settings


def make_key(settings: Settings, scopes: str, cpas: list[str] | None = None) -> str:
    database = Database(settings.database_url)
    try:
        with database.transaction() as session:
            return str(new_api_key(Store(session), "client-tests", tuple(scopes.split(",")), cpas))
    finally:
        database.dispose()


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """The WSGI app on 127.0.0.1, a free port, in a thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="authz-test-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@dataclass
class Live:
    url: str
    keys: dict[str, str]
    profiles: dict[str, int]  # description_fr -> id
    settings: Settings
    overrides: dict[str, Any]


class CountingSession(requests.Session):
    """Records every request it sends (connection failures included) and every status it receives."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[requests.PreparedRequest] = []
        self.statuses: list[int] = []
        self.closed = False

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.sent.append(request)
        response = super().send(request, **kwargs)
        self.statuses.append(response.status_code)
        return response

    def close(self) -> None:
        self.closed = True
        super().close()

    def paths(self) -> list[str]:
        return [str(r.path_url).split("?")[0] for r in self.sent]


# -- stub servers -------------------------------------------------------------------------------------------
Behaviour = Callable[[BaseHTTPRequestHandler], None]


def reply(status: int, body: bytes | str, content_type: str = "application/json",
          headers: dict[str, str] | None = None) -> Behaviour:
    data = body.encode() if isinstance(body, str) else body

    def behave(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    return behave


def hang_up(handler: BaseHTTPRequestHandler) -> None:
    """Read the request, then close the connection without a word."""
    handler.close_connection = True


def sleep_then(seconds: float, behaviour: Behaviour) -> Behaviour:
    def behave(handler: BaseHTTPRequestHandler) -> None:
        time.sleep(seconds)
        behaviour(handler)

    return behave


@dataclass
class Stub:
    url: str
    behaviours: list[Behaviour] = field(default_factory=list)  # one per request; the last one repeats
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def then(self, *behaviours: Behaviour) -> Stub:
        self.behaviours.extend(behaviours)
        return self

    @property
    def hits(self) -> int:
        return len(self.requests)


def closed_port() -> int:
    """A port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_port() -> int:
    return closed_port()
