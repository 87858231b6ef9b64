"""The running service: settings, database, catalog and decision engine, and the two ways in:
``write()`` for a change (one transaction, then the touched CPAS is rebuilt) and ``decide()`` for a
decision (no I/O). A poller thread keeps the engine in step with changes made by other processes.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy.exc import SQLAlchemyError

from .admin import Admin
from .catalog import Catalog, load_catalog
from .config import Settings
from .db import Database
from .engine import CpasPolicy, Engine, EngineUnavailable, Snapshot, check_model
from .errors import Unavailable, UnknownCpas
from .notify import make_notifier
from .security import Principal, authenticate_key
from .store import Store

log = logging.getLogger(__name__)
T = TypeVar("T")


class Service:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        check_model(str(settings.model_path))
        self.catalog: Catalog = load_catalog(settings.policies_dir)
        self.db = Database(settings.database_url)
        self.engine = Engine(max_staleness=settings.max_staleness)
        self.notifier = make_notifier(settings.notify, settings.database_url, settings.redis_url)
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self.last_error: str | None = None
        self._keys = KeyCache()

    def authenticate(self, header: str | None) -> Principal:
        token = hashlib.sha256((header or "").encode()).hexdigest()  # never keep a key's text around
        cached = self._keys.get(token)
        if isinstance(cached, Principal):
            return cached
        found = self.read(lambda store: authenticate_key(store, header))
        self._keys.put(token, found)
        return found

    # -- writes --------------------------------------------------------------------------------------
    @contextmanager
    def admin(self, actor: str, cpas: str | None = None) -> Iterator[Admin]:
        """One transaction around a use case; after commit, rebuild the CPAS it touched."""
        try:
            with self.db.transaction() as session:
                yield Admin(Store(session), self.catalog, actor, self.settings.max_inclusion_depth)
                if cpas is not None:
                    self.notifier.in_transaction(session, cpas)
        except SQLAlchemyError as exc:
            log.exception("store error during a change")
            raise Unavailable("the policy store is unavailable; nothing was changed") from exc
        if cpas is not None:
            self.refresh(cpas)
            self.notifier.after_commit(cpas)

    def session_secret(self) -> str:
        """AUTHZ_SECRET_KEY, or one random key kept in the database so that every worker and instance
        signs sessions alike (a per-process key would log users out between workers)."""
        if self.settings.secret_key:
            return self.settings.secret_key
        for _ in range(3):  # two workers starting together: the loser of the insert reads the winner's
            try:
                with self.db.transaction() as session:
                    return Store(session).shared_secret("session_key", lambda: secrets.token_hex(32))
            except SQLAlchemyError as exc:
                log.warning("could not read the shared session key: %s", str(exc).splitlines()[0])
        log.warning("using a per-process session key: sessions will not survive a change of worker")
        return secrets.token_hex(32)

    def read(self, fn: Callable[[Store], T]) -> T:
        try:
            with self.db.reading() as session:
                return fn(Store(session))
        except SQLAlchemyError as exc:
            log.exception("store error during a read")
            raise Unavailable("the policy store is unavailable") from exc

    # -- decisions -----------------------------------------------------------------------------------
    def policy(self, cpas: str) -> CpasPolicy:
        try:
            snapshot = self.engine.snapshot
        except EngineUnavailable as exc:
            raise Unavailable(str(exc)) from exc
        policy = snapshot.policies.get(cpas)
        if policy is None:
            raise UnknownCpas(f"CPAS {cpas} is not known to the service")
        return policy

    def snapshot(self) -> Snapshot:
        try:
            return self.engine.snapshot
        except EngineUnavailable as exc:
            raise Unavailable(str(exc)) from exc

    # -- keeping the engine in step --------------------------------------------------------------------
    def sync(self) -> bool:
        """Rebuild the CPAS whose version changed (and everything if the catalog rows changed).
        Returns whether the store answered."""
        with self.engine.build_lock:
            try:
                with self.db.reading() as session:
                    store = Store(session)
                    current = self.engine.current()
                    state = store.catalog_state()
                    digest = state.digest if state else ""
                    if current is None or current.catalog_digest != digest:
                        rules = store.rules()
                        old: dict[str, CpasPolicy] = {}
                    else:
                        rules = current.rules
                        old = dict(current.policies)
                    versions = store.versions()
                    policies: dict[str, CpasPolicy] = {}
                    for cpas, version in versions.items():
                        kept = old.get(cpas)
                        if kept is not None and kept.version == version:
                            policies[cpas] = kept
                        else:
                            built = store.cpas_policy(cpas, rules)
                            if built is not None:
                                policies[cpas] = built
            except SQLAlchemyError as exc:
                self.last_error = str(exc).splitlines()[0]
                log.warning("policy sync failed: %s", self.last_error)
                return False
            if state is None:
                self.last_error = "the catalog is not loaded: run `authz-service init-db`"
                return False
            self.engine.install(Snapshot(rules=rules, catalog_digest=digest, policies=policies))
            self.last_error = None
            return True

    def refresh(self, cpas: str) -> None:
        """Rebuild one CPAS now (after a change here, or a notification from elsewhere)."""
        if self.engine.current() is None:  # nothing loaded yet: load everything
            self.sync()
            return
        with self.engine.build_lock:
            current = self.engine.current()
            assert current is not None  # only sync() installs, and never uninstalls
            try:
                with self.db.reading() as session:
                    built = Store(session).cpas_policy(cpas, current.rules)
            except SQLAlchemyError:
                log.warning("refresh of %s failed; the poller will retry", cpas)
                return
            policies = dict(current.policies)
            if built is None:
                policies.pop(cpas, None)
            else:
                policies[cpas] = built
            self.engine.install(Snapshot(rules=current.rules, catalog_digest=current.catalog_digest, policies=policies))

    def start_polling(self) -> None:
        """The poller (safety net) and the change listener; call once per process, after fork."""
        if self._poller is not None:
            return
        self.notifier.listen(self.refresh)
        if self.settings.poll_interval <= 0:
            return
        self._poller = threading.Thread(target=self._poll, name="authz-policy-poller", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._stop.wait(self.settings.poll_interval):
            try:
                self.sync()
            except Exception:  # never let the poller die
                log.exception("policy poller")
                time.sleep(self.settings.poll_interval)

    def close(self) -> None:
        self._stop.set()
        self.notifier.close()
        if self._poller is not None:
            self._poller.join(timeout=5)
        self.db.dispose()


class KeyCache:
    """Authenticated API keys for a few seconds, so that a decision costs no database round trip.
    A revoked key stops working within ``ttl`` seconds."""

    def __init__(self, ttl: float = 10.0, size: int = 1024) -> None:
        self.ttl = ttl
        self.size = size
        self._items: dict[str, tuple[float, object]] = {}

    def get(self, token: str) -> object | None:
        item = self._items.get(token)
        if item is None or item[0] < time.monotonic():
            return None
        return item[1]

    def put(self, token: str, value: object) -> None:
        if len(self._items) >= self.size:
            self._items.clear()
        self._items[token] = (time.monotonic() + self.ttl, value)
