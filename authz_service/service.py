"""The running service: settings, database, catalog and decision engine, and the two ways in:
``write()`` for a change (one transaction, then the touched CPAS is rebuilt) and ``decide()`` for a
decision (no I/O). A poller thread keeps the engine in step with changes made by other processes.
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Concatenate, Generic, ParamSpec, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from . import reads
from .admin import Admin
from .catalog import Catalog, load_catalog
from .config import Settings
from .db import Database, failure_kind
from .engine import CpasPolicy, Engine, EngineUnavailable, Snapshot, Touched, check_model
from .errors import (
    STORE_SILENT,
    STORE_UNREACHABLE,
    Conflict,
    CpasUnknown,
    ServiceError,
    Unavailable,
    VersionNotReached,
)
from .freshness import EVERYTHING, slot_of
from .impact import Impact, compare
from .logs import log_change
from .notify import make_notifier
from .security import Principal, authenticate_key
from .store import Store

if TYPE_CHECKING:
    from .metrics import Metrics

log = logging.getLogger(__name__)
T = TypeVar("T")
P = ParamSpec("P")


@dataclass(frozen=True)
class Changed(Generic[T]):
    """A use case's answer, and the CPAS's policy version once it committed (None: nothing changed):
    the consistency token a caller passes on as ``min_policy_version``."""

    value: T
    policy_version: int | None


@dataclass(frozen=True)
class Previewed(Generic[T]):
    """A use case run and rolled back (``Service.preview``): its answer, the CPAS's policy version the change
    would produce (the current one when it would change nothing) and what it would do to the CPAS's users."""

    value: T
    policy_version: int | None
    impact: Impact


EXPIRY_ACTOR = "system:expiry"  # the author of an ended term's audit entry


class Service:
    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.monotonic,
                 metrics: Metrics | None = None, wall: Callable[[], float] = time.time) -> None:
        self.settings = settings
        if metrics is None:
            from .metrics import Metrics  # here: see metrics.py on when prometheus-client may be imported

            metrics = Metrics()
        self.metrics = metrics
        check_model(str(settings.model_path))
        self.catalog: Catalog = load_catalog(settings.policies_dir)
        self.db = Database(settings.database_url, board=settings.version_board or None,
                           timeout=settings.store_timeout)
        self.notifier = make_notifier(settings.notify, settings.database_url, settings.redis_url)
        staleness = settings.max_staleness
        if settings.poll_interval <= 0 and self.notifier.kind == "off":
            # no poller and no notifications: one host only, where the version board keeps every process
            # current; nothing can tell the engine it went stale, so it never calls itself stale
            staleness = math.inf
        self.engine = Engine(max_staleness=staleness, clock=clock, wall=wall)
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self.last_error: str | None = None
        self._keys = KeyCache()
        self._store_failed: tuple[float, Unavailable] | None = None  # when a key lookup last found it down
        self._absent: dict[str, int] = {}  # CPAS the store did not have, with the board's count then
        # CPAS whose store version fell short of a caller's token: (when, the version it had)
        self._not_reached: dict[str, tuple[float, int]] = {}

    def authenticate(self, header: str | None) -> Principal:
        token = hashlib.sha256((header or "").encode()).hexdigest()  # never keep a key's text around
        cached = self._keys.get(token)
        if isinstance(cached, Principal):
            return cached
        failed = self._store_failed
        if failed is not None and self.engine.clock() - failed[0] < 1.0:
            raise failed[1]  # the store just failed to answer: do not wait for it twice in one request
        try:
            found = self.read(lambda store: authenticate_key(store, header))
        except Unavailable as exc:
            self._store_failed = (self.engine.clock(), exc)
            raise
        self._store_failed = None
        self._keys.put(token, found)
        return found

    def now(self) -> datetime:
        """The instant the use cases keep (an access review's dates): the engine's wall clock, which tests inject
        (``engine.wall``), so that a review's "today" and the decisions on time-bound assignments agree."""
        return datetime.fromtimestamp(self.engine.wall(), UTC)

    # -- writes --------------------------------------------------------------------------------------
    def change(self, actor: str, use_case: Callable[Concatenate[Admin, P], T], *args: P.args,
               **kwargs: P.kwargs) -> Changed[T]:
        """Run one use case of ``Admin`` (``Admin.update_profile``, ...) in one transaction, then bring
        the engine and the other workers and instances up to date: the one way a route changes anything."""
        admin: Admin | None = None
        try:
            with self.admin(actor) as admin:
                value = use_case(admin, *args, **kwargs)
        except Exception as exc:
            log_change(actor, use_case.__name__, admin, exc)  # one line per change, on authz.changes
            raise
        log_change(actor, use_case.__name__, admin)
        return Changed(value, admin.policy_version)

    def preview(self, actor: str, use_case: Callable[Concatenate[Admin, P], T], *args: P.args,
                **kwargs: P.kwargs) -> Previewed[T]:
        """A dry run of ``change``: the same use case of a CPAS (its first argument), in the same write
        transaction with the same locks, so that it answers or refuses exactly as the change would; its
        impact on the CPAS's users (``impact.compare`` of the CPAS's policy before it and after it, both as
        of that transaction); then everything rolled back: nothing written or audited, no new version,
        nothing announced or rebuilt, no line on authz.changes."""
        cpas = str(args[0])
        try:
            with self.db.transaction(commit=False) as session:
                store = Store(session)
                store.lock_cpas(cpas)  # the use case's own lock, taken first: from here the CPAS is this one's
                rules = store.rules()
                # the engine's policy when it is at the CPAS's version (what /enforce decides with; each change
                # makes a new version), else the CPAS as this transaction reads it
                live = self.engine.current()
                before = live.policies.get(cpas) if live is not None and live.rules == rules else None
                now = self.engine.wall()
                if before is None or before.version != store.versions_of([cpas]).get(cpas):
                    before = store.cpas_policy(cpas, rules, now)
                else:
                    before = before.at_instant(now)
                admin = Admin(store, self.catalog, actor, self.settings.max_inclusion_depth, clock=self.now)
                value = use_case(admin, *args, **kwargs)
                after = before
                if admin.changed:  # derived from before by what the use case wrote, as refresh does; else in full
                    touched = store.touched(cpas)
                    derived = (store.cpas_policy_after(before, touched, now)
                               if before is not None and touched is not None else None)
                    after = derived if derived is not None else store.cpas_policy(cpas, rules, now)
                names = store.user_names(cpas)
        except SQLAlchemyError as exc:
            answer = store_failure(exc, change=True)
            if answer is None:
                raise
            raise answer from exc
        version = admin.policy_version if admin.policy_version is not None else after.version if after else None
        return Previewed(value, version, compare(before, after, names))

    @contextmanager
    def admin(self, actor: str) -> Iterator[Admin]:
        """One transaction around use cases (``change`` for one; the CLI and tests for several); after
        commit, the CPAS they changed is rebuilt here and announced to the other instances."""
        try:
            with self.db.transaction() as session:
                store = Store(session)
                admin = Admin(store, self.catalog, actor, self.settings.max_inclusion_depth, clock=self.now)
                yield admin
                for cpas in admin.changed:
                    self.notifier.in_transaction(store, cpas)
                touched = {cpas: store.touched(cpas) for cpas in admin.changed}  # what each rebuild must read
        except SQLAlchemyError as exc:
            answer = store_failure(exc, change=True)
            if answer is None:
                raise
            raise answer from exc
        # committed, and announced on this host's version board: the other workers catch up on their next
        # decision; this one rebuilds now, the other instances hear of it (or poll, or get the token)
        for cpas in admin.changed:
            self.refresh(cpas, touched=touched[cpas])
            self.notifier.after_commit(cpas)

    def session_secret(self) -> str:
        """AUTHZ_SECRET_KEY, or one random key kept in the database so that every worker and instance
        signs sessions alike. Never a per-process key (it would sign users out between workers):
        Unavailable while the database cannot be read; the web UI asks again on its next request."""
        if self.settings.secret_key:
            return self.settings.secret_key
        problem = ""
        for _ in range(2):  # two workers starting together: the loser of the insert reads the winner's
            try:
                with self.db.transaction() as session:
                    return Store(session).shared_secret("session_key", lambda: secrets.token_hex(32))
            except SQLAlchemyError as exc:
                problem = str(exc).splitlines()[0]
        log.warning("could not read the shared session key: %s", problem)
        raise Unavailable("the session key cannot be read from the policy store")

    def read(self, fn: Callable[[Store], T]) -> T:
        try:
            with self.db.reading() as session:
                return fn(Store(session))
        except SQLAlchemyError as exc:
            answer = store_failure(exc, change=False)
            if answer is None:
                raise
            raise answer from exc

    # -- decisions -----------------------------------------------------------------------------------
    def policy(self, cpas: str, minimum: int = 0) -> CpasPolicy:
        """The CPAS's policy, current as ``fresh_policy`` makes it; UnknownCpas if there is none."""
        policy = self.fresh_policy(cpas, minimum)
        if policy is None:
            raise CpasUnknown(cpas)
        return policy

    def policy_at(self, cpas: str, at: datetime | None, minimum: int = 0) -> CpasPolicy:
        """The CPAS's policy at ``at`` (None: now, as ``policy``), rebuilt from the store's history with the
        engine's rules; CpasUnknown, or HistoryUnavailable for an instant the history does not reach."""
        if at is None:
            return self.policy(cpas, minimum)
        rules = self.snapshot().rules  # fail closed as a decision does
        return self.read(lambda store: reads.policy_at(store, rules, cpas, at))

    def fresh_policy(self, cpas: str, minimum: int = 0) -> CpasPolicy | None:
        """The policy to decide with for ``cpas`` (None: no such CPAS). It holds every change announced
        on this host's version board (read-your-writes across workers) and is at least at version
        ``minimum`` (the caller's consistency token); otherwise the CPAS is rebuilt from the store
        first, waiting at most ``consistency_wait`` seconds, else Unavailable. Fails closed when the
        engine is not loaded or stale (Unavailable)."""
        snap = self.snapshot()
        board = self.db.board
        if board.read(EVERYTHING) != snap.fresh_as_of:
            self._catch_up_everything()
            snap = self.snapshot()
        policy = snap.policies.get(cpas)
        if policy is not None:
            if board.read(policy.slot) == policy.fresh_as_of and policy.version >= minimum:
                # a time-bound assignment began or ended since the policy was built: decide as of now (the
                # clock is read only for a CPAS that has terms)
                upcoming = policy.next_change
                return policy if upcoming == math.inf or upcoming > self.engine.wall() else self._advance(policy)
        elif self._absent.get(cpas) == board.read(slot_of(cpas)):
            return None  # looked up in the store since the last change announced in its slot
        return self._catch_up(cpas, minimum)

    def _advance(self, policy: CpasPolicy) -> CpasPolicy:
        """``policy`` as it decides now (``CpasPolicy.at_instant``), installed in place of it unless another
        thread installed something else for its CPAS meanwhile (then that one decides from the next call)."""
        advanced = policy.at_instant(self.engine.wall())
        with self.engine.build_lock:
            current = self.engine.current()
            if current is not None and current.policies.get(policy.cpas) is policy:
                policies = dict(current.policies)
                policies[policy.cpas] = advanced
                self.engine.install(Snapshot(rules=current.rules, catalog_digest=current.catalog_digest,
                                             policies=policies, fresh_as_of=current.fresh_as_of), synced=False)
        return advanced

    def snapshot(self) -> Snapshot:
        try:
            return self.engine.snapshot
        except EngineUnavailable as exc:
            raise Unavailable(str(exc)) from exc

    def _catch_up(self, cpas: str, minimum: int) -> CpasPolicy | None:
        behind = self._not_reached.get(cpas)
        if behind is not None and minimum > behind[1] and self.engine.clock() - behind[0] < 1.0:
            # the store was asked for less than a second ago and did not have it: say so at once (a
            # caller repeating an unreachable token must not hold a worker for the whole wait each time)
            raise VersionNotReached(cpas, minimum, behind[1])
        deadline = time.monotonic() + self.settings.consistency_wait
        while True:
            if not self.refresh(cpas, minimum, force=False):
                raise Unavailable("the policy store is unavailable")
            policy = self.snapshot().policies.get(cpas)
            if policy is None or policy.version >= minimum:
                return policy
            if time.monotonic() >= deadline:
                self._not_reached[cpas] = (self.engine.clock(), policy.version)
                raise VersionNotReached(cpas, minimum, policy.version)
            time.sleep(0.02)

    def _catch_up_everything(self) -> None:
        if not self.sync():
            raise Unavailable("the policy store is unavailable")

    # -- keeping the engine in step --------------------------------------------------------------------
    def sync(self) -> bool:
        """Rebuild the CPAS whose version changed (and everything if the catalog rows changed).
        Returns whether the store answered."""
        with self.engine.build_lock:
            board = bytes(self.db.board.snapshot())  # every counter, read before any row is
            marks = memoryview(board).cast("Q")
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
                            built = store.cpas_policy(cpas, rules, self.engine.wall())
                            if built is not None:
                                policies[cpas] = built
            except SQLAlchemyError as exc:
                self.last_error = "the policy store does not answer"
                log.warning("policy sync failed: %s", str(exc).splitlines()[0])
                return False
            if state is None:
                self.last_error = "the catalog is not loaded: run `authz-service init-db`"
                return False
            for policy in policies.values():  # what the store said holds every change counted before
                policy.fresh_as_of = max(policy.fresh_as_of, marks[policy.slot])
            self._absent.clear()
            self.engine.install(Snapshot(rules=rules, catalog_digest=digest, policies=policies,
                                         fresh_as_of=marks[EVERYTHING]))
            self.last_error = None
            return True

    def refresh(self, cpas: str, minimum: int = 0, *, force: bool = True, touched: Touched | None = None) -> bool:
        """Rebuild one CPAS from the store now (after a change here, a notification from elsewhere, or a
        decision that found it behind). Returns whether the store answered. ``force=False`` (decisions):
        skip the store when another thread rebuilt the CPAS while this one waited, as this one needs.
        ``touched`` (a change made here): what that change wrote; when the live policy is the one it
        started from and no other change came in between, only those rows are read and the new policy is
        derived from the live one (``Store.cpas_policy_after``); otherwise, and without it, in full."""
        if self.engine.current() is None:  # nothing loaded yet: load everything
            return self.sync()
        mark = self.db.board.read(slot_of(cpas))  # before the rows: the rebuild holds every change counted
        with self.engine.build_lock:
            current = self.engine.current()
            assert current is not None  # only sync() installs, and never uninstalls
            known = current.policies.get(cpas)
            if not force and (
                (known is not None and known.fresh_as_of == mark and known.version >= minimum)
                or (known is None and minimum == 0 and self._absent.get(cpas) == mark)
            ):
                return True
            try:
                with self.db.reading() as session:
                    store = Store(session)
                    built = None
                    now = self.engine.wall()
                    if touched is not None and known is not None and known.rules is current.rules:
                        built = store.cpas_policy_after(known, touched, now)
                    if built is None:
                        built = store.cpas_policy(cpas, current.rules, now)
            except SQLAlchemyError as exc:
                log.warning("refresh of %s failed: %s", cpas, str(exc).splitlines()[0])
                return False
            policies = dict(current.policies)
            if built is None:
                policies.pop(cpas, None)
                if len(self._absent) > 10_000:
                    self._absent.clear()
                self._absent[cpas] = mark
            else:
                built.fresh_as_of = mark
                policies[cpas] = built
                self._absent.pop(cpas, None)
            self.engine.install(
                Snapshot(rules=current.rules, catalog_digest=current.catalog_digest, policies=policies,
                         fresh_as_of=current.fresh_as_of),
                synced=False,
            )
            return True

    def start_polling(self) -> None:
        """The poller (safety net) and the change listener; call once per process, after fork."""
        if self._poller is not None:
            return
        # on (re)subscribing, a full sync catches up on what was said while nobody listened; with the poller
        # off ("notifications only") a live subscription is what keeps the engine trusted
        polling = self.settings.poll_interval > 0
        self.notifier.listen(self.refresh, on_connected=self.sync,
                             on_alive=None if polling else self.engine.mark_synced)
        if not polling:
            return
        self._poller = threading.Thread(target=self._poll, name="authz-policy-poller", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._stop.wait(self.settings.poll_interval):
            try:
                if self.sync():
                    self.record_expiries()
            except ServiceError as exc:  # the store failed between the two: the next poll tries again
                log.warning("recording ended assignments failed: %s", exc.message)
            except Exception:  # never let the poller die
                log.exception("policy poller")
                time.sleep(self.settings.poll_interval)

    def record_expiries(self) -> int:
        """Record the assignment terms that ended (``Admin.record_expiries``), as ``system:expiry``. Every
        poller does it; each expiry is written once. A read first: the write transaction (on SQLite, the
        database's write lock) is taken only when something ended. Returns how many this call recorded."""
        now = self.now()
        if not self.read(lambda store: store.expiries_due(now, limit=1)):
            return 0
        with self.admin(EXPIRY_ACTOR) as admin:
            return admin.record_expiries()

    def close(self) -> None:
        self._stop.set()
        self.notifier.close()
        if self._poller is not None:
            self._poller.join(timeout=5)
        self.db.dispose()


def store_failure(exc: SQLAlchemyError, *, change: bool) -> ServiceError | None:
    """The answer for a store error: 409 when another change got in the way (a constraint, a
    serialization failure, a deadlock: nothing was changed and a retry may succeed), 503 only when the
    store does not answer in time or cannot be reached; None for anything else (a bug: the caller
    re-raises it, 500). The driver's text goes to the log, never into the answer."""
    kind = failure_kind(exc)
    detail = (str(exc).splitlines() or [type(exc).__name__])[0]
    nothing = "; nothing was changed" if change else ""
    if kind == "conflict":
        log.info("a %s collided with a concurrent change: %s", "change" if change else "read", detail)
        return Conflict(f"this request collided with a change made at the same time{nothing}: reload and retry",
                        {"retry": True})
    if kind == "retry":
        log.info("a %s was interrupted by a concurrent change: %s", "change" if change else "read", detail)
        return Conflict(f"this request was interrupted by a change made at the same time{nothing}: retry it",
                        {"retry": True})
    if kind == "outcome_unknown":
        log.warning("the store stopped answering during a commit: %s", detail)
        return Unavailable("the policy store stopped answering while saving this change: it may or may not "
                           "have been saved; reload to check before retrying")
    if kind in ("timeout", "unreachable"):
        log.warning("policy store %s: %s", "timeout" if kind == "timeout" else "unreachable", detail)
        return Unavailable((STORE_SILENT if kind == "timeout" else STORE_UNREACHABLE) + nothing)
    log.exception("unexpected store error")
    return None


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
