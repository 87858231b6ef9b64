"""Everything the routes show, read through ``Store`` and answered as frozen dataclasses.

The JSON API, the web UI and the use cases (for the answer of a change) read through these functions,
each request in one read transaction (``Service.read``). Nothing here writes or runs SQL of its own:
``store.py`` holds every statement. Descriptions come in both languages (``label(lang)`` picks one);
the web UI's rows also carry the text in the reader's language, as their pages show it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from threading import Lock
from time import monotonic
from typing import Any, Generic, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .catalog import Catalog
from .engine import CpasPolicy, Rules, in_language
from .errors import CpasUnknown, HistoryUnavailable, ProfileNotFound, ReviewUnknown, UserNotFound
from .models import AdminAccount, AuditEntry, Cpas, Profile, User, audit_genesis, audit_hash, iso
from .models import Review as StoredReview
from .models import ReviewItem as StoredReviewItem
from .store import AuditWhere, Store
from .terms import Term

T = TypeVar("T")


def local_zone() -> tzinfo:
    try:
        return ZoneInfo("Europe/Brussels")
    except ZoneInfoNotFoundError:  # no tz database on the machine
        return UTC


@dataclass(frozen=True)
class Page(Generic[T]):
    items: Sequence[T]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    def window(self, size: int = 7) -> list[int]:
        """Page numbers around the current one (the "1, 2, 3, 4" of the manual)."""
        first = max(1, min(self.page - size // 2, self.pages - size + 1))
        return list(range(first, min(self.pages, first + size - 1) + 1))


# -- CPAS ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CpasInfo:
    id: str
    name: str  # in the reader's language
    region: str
    name_fr: str = ""
    name_nl: str = ""
    policy_version: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"cpas": self.id, "name_fr": self.name_fr, "name_nl": self.name_nl, "region": self.region,
                "policy_version": self.policy_version}


def _cpas(store: Store, cpas: str) -> Cpas:
    row = store.get_cpas(cpas)
    if row is None:
        raise CpasUnknown(cpas)
    return row


def _info(row: Cpas, lang: str) -> CpasInfo:
    name = (row.name_nl or row.name_fr) if lang == "nl" else (row.name_fr or row.name_nl)
    return CpasInfo(row.id, name, row.region, row.name_fr, row.name_nl, row.policy_version)


def cpas_info(store: Store, cpas: str, lang: str = "fr") -> CpasInfo:
    """The CPAS (CpasUnknown if there is none)."""
    return _info(_cpas(store, cpas), lang)


def cpas_choices(store: Store, lang: str, allowed: frozenset[str] | None, q: str = "") -> list[CpasInfo]:
    """CPAS the identity may pick (every CPAS for an operator: ``allowed`` None), filtered by ``q``."""
    needle = q.casefold()
    out = []
    for row in store.list_cpas():
        if allowed is not None and row.id not in allowed:
            continue
        info = _info(row, lang)
        if needle and needle not in info.name.casefold() and needle not in row.id:
            continue
        out.append(info)
    return sorted(out, key=lambda c: c.name.casefold())


def policy_version(store: Store, cpas: str) -> int:
    return store.versions_of([cpas]).get(cpas, 0)


def policy_lines(store: Store, cpas: str, at: datetime | None = None) -> list[tuple[str, ...]]:
    """The CPAS's policy as Casbin lines as it holds at ``at`` (None: now; CpasUnknown if there is no such CPAS)."""
    _cpas(store, cpas)
    return store.policy_lines(cpas, at)


# -- profiles --------------------------------------------------------------------------------------------
def profile_description(profile: Profile, lang: str) -> str:
    """In the reader's language, falling back to the other one."""
    return in_language(profile.description_fr, profile.description_nl, lang)


@dataclass(frozen=True)
class ProfileRef:
    """A profile named in someone else's answer (a user's profiles, a deleted profile)."""

    id: int
    description_fr: str | None
    description_nl: str | None
    description: str  # in the reader's language

    def label(self, lang: str) -> str:
        return in_language(self.description_fr, self.description_nl, lang)

    def __str__(self) -> str:
        return self.description


def _ref(profile: Profile, lang: str) -> ProfileRef:
    return ProfileRef(profile.id, profile.description_fr, profile.description_nl, profile_description(profile, lang))


@dataclass(frozen=True)
class ProfileRow:
    """A line of the profiles list."""

    id: int
    description: str  # in the reader's language
    description_fr: str | None
    description_nl: str | None
    builtin: bool
    version: int
    users: int
    functions: int

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "description_fr": self.description_fr, "description_nl": self.description_nl,
                "builtin": self.builtin, "version": self.version, "functions_count": self.functions,
                "users_count": self.users}


@dataclass(frozen=True)
class UserRef:
    user: str
    name: str


@dataclass(frozen=True)
class ProfileDetail:
    """One profile with its functions, inclusions, users and what its functions lack."""

    cpas: str
    id: int
    description: str  # in the reader's language
    description_fr: str | None
    description_nl: str | None
    builtin: bool
    version: int
    functions: tuple[str, ...]  # its own, sorted
    includes: tuple[int, ...]
    users: tuple[UserRef, ...]
    missing_prerequisites: dict[str, tuple[str, ...]]
    policy_version: int

    def label(self, lang: str) -> str:
        return in_language(self.description_fr, self.description_nl, lang)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "description_fr": self.description_fr, "description_nl": self.description_nl,
            "builtin": self.builtin, "version": self.version, "functions": list(self.functions),
            "includes": list(self.includes), "users": [{"user": u.user, "name": u.name} for u in self.users],
            "missing_prerequisites": self.missing_prerequisites, "policy_version": self.policy_version,
        }


def profile_rows(store: Store, cpas: str, lang: str = "fr", *, by_description: bool = True) -> list[ProfileRow]:
    """The CPAS's profiles (CpasUnknown if there is no such CPAS), sorted by description in the reader's
    language, or by id."""
    _cpas(store, cpas)
    functions, users = store.profile_counts(cpas)
    rows = [ProfileRow(p.id, profile_description(p, lang), p.description_fr, p.description_nl, p.builtin, p.version,
                       users.get(p.id, 0), functions.get(p.id, 0)) for p in store.profiles(cpas)]
    return sorted(rows, key=lambda r: (r.description.casefold(), r.id)) if by_description else rows


def _profile(store: Store, cpas: str, profile_id: int) -> Profile:
    profile = store.get_profile(cpas, profile_id)
    if profile is None:
        _cpas(store, cpas)  # an unknown CPAS is said as such
        raise ProfileNotFound(profile_id, cpas)
    return profile


def profile_detail(store: Store, catalog: Catalog, cpas: str, profile_id: int, lang: str = "fr") -> ProfileDetail:
    """ProfileNotFound (or CpasUnknown) if there is no such profile."""
    profile = _profile(store, cpas, profile_id)
    functions = store.profile_functions(cpas, profile_id)
    return ProfileDetail(
        cpas, profile.id, profile_description(profile, lang), profile.description_fr, profile.description_nl,
        profile.builtin, profile.version, tuple(functions), tuple(store.profile_includes(cpas, profile_id)),
        tuple(UserRef(u.user, u.name) for u in store.profile_users(cpas, profile_id)),
        catalog.missing_prerequisites(functions), policy_version(store, cpas),
    )


def profile_ref(store: Store, cpas: str, profile_id: int, lang: str = "fr") -> ProfileRef:
    return _ref(_profile(store, cpas, profile_id), lang)


def profile_closure(store: Store, cpas: str, profile_id: int) -> set[str]:
    """Every function a profile grants: its own and those of the profiles it includes, transitively."""
    graph = store.inclusion_graph(cpas)
    seen: set[int] = set()
    todo = [profile_id]
    codes: set[str] = set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        codes.update(store.profile_functions(cpas, pid))
        todo.extend(graph.get(pid, ()))
    return codes


@dataclass(frozen=True)
class ProfilePrint:
    """The print view of a profile: its users, the profiles it includes and every function it grants."""

    profile: ProfileDetail
    included: tuple[str, ...]  # descriptions in the reader's language
    grants: frozenset[str]  # own and included, transitively


def profile_print(store: Store, catalog: Catalog, cpas: str, profile_id: int, lang: str) -> ProfilePrint:
    detail = profile_detail(store, catalog, cpas, profile_id, lang)
    names = {p.id: profile_description(p, lang) for p in store.profiles(cpas)}
    return ProfilePrint(detail, tuple(names[i] for i in detail.includes if i in names),
                        frozenset(profile_closure(store, cpas, profile_id)))


@dataclass(frozen=True)
class ProfileAccess:
    id: int
    description: str
    functions: frozenset[str]  # what the profile grants (own and included)
    includes: list[str]  # descriptions of the profiles it includes


def profiles_access(store: Store, cpas: str, profile_ids: Sequence[int], lang: str) -> list[ProfileAccess]:
    by_id = {p.id: p for p in store.profiles(cpas)}
    out = []
    for pid in profile_ids:
        profile = by_id.get(pid)
        if profile is None:
            continue
        included = [profile_description(by_id[i], lang) for i in store.profile_includes(cpas, pid) if i in by_id]
        out.append(ProfileAccess(pid, profile_description(profile, lang),
                                 frozenset(profile_closure(store, cpas, pid)), included))
    return sorted(out, key=lambda a: a.description.casefold())


# -- users -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UserDetail:
    cpas: str
    user: str
    name: str
    lang: str
    active: bool
    profiles: tuple[ProfileRef, ...]  # by id
    policy_version: int
    terms: Mapping[int, Term] = field(default_factory=dict)  # profile id -> its term, for bounded assignments

    def as_json(self, lang: str) -> dict[str, Any]:
        return {"user": self.user, "name": self.name, "lang": self.lang, "active": self.active,
                "profiles": [assignment_json(p, lang, self.terms) for p in self.profiles],
                "policy_version": self.policy_version}


def assignment_json(profile: ProfileRef, lang: str, terms: Mapping[int, Term]) -> dict[str, Any]:
    """One assigned profile as the API shows it: with ``valid_from``/``valid_until`` (ISO, null: unbounded)
    when the assignment has a term."""
    term = terms.get(profile.id)
    return {"id": profile.id, "description": profile.label(lang), **(term_json(term) if term is not None else {})}


def term_json(term: Term) -> dict[str, str | None]:
    """A term as the API and the audit trail show it: ``valid_from``/``valid_until`` in ISO (null: unbounded)."""
    return {"valid_from": None if term.valid_from is None else iso(term.valid_from),
            "valid_until": None if term.valid_until is None else iso(term.valid_until)}


@dataclass(frozen=True)
class UserRow:
    """A line of the users list."""

    user: str
    name: str  # the user id when the name is empty
    lang: str
    active: bool
    profiles: tuple[ProfileRef, ...]  # by id
    stored_name: str = ""  # as the store has it, possibly empty
    terms: Mapping[int, Term] = field(default_factory=dict)  # profile id -> its term, for bounded assignments

    @property
    def profile_names(self) -> list[str]:
        return sorted((p.description for p in self.profiles), key=str.casefold)

    def as_json(self, lang: str) -> dict[str, Any]:
        return {"user": self.user, "name": self.stored_name, "lang": self.lang, "active": self.active,
                "profiles": [assignment_json(p, lang, self.terms) for p in self.profiles]}


def _user(store: Store, cpas: str, user: str) -> User:
    row = store.get_user(cpas, user)
    if row is None:
        _cpas(store, cpas)
        raise UserNotFound(user, cpas)
    return row


def user_detail(store: Store, cpas: str, user: str, lang: str = "fr") -> UserDetail:
    """UserNotFound (or CpasUnknown) if there is no such user."""
    row = _user(store, cpas, user)
    profiles = {p.id: p for p in store.profiles(cpas)}
    refs = tuple(_ref(profiles[i], lang) for i in store.user_profiles(cpas, user) if i in profiles)
    return UserDetail(cpas, row.user, row.name, row.lang, row.active, refs, policy_version(store, cpas),
                      store.user_terms(cpas, user))


def users_page(
    store: Store, cpas: str, lang: str, *, active: bool, page: int, per_page: int, q: str = ""
) -> Page[UserRow]:
    """One page of the CPAS's active (or inactive) users, by name, each with its profiles."""
    _cpas(store, cpas)
    rows, total = store.users_page(cpas, active=active, page=page, per_page=per_page, search=q or None)
    profiles = {p.id: p for p in store.profiles(cpas)}
    assigned = store.assignments(cpas, [r.user for r in rows])
    terms = store.terms_of(cpas, [r.user for r in rows])
    items = [UserRow(r.user, r.name or r.user, r.lang, r.active,
                     tuple(_ref(profiles[i], lang) for i in assigned.get(r.user, []) if i in profiles), r.name,
                     terms.get(r.user, {}))
             for r in rows]
    return Page(items, page, per_page, total)


@dataclass(frozen=True)
class EndingAssignment:
    """An active user's assignment whose term ends soon."""

    user: str
    name: str  # the user id when the name is empty
    profile: ProfileRef
    valid_until: datetime

    def as_json(self, lang: str) -> dict[str, Any]:
        return {"user": self.user, "name": self.name, "profile": {"id": self.profile.id,
                "description": self.profile.label(lang)}, "valid_until": iso(self.valid_until)}


def ending_assignments(
    store: Store, cpas: str, now: datetime, days: int = 30, lang: str = "fr"
) -> list[EndingAssignment]:
    """The active users' assignments whose term ends after ``now`` and within ``days`` days, soonest first."""
    _cpas(store, cpas)
    profiles = {p.id: p for p in store.profiles(cpas)}
    names = store.user_names(cpas)
    return [EndingAssignment(user, names.get(user) or user, _ref(profiles[pid], lang), until)
            for user, pid, until in store.ending_assignments(cpas, now, now + timedelta(days=days))
            if pid in profiles]


def profile_terms(store: Store, cpas: str, profile_id: int) -> dict[str, Term]:
    """The terms of a profile's bounded assignments, in force or not: user -> Term (the print view of a
    profile shows them beside its users)."""
    return {user: by_profile[profile_id] for user, by_profile in store.terms_of(cpas).items()
            if profile_id in by_profile}


def policy_at(store: Store, rules: Rules, cpas: str, at: datetime) -> CpasPolicy:
    """The CPAS's policy as it was at ``at``, from the store's history (CpasUnknown if there is no such CPAS,
    HistoryUnavailable if its history does not reach back to ``at``)."""
    _cpas(store, cpas)
    policy = store.cpas_policy_at(cpas, rules, at)
    if policy is None:
        since = store.history_since(cpas)
        raise HistoryUnavailable(cpas, iso(at), iso(since) if since is not None else None)
    return policy


def user_names(store: Store, cpas: str) -> dict[str, str]:
    """Every user of the CPAS, active or not: user id -> name (one query)."""
    return store.user_names(cpas)


def inactive_count(store: Store, cpas: str) -> int:
    return store.users_page(cpas, active=False, page=1, per_page=1)[1]


# -- the audit trail -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AuditFilter:
    """What a reader asks of the trail: days in Brussels time, an actor, an action."""

    date_from: date | None = None
    date_to: date | None = None
    actor: str = ""
    action: str = ""

    def where(self) -> AuditWhere:
        return AuditWhere(
            since=_day_start(self.date_from) if self.date_from else None,
            until=_day_start(self.date_to + timedelta(days=1)) if self.date_to else None,
            actor=self.actor, action=self.action,
        )


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=local_zone()).astimezone(UTC)


@dataclass(frozen=True)
class AuditRow:
    at: datetime  # aware, UTC
    actor: str
    action: str
    target: str
    before: Any = field(default=None, compare=False)
    after: Any = field(default=None, compare=False)


def _audit_row(entry: AuditEntry) -> AuditRow:
    at = entry.at if entry.at.tzinfo is not None else entry.at.replace(tzinfo=UTC)  # SQLite drops the zone
    return AuditRow(at, entry.actor, entry.action, entry.target, entry.before, entry.after)


def audit_page(store: Store, cpas: str, flt: AuditFilter | None = None, *, page: int, per_page: int) -> Page[AuditRow]:
    """Newest first (CpasUnknown if there is no such CPAS)."""
    _cpas(store, cpas)
    rows, total = store.audit_page(cpas, page=page, per_page=per_page, where=(flt or AuditFilter()).where())
    return Page([_audit_row(r) for r in rows], page, per_page, total)


def audit_rows(store: Store, cpas: str, flt: AuditFilter, *, limit: int) -> list[AuditRow]:
    return [_audit_row(r) for r in store.audit_rows(cpas, flt.where(), limit=limit)]


def audit_filter_values(store: Store, cpas: str) -> tuple[list[str], list[str]]:
    """(actions, actors) found in the CPAS's trail, for the filter's choices."""
    return store.audit_actions_and_actors(cpas)


# -- the audit chains -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChainBreak:
    """The first link of a chain that does not hold: row ``id`` of the chain of ``cpas`` (None: the rows
    without a CPAS). ``problem``: "content", its content and ``prev_hash`` do not give its ``row_hash`` (the
    row was changed); "link", its ``prev_hash`` is not the ``row_hash`` of ``previous``, the chain's row
    before it (None: it is the first), so a row was deleted, inserted or moved before it, or it was."""

    id: int
    cpas: str | None
    problem: str
    previous: int | None

    def describe(self) -> str:
        row = f"audit row {self.id} ({f'CPAS {self.cpas}' if self.cpas else 'no CPAS'})"
        if self.problem == "content":
            return f"{row}: its content does not match its row_hash (the row was changed)"
        if self.previous is None:
            return (f"{row}: its prev_hash is not the start of the chain "
                    "(a row before it was deleted, or it was inserted)")
        return (f"{row}: its prev_hash is not the row_hash of row {self.previous}, the previous row of the chain "
                "(a row was deleted, inserted or moved)")


@dataclass(frozen=True)
class ChainCheck:
    """One chain walked: how many rows hold, the last of them (``last_id`` 0: none) and its hash (the
    chain's start when none), where a later check can go on from; the first break if any."""

    cpas: str | None
    rows: int
    last_id: int
    last_hash: str
    broken: ChainBreak | None = None


def check_audit_chain(store: Store, cpas: str | None, since: ChainCheck | None = None) -> ChainCheck:
    """Walk the chain of ``cpas``: rows in id order, each naming its predecessor's hash and hashing to its
    own. From its start; or, given ``since``, an earlier check of it that found it whole, only the rows
    after the last row it checked, if that row is still there with the same hash and the chain still has
    as many rows up to it (so a row deleted or inserted before it is noticed; one changed in place is not:
    only a walk from the start finds that)."""
    rows, previous, expected = 0, None, audit_genesis(cpas)
    if (since is not None and since.cpas == cpas and since.broken is None and since.last_id
            and store.audit_link(since.last_id) == (cpas, since.last_hash)
            and store.audit_chain_length(cpas, upto=since.last_id) == since.rows):
        rows, previous, expected = since.rows, since.last_id, since.last_hash
    for audit_id, at, actor, action, target, before, after, prev_hash, row_hash in store.audit_chain(
            cpas, after=previous or 0):
        problem = ("link" if prev_hash != expected
                   else "content" if audit_hash(cpas, at, actor, action, target, before, after, prev_hash) != row_hash
                   else None)
        if problem:
            return ChainCheck(cpas, rows, previous or 0, expected, ChainBreak(audit_id, cpas, problem, previous))
        rows, previous, expected = rows + 1, audit_id, row_hash
    return ChainCheck(cpas, rows, previous or 0, expected)


def check_audit_chains(store: Store) -> list[ChainCheck]:
    """Every chain, walked whole (the rows without a CPAS first, then by CPAS)."""
    return [check_audit_chain(store, cpas) for cpas in store.audit_chains()]


class ChainWatch:
    """What this process last found of each chain, so that showing a CPAS's Admin-Logs checks only the rows
    added since (``check_audit_chain``'s ``since``: a millisecond or two), and walks the whole chain again
    only when this process has not done so for ``whole_every`` seconds (a third of a second for 10,000
    rows). A row changed in place is so found on the page within ``whole_every``, a row deleted or
    inserted at once; ``verify-audit`` always walks everything."""

    def __init__(self, whole_every: float = 600.0, clock: Callable[[], float] = monotonic) -> None:
        self.whole_every = whole_every
        self._clock = clock
        self._found: dict[str | None, tuple[float, ChainCheck]] = {}
        self._lock = Lock()

    def check(self, store: Store, cpas: str | None) -> ChainCheck:
        now = self._clock()
        with self._lock:
            walked, since = self._found.get(cpas, (now - self.whole_every, None))
        if now - walked >= self.whole_every:
            walked, since = now, None
        found = check_audit_chain(store, cpas, since)
        with self._lock:
            self._found[cpas] = (walked, found)
        return found

    def check_all(self, store: Store) -> list[ChainCheck]:
        return [self.check(store, cpas) for cpas in store.audit_chains()]


# -- admin accounts --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Account:
    """A local admin account as the web UI checks it on each request."""

    username: str
    operator: bool
    cpas: tuple[str, ...]
    lang: str
    active: bool
    locked_until: datetime | None
    session_epoch: str | None
    password_hash: str = field(repr=False)


def account(store: Store, username: str) -> Account | None:
    row: AdminAccount | None = store.admin_by_username(username)
    if row is None:
        return None
    return Account(row.username, row.operator, tuple(row.cpas or ()), row.lang, row.active, row.locked_until,
                   row.session_epoch, row.password_hash)


# -- access reviews --------------------------------------------------------------------------------------
REVIEW_DECISIONS = ("keep", "revoke", "keep_until")


def _iso_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else iso(moment)


def _instant(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


def _utc(moment: datetime | None) -> datetime | None:
    """Aware, in UTC (SQLite hands back naive datetimes, always written in UTC)."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True)
class FrozenAssignment:
    """A profile a user held when the review started, as it was then: its descriptions and its term (aware UTC
    instants, None: unbounded or no term)."""

    profile_id: int
    description_fr: str | None
    description_nl: str | None
    valid_from: datetime | None = None
    valid_until: datetime | None = None

    def label(self, lang: str) -> str:
        return in_language(self.description_fr, self.description_nl, lang)

    def as_json(self) -> dict[str, Any]:
        """Also the stored form (``review_item.assignments``)."""
        return {"profile_id": self.profile_id, "description_fr": self.description_fr,
                "description_nl": self.description_nl, "valid_from": _iso_or_none(self.valid_from),
                "valid_until": _iso_or_none(self.valid_until)}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> FrozenAssignment:
        return cls(int(value["profile_id"]), value.get("description_fr"), value.get("description_nl"),
                   _instant(value.get("valid_from")), _instant(value.get("valid_until")))


@dataclass(frozen=True)
class ReviewSummary:
    id: int
    cpas: str
    due: date
    started_by: str
    started_at: datetime  # aware, UTC
    closed_by: str | None
    closed_at: datetime | None
    total: int  # items (users frozen)
    decided: int

    @property
    def closed(self) -> bool:
        return self.closed_at is not None

    def overdue(self, today: date) -> bool:
        """Still open after its due date (``today``: the Brussels date)."""
        return not self.closed and today > self.due

    @property
    def progress(self) -> int:
        """Percentage of items decided, rounded down (100 for a review without items)."""
        return 100 if self.total == 0 else self.decided * 100 // self.total

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "cpas": self.cpas, "due": self.due.isoformat(), "started_by": self.started_by,
                "started_at": iso(self.started_at), "closed": self.closed, "closed_by": self.closed_by,
                "closed_at": _iso_or_none(self.closed_at), "total": self.total, "decided": self.decided,
                "progress": self.progress}


@dataclass(frozen=True)
class ReviewItem:
    """One user of a review: as frozen when it started, and the reviewer's decision (None: not yet)."""

    user: str
    name: str
    assignments: tuple[FrozenAssignment, ...]  # by profile id
    decision: str | None
    until: date | None
    comment: str | None
    decided_by: str | None
    decided_at: datetime | None

    @property
    def decided(self) -> bool:
        return self.decision is not None

    def as_json(self) -> dict[str, Any]:
        return {"user": self.user, "name": self.name, "assignments": [a.as_json() for a in self.assignments],
                "decision": self.decision, "until": None if self.until is None else self.until.isoformat(),
                "comment": self.comment, "decided_by": self.decided_by, "decided_at": _iso_or_none(self.decided_at)}


@dataclass(frozen=True)
class ReviewDetail:
    summary: ReviewSummary
    items: tuple[ReviewItem, ...]  # by name then user id

    def as_json(self) -> dict[str, Any]:
        return {**self.summary.as_json(), "items": [item.as_json() for item in self.items]}


@dataclass(frozen=True)
class ReviewDecision:
    """The answer of a decision: the review's summary (its progress), the item decided, and the CPAS's policy
    version after it (moved only when the decision changed the user's assignments)."""

    summary: ReviewSummary
    item: ReviewItem
    policy_version: int

    def as_json(self) -> dict[str, Any]:
        return {"review": self.summary.as_json(), "item": self.item.as_json(), "policy_version": self.policy_version}


@dataclass(frozen=True)
class OverviewRow:
    """A CPAS in the reviews overview: when it last closed a review, its open review, whether it is overdue."""

    cpas: str
    name_fr: str
    name_nl: str
    last_closed_at: datetime | None
    open_review: ReviewSummary | None
    overdue: bool

    def name(self, lang: str) -> str:
        return (self.name_nl or self.name_fr) if lang == "nl" else (self.name_fr or self.name_nl)

    def as_json(self) -> dict[str, Any]:
        return {"cpas": self.cpas, "name_fr": self.name_fr, "name_nl": self.name_nl,
                "last_closed_at": _iso_or_none(self.last_closed_at),
                "open_review": None if self.open_review is None else self.open_review.as_json(),
                "overdue": self.overdue}


def _summary(row: StoredReview, counts: tuple[int, int]) -> ReviewSummary:
    started_at = _utc(row.started_at)
    assert started_at is not None
    return ReviewSummary(row.id, row.cpas_id, row.due, row.started_by, started_at, row.closed_by,
                         _utc(row.closed_at), counts[0], counts[1])


def review_item_of(row: StoredReviewItem) -> ReviewItem:
    frozen = tuple(FrozenAssignment.from_json(a) for a in row.assignments or ())
    return ReviewItem(row.user, row.name, frozen, row.decision, row.until, row.comment, row.decided_by,
                      _utc(row.decided_at))


def _review(store: Store, cpas: str, review_id: int) -> StoredReview:
    row = store.get_review(cpas, review_id)
    if row is None:
        _cpas(store, cpas)  # an unknown CPAS is said as such
        raise ReviewUnknown(review_id, cpas)
    return row


def reviews(store: Store, cpas: str) -> list[ReviewSummary]:
    """The CPAS's reviews, newest first (CpasUnknown if there is no such CPAS)."""
    _cpas(store, cpas)
    rows = store.reviews(cpas)
    counts = store.review_counts(r.id for r in rows)
    return [_summary(r, counts.get(r.id, (0, 0))) for r in rows]


def review_summary(store: Store, cpas: str, review_id: int) -> ReviewSummary:
    """ReviewUnknown (or CpasUnknown) if the CPAS has no such review."""
    row = _review(store, cpas, review_id)
    return _summary(row, store.review_counts([row.id]).get(row.id, (0, 0)))


def review_detail(store: Store, cpas: str, review_id: int) -> ReviewDetail:
    """The review with its items, by name then user id (ReviewUnknown, or CpasUnknown)."""
    row = _review(store, cpas, review_id)
    items = tuple(review_item_of(i) for i in store.review_items(row.id))
    return ReviewDetail(_summary(row, (len(items), sum(1 for i in items if i.decided))), items)


def reviews_overview(store: Store, cpas_ids: Collection[str] | None, today: date,
                     interval_days: int) -> list[OverviewRow]:
    """Every CPAS of ``cpas_ids`` (None: every CPAS), by id: its last closed review, its open review, and
    whether it is overdue: its open review is past its due date, or no review was closed within
    ``interval_days`` days before ``today`` (counted from the CPAS's creation when it never closed one)."""
    wanted = None if cpas_ids is None else set(cpas_ids)
    rows = [c for c in store.list_cpas() if wanted is None or c.id in wanted]
    ids = [c.id for c in rows]
    closed = store.last_closed_reviews(ids)
    opened = {r.cpas_id: r for r in store.open_reviews(ids)}
    counts = store.review_counts(r.id for r in opened.values())
    out = []
    for row in rows:
        last = closed.get(row.id)
        found = opened.get(row.id)
        summary = None if found is None else _summary(found, counts.get(found.id, (0, 0)))
        since = last if last is not None else _utc(row.created_at)
        lapsed = since is None or since.astimezone(local_zone()).date() < today - timedelta(days=interval_days)
        out.append(OverviewRow(row.id, row.name_fr, row.name_nl, last, summary,
                               lapsed or (summary is not None and summary.overdue(today))))
    return out
