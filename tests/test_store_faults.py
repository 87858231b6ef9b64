"""A store that hangs, refuses, times out or reports a conflict: every route answers within a bound of
AUTHZ_STORE_TIMEOUT, with the right status (503 only when the store does not answer or cannot be reached,
409 when another change got in the way, never a driver's text), and decisions keep coming from memory
while the policy is current.

A hung PostgreSQL is simulated with a TCP proxy in this process that can stop forwarding (established
connections hang) and accept new connections without ever answering them: freezing the shared server
itself would stall other test runs."""

from __future__ import annotations

import contextlib
import select
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import psycopg
import pytest
from pydantic import ValidationError
from sqlalchemy import event, make_url, text
from sqlalchemy.exc import SQLAlchemyError

from authz_service import create_app
from authz_service.config import load_settings
from authz_service.errors import Conflict, Unavailable
from authz_service.models import User
from authz_service.service import Service

from .conftest import Api


@contextlib.contextmanager
def instead_of_ping(service: Service, statement: str) -> Iterator[None]:
    """While inside, the store's ping (``SELECT 1``) sends ``statement`` to the server instead: a fault
    injected where the driver meets the server, under every layer of the service."""

    def swap(conn: Any, cursor: Any, sent: str, parameters: Any, context: Any, many: bool) -> tuple[str, Any]:
        return (statement, parameters) if sent.strip().upper() == "SELECT 1" else (sent, parameters)

    event.listen(service.db.engine, "before_cursor_execute", swap, retval=True)
    try:
        yield
    finally:
        event.remove(service.db.engine, "before_cursor_execute", swap)

TIMEOUT = 0.5  # AUTHZ_STORE_TIMEOUT in these tests
BOUND = 3 * TIMEOUT  # every answer while the store hangs comes within this
CPAS = "0212345668"
# what /readyz and a 503 say: fixed sentences, never the driver's text
STORE_SILENT = "the policy store does not answer"
STORE_UNREACHABLE = "the policy store cannot be reached"
USER = "11111111111"
PG = pytest.mark.parametrize("backend", ["postgres"], indirect=True)
BOTH = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)


class HangingProxy:
    """127.0.0.1:<port> -> the PostgreSQL server. ``hang()``: established connections stop moving data
    and new ones are accepted but never answered, as with a frozen server; ``resume()`` undoes it."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.forwarding = threading.Event()
        self.forwarding.set()
        self.stopped = threading.Event()
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, name="hanging-proxy", daemon=True).start()

    def _keep(self, sock: socket.socket) -> None:
        with self.lock:
            self.sockets.append(sock)

    def _accept(self) -> None:
        while not self.stopped.is_set():
            ready, _, _ = select.select([self.listener], [], [], 0.05)
            if not ready:
                continue
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self._keep(client)
            if not self.forwarding.is_set():
                continue  # accepted, never answered
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            self._keep(upstream)
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while not self.stopped.is_set():
                if not self.forwarding.is_set():
                    time.sleep(0.02)
                    continue
                ready, _, _ = select.select([src], [], [], 0.05)
                if not ready or not self.forwarding.is_set():
                    continue
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def hang(self) -> None:
        self.forwarding.clear()

    def resume(self) -> None:
        self.forwarding.set()

    def close(self) -> None:
        self.stopped.set()
        self.forwarding.set()
        self.listener.close()
        with self.lock:
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.close()


def timed(fn: Callable[[], Any], bound: float = BOUND) -> tuple[Any, float]:
    """Run ``fn`` on a thread; (its result, seconds it took). Fails if it has not answered well past
    ``bound`` (a hung call is left behind on its daemon thread; the proxy's teardown releases it)."""
    box: dict[str, Any] = {}

    def run() -> None:
        started = time.monotonic()
        try:
            box["result"] = fn()
        except BaseException as exc:
            box["error"] = exc
        box["elapsed"] = time.monotonic() - started

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(bound + 10)
    assert not thread.is_alive(), f"no answer after {bound + 10:.1f} s (the bound is {bound:.1f} s)"
    if "error" in box:
        raise box["error"]
    return box["result"], box["elapsed"]


def answered_503(fn: Callable[[], Any], bound: float = BOUND) -> Any:
    response, elapsed = timed(fn, bound)
    assert response.status_code == 503, (response.status_code, response.get_data(as_text=True))
    assert response.json["error"]["code"] == "unavailable"
    assert elapsed < bound, f"answered after {elapsed:.2f} s; the bound is {bound:.2f} s"
    return response


def no_driver_text(body: str) -> None:
    for word in ("127.0.0.1", "5432", "port", "psycopg", "connection to server", "timeout expired", "SELECT"):
        assert word not in body, f"{word!r} leaked into {body!r}"


@pytest.fixture
def proxy(backend: str) -> Iterator[HangingProxy]:
    assert backend == "postgres"
    from .conftest import POSTGRES_URL

    url = make_url(POSTGRES_URL)
    hanging = HangingProxy((url.host or "127.0.0.1", url.port or 5432))
    yield hanging
    hanging.close()


def through(proxy: HangingProxy, database_url: str) -> str:
    return make_url(database_url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)


@pytest.fixture
def proxied(settings: Any, overrides: dict[str, Any], proxy: HangingProxy) -> Iterator[Callable[..., Any]]:
    """Build apps whose store is reached through the proxy (the schema and catalog exist already)."""
    made: list[Any] = []

    def build(**extra: Any) -> Any:
        app = create_app({**overrides, "database_url": through(proxy, settings.database_url),
                          "store_timeout": TIMEOUT, "notify": "off", **extra}, start_polling=False)
        app.config["TESTING"] = True
        made.append(app)
        return app

    yield build
    proxy.resume()
    for app in made:
        app.extensions["authz"].close()


def world(api: Api) -> None:
    assert api.post("/cpas", {"cpas": CPAS, "name_fr": "CPAS de Test", "name_nl": "OCMW Test",
                              "region": "wallonia"}).status_code == 201
    assert api.put(f"/cpas/{CPAS}/users/{USER}", {"name": "Marie", "lang": "fr"}).status_code == 201


ENFORCE = {"cpas": CPAS, "user": USER, "function": "dossier.search"}


# -- a store that hangs ----------------------------------------------------------------------------------
@PG
def test_a_hung_store_gives_503_within_the_bound_on_every_route(
    proxied: Callable[..., Any], proxy: HangingProxy, make_key: Callable[..., str]
) -> None:
    app = proxied()
    known = Api(app.test_client(), make_key())  # its key gets cached below, before the store hangs
    world(known)
    assert known.post("/enforce", ENFORCE).status_code == 200
    fresh = make_key()  # never seen by the service: authenticating it needs the store
    proxy.hang()

    def call(method: str, url: str, body: Any = None, key: str | None = None) -> Callable[[], Any]:
        return lambda: Api(app.test_client(), key or known.key).call(method, url, body)

    # decisions with an unseen key need the store to authenticate it
    answered_503(call("POST", "/enforce", ENFORCE, fresh))
    answered_503(call("POST", "/enforce/batch", {"requests": [{"id": 1, **ENFORCE}]}, fresh))
    answered_503(call("GET", f"/cpas/{CPAS}/users/{USER}/functions", key=fresh))
    # reads and writes of the admin API
    answered_503(call("GET", f"/cpas/{CPAS}/profiles"))
    answered_503(call("PUT", f"/cpas/{CPAS}/users/22222222222", {"name": "Luc", "lang": "fr"}))
    written = answered_503(call("POST", f"/cpas/{CPAS}/profiles", {
        "description_fr": "Recherche", "description_nl": None, "functions": ["dossier.search"]}))
    assert written.json["error"]["message"] == f"{STORE_SILENT}; nothing was changed"
    ready, elapsed = timed(lambda: app.test_client().get("/readyz"))
    assert ready.status_code == 503 and elapsed < BOUND, (ready.status_code, elapsed)
    assert ready.json == {"status": "unavailable", "problems": [STORE_SILENT]}
    no_driver_text(ready.get_data(as_text=True))
    # the policy is current (it was synced a moment ago): decisions for a known key come from memory
    for route, body in (("/enforce", ENFORCE), ("/enforce/batch", {"requests": [{"id": 1, **ENFORCE}]})):
        answer, elapsed = timed(call("POST", route, body))
        assert answer.status_code == 200 and elapsed < TIMEOUT, (route, answer.status_code, elapsed)
    answer, elapsed = timed(call("GET", f"/cpas/{CPAS}/users/{USER}/functions"))
    assert answer.status_code == 200 and elapsed < TIMEOUT, (answer.status_code, elapsed)

    proxy.resume()  # the store answers again: so does everything, on fresh connections
    assert timed(call("GET", f"/cpas/{CPAS}/profiles"))[0].status_code == 200
    assert timed(call("PUT", f"/cpas/{CPAS}/users/22222222222", {"name": "Luc", "lang": "fr"}))[0].status_code == 201
    assert timed(lambda: app.test_client().get("/readyz"))[0].status_code == 200


@PG
def test_decisions_come_from_memory_until_the_policy_is_stale_then_503(
    proxied: Callable[..., Any], proxy: HangingProxy, make_key: Callable[..., str]
) -> None:
    staleness = 1.5
    app = proxied(poll_interval=0.2, max_staleness=staleness)
    known = Api(app.test_client(), make_key())
    world(known)
    service: Service = app.extensions["authz"]
    service.start_polling()
    assert known.post("/enforce", ENFORCE).status_code == 200
    time.sleep(0.3)  # a poll has come and gone
    proxy.hang()
    hung_at = time.monotonic()
    statuses: list[tuple[float, int]] = []
    while time.monotonic() - hung_at < staleness + 2 * BOUND:
        answer, elapsed = timed(lambda: known.post("/enforce", ENFORCE))
        assert elapsed < BOUND, f"a decision took {elapsed:.2f} s"
        statuses.append((time.monotonic() - hung_at, answer.status_code))
        if answer.status_code == 503:
            assert answer.json["error"]["code"] == "unavailable" and "allowed" not in answer.json
            break
        assert answer.status_code == 200
        time.sleep(0.1)
    assert statuses[0][1] == 200, "the current policy answers from memory"
    assert statuses[-1][1] == 503, f"still answering from a stale policy: {statuses[-3:]}"
    assert statuses[-1][0] > staleness - 0.5, f"refused before the policy was stale: {statuses[-3:]}"
    proxy.resume()
    deadline = time.monotonic() + 5
    while known.post("/enforce", ENFORCE).status_code != 200:
        assert time.monotonic() < deadline, "decisions did not come back once the store answered"
        time.sleep(0.1)


@PG
def test_a_store_that_accepts_but_never_answers_new_connections(
    proxied: Callable[..., Any], proxy: HangingProxy, make_key: Callable[..., str]
) -> None:
    proxy.hang()
    app, elapsed = timed(proxied)  # starts: its first sync cannot connect
    assert elapsed < BOUND, f"the app took {elapsed:.2f} s to start against a silent store"
    ready, elapsed = timed(lambda: app.test_client().get("/readyz"))
    assert ready.status_code == 503 and elapsed < BOUND, (ready.status_code, elapsed)
    assert ready.json == {"status": "unavailable", "problems": [STORE_SILENT, "the policy is not loaded"]}
    no_driver_text(ready.get_data(as_text=True))
    answered_503(lambda: Api(app.test_client(), make_key()).post("/enforce", ENFORCE))
    proxy.resume()
    assert app.extensions["authz"].sync()
    assert timed(lambda: app.test_client().get("/readyz"))[0].status_code == 200


@PG
def test_a_commit_without_answer_says_the_outcome_is_unknown(
    proxied: Callable[..., Any], proxy: HangingProxy, make_key: Callable[..., str]
) -> None:
    app = proxied()
    world(Api(app.test_client(), make_key()))
    service: Service = app.extensions["authz"]

    def change() -> None:
        with service.admin("test") as admin:
            admin.user_seen(CPAS, "33333333333", name="Nathalie", lang="fr")
            admin.store.flush()
            proxy.hang()  # everything is written; the COMMIT gets no answer

    with pytest.raises(Unavailable) as refused:
        timed(change, TIMEOUT + 1)
    assert "may or may not have been saved" in refused.value.message
    # and rightly so: the COMMIT waits in a socket buffer, and a server that wakes up may still apply it
    proxy.resume()
    assert timed(lambda: service.read(lambda store: store.ping()))[1] < BOUND


@PG
def test_the_server_cancels_a_statement_that_runs_too_long_and_the_connection_survives(
    settings: Any, overrides: dict[str, Any]
) -> None:
    service = Service(load_settings({**overrides, "store_timeout": TIMEOUT}))
    try:
        with instead_of_ping(service, "SELECT pg_sleep(0.1)"):
            service.read(lambda store: store.ping())
        with pytest.raises(Unavailable) as refused, instead_of_ping(service, "SELECT pg_sleep(5)"):
            timed(lambda: service.read(lambda store: store.ping()))
        assert refused.value.message == STORE_SILENT
        with service.db.reading() as session:
            shown = session.execute(text(
                "SELECT current_setting('statement_timeout'), current_setting('lock_timeout'), "
                "current_setting('idle_in_transaction_session_timeout'), current_setting('search_path')")).one()
        assert tuple(shown[:3]) == ("500ms", "500ms", "5s")
        assert shown[3].startswith("t_"), "the URL's own options (the test's schema) are kept"
    finally:
        service.close()


@PG
def test_a_change_waiting_for_a_cpas_lock_gives_up_after_the_timeout(
    settings: Any, overrides: dict[str, Any], make_key: Callable[..., str]
) -> None:
    app = create_app({**overrides, "store_timeout": TIMEOUT}, start_polling=False)
    try:
        api = Api(app.test_client(), make_key())
        world(api)
        dsn = make_url(settings.database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(dsn) as holder:  # another writer holds the CPAS's lock and does not let go
            holder.execute("SELECT 1 FROM cpas WHERE id = %s FOR UPDATE", (CPAS,))
            for method, url, body in (
                ("PUT", f"/cpas/{CPAS}/users/22222222222", {"name": "Luc", "lang": "fr"}),
                ("POST", f"/cpas/{CPAS}/users/{USER}/deactivate", None),
                ("POST", f"/cpas/{CPAS}/profiles", {"description_fr": "R", "description_nl": None, "functions": []}),
            ):
                answered_503(partial(Api(app.test_client(), api.key).call, method, url, body))
            # reads and decisions do not wait for the lock
            assert timed(lambda: api.get(f"/cpas/{CPAS}/profiles"))[0].status_code == 200
            assert timed(lambda: api.post("/enforce", ENFORCE))[0].status_code == 200
            holder.rollback()
        assert api.put(f"/cpas/{CPAS}/users/22222222222", {"name": "Luc", "lang": "fr"}).status_code == 201
    finally:
        app.extensions["authz"].close()


# -- SQLite ----------------------------------------------------------------------------------------------
def test_sqlite_busy_for_longer_than_the_timeout_gives_503(
    settings: Any, overrides: dict[str, Any], make_key: Callable[..., str]
) -> None:
    app = create_app({**overrides, "store_timeout": TIMEOUT}, start_polling=False)
    try:
        api = Api(app.test_client(), make_key())
        world(api)
        holder = sqlite3.connect(settings.database_url.split("///", 1)[1], isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
            refused = answered_503(lambda: api.put(f"/cpas/{CPAS}/users/22222222222", {"name": "Luc"}))
            assert refused.json["error"]["message"] == f"{STORE_SILENT}; nothing was changed"
            assert timed(lambda: api.post("/enforce", ENFORCE))[0].status_code == 200
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert api.put(f"/cpas/{CPAS}/users/22222222222", {"name": "Luc"}).status_code == 201
    finally:
        app.extensions["authz"].close()


# -- a store that refuses connections ----------------------------------------------------------------------
def test_readyz_says_what_is_wrong_without_the_drivers_text() -> None:
    with socket.socket() as sock:  # a port where nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = create_app({"database_url": f"postgresql+psycopg://postgres@127.0.0.1:{port}/none", "poll_interval": 0,
                      "store_timeout": TIMEOUT, "notify": "off", "secret_key": "x"}, start_polling=False)
    try:
        ready, elapsed = timed(lambda: app.test_client().get("/readyz"))
        assert ready.status_code == 503 and elapsed < BOUND
        assert ready.json == {"status": "unavailable", "problems": [STORE_UNREACHABLE, "the policy is not loaded"]}
        no_driver_text(ready.get_data(as_text=True))
    finally:
        app.extensions["authz"].close()


# -- what a store error means ------------------------------------------------------------------------------
@BOTH
def test_a_constraint_violation_is_a_conflict_not_an_outage(service: Service) -> None:
    with service.admin("test") as admin:
        admin.create_cpas(CPAS, "CPAS", "OCMW", "brussels")
        admin.store.add_user(User(cpas_id=CPAS, user=USER, name="Marie", lang="fr", active=True))
    with pytest.raises(Conflict) as refused, service.admin("test") as admin:
        admin.store.add_user(User(cpas_id=CPAS, user=USER, name="Marie", lang="fr", active=True))
    assert refused.value.status == 409 and refused.value.details == {"retry": True}
    assert "retry" in refused.value.message and "nothing was changed" in refused.value.message


@PG
@pytest.mark.parametrize("state", ["40001", "40P01"])
def test_a_serialization_failure_or_deadlock_is_a_conflict_to_retry(service: Service, state: str) -> None:
    injected = f"DO $$ BEGIN RAISE EXCEPTION 'injected' USING ERRCODE = '{state}'; END $$"
    with pytest.raises(Conflict) as refused, instead_of_ping(service, injected), service.admin("test") as admin:
        admin.store.ping()
    assert "retry" in refused.value.message and refused.value.details == {"retry": True}


@BOTH
def test_a_programming_error_is_a_bug_not_an_outage(service: Service) -> None:
    with instead_of_ping(service, "SELECT * FROM no_such_table"):
        with pytest.raises(SQLAlchemyError):  # re-raised as it is: a 500, logged with its traceback
            service.read(lambda store: store.ping())
        with pytest.raises(SQLAlchemyError), service.admin("test") as admin:
            admin.store.ping()


# -- the setting -------------------------------------------------------------------------------------------
def test_store_timeout_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().store_timeout == 2.0
    monkeypatch.setenv("AUTHZ_STORE_TIMEOUT", "0.7")
    assert load_settings().store_timeout == 0.7
    for bad in (0, -1, "soon"):
        with pytest.raises(ValidationError):
            load_settings({"store_timeout": bad})
