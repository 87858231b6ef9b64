"""Telling the other workers and instances that a CPAS's policy changed.

The policy version in the database is the truth; these messages are only a nudge so that the others
rebuild at once instead of at their next poll (which stays as the safety net). Two carriers:

- PostgreSQL ``NOTIFY``, sent inside the change's own transaction: delivered exactly when it commits,
  never for a change that rolled back, with no extra service to run;
- Redis pub/sub, published right after the commit, for deployments that already run Redis (or a
  database without NOTIFY).

A listener runs on its own thread per process (created after gunicorn forks, in ``create_app``),
reconnects with backoff, and ignores its own process's messages (that process already rebuilt).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import make_url

from .store import listen, ping_listener

if TYPE_CHECKING:
    from .store import Store

log = logging.getLogger(__name__)
CHANNEL = "authz_policy"


class Notifier:
    """No carrier: polling only."""

    kind = "off"

    def __init__(self) -> None:
        self.origin = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # set by listen(): run once the listener is subscribed (catch up on what was missed while it was
        # not), and at least once a second while it stays subscribed
        self._on_connected: Callable[[], object] = lambda: None
        self._on_alive: Callable[[], object] = lambda: None

    def in_transaction(self, store: Store, cpas: str) -> None:
        """Called inside the change's transaction, before commit."""

    def after_commit(self, cpas: str) -> None:
        """Called once the change has committed."""

    def listen(
        self,
        on_change: Callable[[str], object],
        on_connected: Callable[[], object] | None = None,
        on_alive: Callable[[], object] | None = None,
    ) -> None:
        """Start the listener thread (none without a carrier); ``on_change(cpas)`` runs on it,
        ``on_connected()`` each time it has (re)subscribed, ``on_alive()`` about once a second while it
        stays subscribed."""
        if self.kind == "off":
            return
        self._on_connected = on_connected or self._on_connected
        self._on_alive = on_alive or self._on_alive
        self._start(lambda: self._session(on_change))

    def _session(self, on_change: Callable[[str], object]) -> None:
        """Connect, subscribe, then deliver messages until the connection fails or we stop."""
        raise NotImplementedError

    def _payload(self, cpas: str) -> str:
        return json.dumps({"cpas": cpas, "origin": self.origin})

    def _handle(self, raw: str | bytes, on_change: Callable[[str], object]) -> None:
        try:
            message = json.loads(raw)
            cpas, origin = str(message["cpas"]), message.get("origin")
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed policy notification: %r", raw[:200])
            return
        if origin != self.origin:
            on_change(cpas)

    def _start(self, session: Callable[[], object]) -> None:
        """Run ``session`` (connect, then deliver messages until the connection fails or we stop) on a
        thread, reconnecting with backoff: the poller covers whatever is missed in between."""

        def run() -> None:
            delay = 0.2
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    session()
                except Exception as exc:
                    log.warning("policy %s listener lost its connection (%s); retrying", self.kind, exc)
                if time.monotonic() - started > 5:
                    delay = 0.2  # it had been working: start the backoff anew
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)

        self._thread = threading.Thread(target=run, name=f"authz-{self.kind}-listener", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=3)


class PostgresNotifier(Notifier):
    kind = "postgres"

    def __init__(self, database_url: str) -> None:
        super().__init__()
        # psycopg wants a libpq URL, without SQLAlchemy's "+psycopg" dialect suffix
        self.dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)

    def in_transaction(self, store: Store, cpas: str) -> None:
        store.notify(CHANNEL, self._payload(cpas))

    def _session(self, on_change: Callable[[str], object]) -> None:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True, connect_timeout=5) as conn:
            listen(conn, CHANNEL)
            self._on_connected()
            while not self._stop.is_set():
                for note in conn.notifies(timeout=1.0):
                    self._handle(note.payload, on_change)
                ping_listener(conn)  # a dead connection fails here, not silently
                self._on_alive()


class RedisNotifier(Notifier):
    kind = "redis"

    def __init__(self, redis_url: str) -> None:
        super().__init__()
        import redis

        self.redis_url = redis_url
        self.client: Any = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)

    def after_commit(self, cpas: str) -> None:
        try:
            self.client.publish(CHANNEL, self._payload(cpas))
        except Exception as exc:  # Redis down: the others catch up at their next poll
            log.warning("could not publish a policy notification: %s", exc)

    def _session(self, on_change: Callable[[str], object]) -> None:
        import redis

        client = redis.Redis.from_url(self.redis_url, socket_timeout=None, socket_connect_timeout=2)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(CHANNEL)
            pubsub.get_message(timeout=2.0)  # the subscription's confirmation
            self._on_connected()
            while not self._stop.is_set():
                message = pubsub.get_message(timeout=1.0)
                if message and message.get("type") == "message":
                    self._handle(message["data"], on_change)
                else:
                    pubsub.ping()  # a dead connection fails here, not silently
                    self._on_alive()
        finally:
            pubsub.close()
            client.close()


def make_notifier(kind: str, database_url: str, redis_url: str | None) -> Notifier:
    if kind == "auto":
        kind = "redis" if redis_url else ("postgres" if database_url.startswith("postgresql") else "off")
    if kind == "redis":
        if not redis_url:
            raise ValueError("AUTHZ_NOTIFY=redis needs AUTHZ_REDIS_URL")
        return RedisNotifier(redis_url)
    if kind == "postgres":
        if not database_url.startswith("postgresql"):
            raise ValueError("AUTHZ_NOTIFY=postgres needs a PostgreSQL AUTHZ_DATABASE_URL")
        return PostgresNotifier(database_url)
    return Notifier()
