"""SQLAlchemy engine and sessions: one transaction per request or command, and a bound on every wait.

``Database.transaction()`` is the only way code writes: it yields a session, commits on success and
rolls back on any exception, so rule rows, our rows, the audit row and the policy-version bump land
together or not at all.

``Database(url, timeout=T)`` (the service passes ``AUTHZ_STORE_TIMEOUT``) turns a store that stops
answering into an error within about T seconds instead of a hang:

- taking a connection (waiting for the pool, its liveness ping, and reconnecting) takes at most T in
  all; a new connection that the server does not complete within T is abandoned (psycopg's own
  ``connect_timeout`` counts whole seconds, at least 2, so it only bounds the abandoned attempt);
- on PostgreSQL every session carries ``statement_timeout`` and ``lock_timeout`` of T (the server
  cancels what runs or waits for a lock too long) and ``idle_in_transaction_session_timeout`` of 10 T
  (a stuck client cannot hold a CPAS's lock for ever); and since a frozen server or a broken network
  cancels nothing, a watchdog thread shuts the socket of any call (statement, commit, rollback) that
  still has no answer a little after T;
- on SQLite the busy timeout is T.

Without ``timeout`` (the maintenance commands: migrations, ``generate``, key management) waits are not
bounded, as before. ``failure_kind`` says what a store error means for the caller.
"""

from __future__ import annotations

import heapq
import itertools
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import psycopg
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import ObjectDeletedError, StaleDataError

from .freshness import VersionBoard


class Database:
    def __init__(self, url: str, *, board: str | None = None, timeout: float | None = None) -> None:
        self.url = url
        self.timeout = timeout
        # the instant of the policy history's rows (Store.record_history): None, the database's clock; tests
        # inject one so that every change has an instant of its own without waiting
        self.history_clock: Callable[[], datetime] | None = None
        kwargs: dict = {"future": True}
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": timeout or 30}
        else:
            kwargs.update(pool_pre_ping=True, pool_size=5, max_overflow=5)
            if timeout:
                kwargs["pool_timeout"] = timeout
        self.engine: Engine = create_engine(url, **kwargs)
        if url.startswith("sqlite"):
            busy_ms = round((timeout or 30) * 1000)
            event.listen(self.engine, "connect", lambda conn, _record: _sqlite_pragmas(conn, busy_ms))
            # pysqlite's own transaction handling defers BEGIN; take it over so that a
            # write transaction starts with BEGIN IMMEDIATE and never deadlocks on upgrade.
            event.listen(self.engine, "begin", _sqlite_begin)
        elif timeout and self.engine.dialect.driver == "psycopg":
            event.listen(self.engine, "do_connect", _PostgresTimeouts(timeout))
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        # read-your-writes on this host: a committed change is announced on the version board before
        # the caller can answer (Store.bump_version notes the CPAS in session.info)
        self.board = VersionBoard.for_database(url, board)
        event.listen(self.sessions, "after_commit", self._announce)
        event.listen(self.sessions, "after_rollback", _forget_changes)

    def _announce(self, session: Session) -> None:
        for cpas in session.info.pop(CHANGED, ()):
            self.board.changed(cpas)

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    def _connect(self, session: Session, **options: Any) -> None:
        """Take the session's connection now, within the timeout: pool wait, ping and reconnect together."""
        token = _checkout_deadline.set(time.monotonic() + self.timeout) if self.timeout else None
        try:
            session.connection(execution_options=options or None)
        finally:
            if token is not None:
                _checkout_deadline.reset(token)

    @contextmanager
    def transaction(self, *, commit: bool = True) -> Iterator[Session]:
        """A write transaction. ``commit=False``: a rehearsal (``Service.preview``), the same transaction
        with the same locks, rolled back at the end whatever happens: nothing is written and, the commit
        hook never running, nothing is announced on the version board."""
        session = self.sessions()
        if self.history_clock is not None:
            session.info[HISTORY_CLOCK] = self.history_clock
        try:
            if self.is_sqlite:
                self._connect(session, sqlite_write=True)
            else:
                self._connect(session)
            yield session
            if not commit:
                session.rollback()
                return
            session.flush()  # a failure up to here left nothing behind; only the COMMIT itself can be lost
            try:
                session.commit()
            except DBAPIError as exc:
                if exc.connection_invalidated:
                    raise CommitOutcomeUnknown(
                        "the connection to the policy store was lost while committing"
                    ) from exc
                raise
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @contextmanager
    def reading(self) -> Iterator[Session]:
        session = self.sessions()
        try:
            self._connect(session)
            yield session
        finally:
            # detach what was read before ending the transaction, so that rows handed back to the
            # caller keep their loaded values instead of being expired by the rollback
            session.expunge_all()
            session.rollback()
            session.close()

    def after_fork(self) -> None:
        """In a forked child: connections of its own (the parent's stay the parent's) and a descriptor of
        its own for the version board's lock."""
        self.engine.dispose(close=False)
        self.board.after_fork()

    def dispose(self) -> None:
        self.engine.dispose()
        self.board.close()


HISTORY_CLOCK = "authz_history_clock"  # session.info key: Database.history_clock, for Store's history rows
CHANGED = "authz_changed_cpas"  # session.info key: CPAS whose policy version this transaction bumped


def note_change(session: Session, cpas: str | None) -> None:
    """Announce ``cpas`` (None: every CPAS) on the version board once this transaction commits."""
    session.info.setdefault(CHANGED, set()).add(cpas)


def _forget_changes(session: Session) -> None:
    session.info.pop(CHANGED, None)


def _sqlite_pragmas(dbapi_connection: Any, busy_ms: int) -> None:
    dbapi_connection.isolation_level = None  # let the "begin" listener issue BEGIN
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
    cursor.close()


def _sqlite_begin(conn) -> None:
    # A write transaction takes the write lock up front (BEGIN IMMEDIATE) so that two writers never
    # deadlock upgrading a read lock; reads stay deferred and run beside writers (WAL).
    immediate = conn.get_execution_options().get("sqlite_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


# -- what a store error means -------------------------------------------------------------------------
class StoreTimeout(psycopg.OperationalError):
    """The store gave no answer in time (raised by the watchdog or the connect deadline)."""


class CommitOutcomeUnknown(SQLAlchemyError):
    """The connection was lost during COMMIT: the change may or may not have been saved."""


FailureKind = Literal["conflict", "retry", "timeout", "unreachable", "outcome_unknown", "other"]

_CONNECT_TIMEOUT = getattr(psycopg.errors, "ConnectionTimeout", StoreTimeout)  # psycopg >= 3.1
_RETRY_STATES = {"40001", "40P01"}  # serialization_failure, deadlock_detected
# query_canceled (statement_timeout), lock_not_available (lock_timeout),
# idle_in_transaction_session_timeout
_TIMEOUT_STATES = {"57014", "55P03", "25P03"}


def failure_kind(exc: BaseException) -> FailureKind:
    """What a store error means for the caller:

    - ``conflict``: a constraint refused the change, or a row it read was deleted or changed meanwhile
      (another change got there first): 409;
    - ``retry``: a serialization failure or a deadlock; running the transaction again may succeed: 409;
    - ``timeout``: the store did not answer in time (watchdog, connect deadline, pool wait, statement or
      lock timeout, SQLite busy): 503;
    - ``unreachable``: no connection, or it was lost (refused, reset, server shut down): 503;
    - ``outcome_unknown``: the connection was lost during COMMIT: 503, saying so;
    - ``other``: a programming or data error (a bug): 500.
    """
    if isinstance(exc, CommitOutcomeUnknown):
        return "outcome_unknown"
    if isinstance(exc, PoolTimeout):
        return "timeout"
    if isinstance(exc, IntegrityError | ObjectDeletedError | StaleDataError):
        return "conflict"  # a constraint, or a row another transaction deleted or changed under this one
    orig = getattr(exc, "orig", None)
    if isinstance(orig, StoreTimeout | _CONNECT_TIMEOUT):
        return "timeout"
    state = getattr(orig, "sqlstate", None)
    if state in _RETRY_STATES:
        return "retry"
    if state in _TIMEOUT_STATES:
        return "timeout"
    if isinstance(exc, OperationalError):
        if type(orig).__module__ == "sqlite3":  # SQLite says OperationalError for much that is not
            text = str(orig).lower()
            if "locked" in text or "busy" in text:  # its busy timeout ran out
                return "timeout"
            if "unable to open" in text or "disk i/o" in text:
                return "unreachable"
            return "other"  # no such table, syntax error...
        return "unreachable"
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return "unreachable"
    return "other"


# -- PostgreSQL: bounded connect, server-side timeouts, and the watchdog ---------------------------------
# monotonic deadline for taking a connection (pool wait, ping, reconnect) in this context
_checkout_deadline: ContextVar[float | None] = ContextVar("authz_checkout_deadline", default=None)


def _margin(timeout: float) -> float:
    """How long after the server's own statement timeout the watchdog steps in (so that a live server
    cancels first, cleanly, and the connection survives)."""
    return min(1.0, max(0.1, timeout / 4))


class _PostgresTimeouts:
    """``do_connect`` listener: connects within the time left, with the session timeouts, returning a
    connection whose every call the watchdog bounds."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        ms = max(1, round(timeout * 1000))
        self.options = (
            f"-c statement_timeout={ms} -c lock_timeout={ms} "
            f"-c idle_in_transaction_session_timeout={10 * ms}"
        )

    def __call__(self, _dialect: Any, _record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        budget = _time_left(self.timeout)
        if budget <= 0:
            raise StoreTimeout("no time was left to connect to the store")
        params = dict(cparams)
        # ours first: an explicit setting in the URL's own options wins
        params["options"] = f"{self.options} {params.get('options') or ''}".strip()
        params["connect_timeout"] = max(2, math.ceil(self.timeout))  # bounds the attempt we may abandon
        params["cursor_factory"] = _GuardedCursor
        conn = _within(budget, lambda: _GuardedConnection.connect(*cargs, **params))
        conn.call_timeout = self.timeout + _margin(self.timeout)
        return conn


def _time_left(limit: float) -> float:
    deadline = _checkout_deadline.get()
    return limit if deadline is None else min(limit, deadline - time.monotonic())


def _within(seconds: float, connect: Callable[[], Any]) -> Any:
    """``connect()`` on a helper thread; StoreTimeout if it has not finished within ``seconds`` (a
    connection that completes later is closed)."""
    lock = threading.Lock()
    done = threading.Event()
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            value = connect()
        except BaseException as exc:
            with lock:
                box["error"] = exc
        else:
            with lock:
                if box.get("abandoned"):
                    value.close()
                else:
                    box["value"] = value
        done.set()

    threading.Thread(target=run, name="authz-store-connect", daemon=True).start()
    done.wait(seconds)
    with lock:
        if "value" in box:
            return box["value"]
        if "error" in box:
            raise box["error"]
        box["abandoned"] = True
    raise StoreTimeout(f"the store did not complete a connection within {seconds:.2f} s")


@contextmanager
def _guard(conn: Any) -> Iterator[None]:
    """Bound one call on ``conn``: after ``conn.call_timeout`` (or the time left to take a connection)
    the watchdog shuts its socket, and the call fails with StoreTimeout."""
    limit = _time_left(conn.call_timeout)
    if limit <= 0:
        raise StoreTimeout("no time was left to reach the store")
    token = _WATCHDOG.arm(conn, limit)
    try:
        yield
    except psycopg.Error as exc:
        if _WATCHDOG.disarm(token):
            raise StoreTimeout(f"the store gave no answer within {limit:.2f} s") from exc
        raise
    finally:
        _WATCHDOG.disarm(token)


class _GuardedCursor(psycopg.Cursor[Any]):
    def execute(self, *args: Any, **kwargs: Any) -> Any:
        with _guard(self.connection):
            return super().execute(*args, **kwargs)

    def executemany(self, *args: Any, **kwargs: Any) -> None:
        with _guard(self.connection):
            super().executemany(*args, **kwargs)


class _GuardedConnection(psycopg.Connection[Any]):
    call_timeout: float = 3600.0

    def commit(self) -> None:
        with _guard(self):
            super().commit()

    def rollback(self) -> None:
        with _guard(self):
            super().rollback()


class _Watchdog:
    """One thread per process: shuts the socket of a connection whose call outlived its deadline, which
    wakes the waiting call with an error (the server may be frozen or unreachable: nothing else would)."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int]] = []
        self._armed: dict[int, Any] = {}
        self._fired: set[int] = set()
        self._tokens = itertools.count(1)
        self._thread: threading.Thread | None = None

    def arm(self, conn: Any, seconds: float) -> int:
        token = next(self._tokens)
        deadline = time.monotonic() + seconds
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="authz-store-watchdog", daemon=True)
                self._thread.start()
            earliest = not self._heap or deadline < self._heap[0][0]
            self._armed[token] = conn
            heapq.heappush(self._heap, (deadline, token))
            if earliest:
                self._cond.notify()
        return token

    def disarm(self, token: int) -> bool:
        """Returns whether the deadline had passed (the socket was shut)."""
        with self._cond:
            self._armed.pop(token, None)
            if token in self._fired:
                self._fired.discard(token)
                return True
            return False

    def _run(self) -> None:
        with self._cond:
            while True:
                while self._heap and self._heap[0][1] not in self._armed:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                deadline, token = self._heap[0]
                delay = deadline - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                heapq.heappop(self._heap)
                self._fired.add(token)
                _shut(self._armed.pop(token))


def _shut(conn: Any) -> None:
    try:
        sock = socket.socket(fileno=os.dup(conn.fileno()))
    except (OSError, psycopg.Error):
        return  # already closed
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.close()


_WATCHDOG = _Watchdog()
os.register_at_fork(after_in_child=_WATCHDOG._reset)  # a forked child starts with no thread and no lock held
