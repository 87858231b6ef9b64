"""What the pages show, read through ``Store`` in one read transaction each: plain dataclasses, in the
reader's language. The audit-trail filters (date, actor, action) are the only query of its own; it
reads the append-only ``audit`` table the same way ``Store.audit_page`` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any, Generic, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Select, func, select

from ..admin import profile_description, require_profile, users_with_profiles
from ..errors import CpasUnknown
from ..models import AuditEntry, Cpas, Profile
from ..store import Store

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


@dataclass(frozen=True)
class CpasInfo:
    id: str
    name: str
    region: str


@dataclass(frozen=True)
class ProfileRow:
    id: int
    description: str
    description_fr: str | None
    description_nl: str | None
    builtin: bool
    version: int
    users: int
    functions: int


@dataclass(frozen=True)
class UserRow:
    user: str
    name: str
    active: bool
    profiles: list[str]


def cpas_name(row: Cpas, lang: str) -> str:
    return (row.name_nl or row.name_fr) if lang == "nl" else (row.name_fr or row.name_nl)


def cpas_info(store: Store, cpas: str, lang: str) -> CpasInfo:
    row = store.get_cpas(cpas)
    if row is None:
        raise CpasUnknown(cpas)
    return CpasInfo(row.id, cpas_name(row, lang), row.region)


def cpas_choices(store: Store, lang: str, allowed: frozenset[str] | None, q: str = "") -> list[CpasInfo]:
    """CPAS the identity may pick (every CPAS for an operator: ``allowed`` None), filtered by ``q``."""
    needle = q.casefold()
    out = []
    for row in store.list_cpas():
        if allowed is not None and row.id not in allowed:
            continue
        info = CpasInfo(row.id, cpas_name(row, lang), row.region)
        if needle and needle not in info.name.casefold() and needle not in row.id:
            continue
        out.append(info)
    return sorted(out, key=lambda c: c.name.casefold())


def _profile_row(p: Profile, lang: str, users: int = 0, functions: int = 0) -> ProfileRow:
    return ProfileRow(p.id, profile_description(p, lang), p.description_fr, p.description_nl, p.builtin, p.version,
                      users, functions)


def profile_rows(store: Store, cpas: str, lang: str) -> list[ProfileRow]:
    """The CPAS's profiles in the reader's language, sorted by description."""
    functions, users = store.profile_counts(cpas)
    rows = [_profile_row(p, lang, users.get(p.id, 0), functions.get(p.id, 0)) for p in store.profiles(cpas)]
    return sorted(rows, key=lambda r: (r.description.casefold(), r.id))


def profile_row(store: Store, cpas: str, profile_id: int, lang: str) -> ProfileRow:
    return _profile_row(require_profile(store, cpas, profile_id), lang)


def users_page(
    store: Store, cpas: str, lang: str, *, active: bool, page: int, per_page: int, q: str = ""
) -> Page[UserRow]:
    rows, total = users_with_profiles(store, cpas, lang, active=active, page=page, per_page=per_page,
                                      search=q or None)
    items = [UserRow(r.user, r.name or r.user, r.active, sorted((d for _, d in profiles), key=str.casefold))
             for r, profiles in rows]
    return Page(items, page, per_page, total)


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


# -- audit trail -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AuditFilter:
    date_from: date | None = None
    date_to: date | None = None
    actor: str = ""
    action: str = ""


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=local_zone()).astimezone(UTC)


def _audit_select(cpas: str, flt: AuditFilter) -> Select[Any]:
    query = select(AuditEntry).where(AuditEntry.cpas_id == cpas)
    if flt.date_from:
        query = query.where(AuditEntry.at >= _day_start(flt.date_from))
    if flt.date_to:
        query = query.where(AuditEntry.at < _day_start(flt.date_to + timedelta(days=1)))
    if flt.actor:
        escaped = flt.actor.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(func.lower(AuditEntry.actor).like(f"%{escaped}%", escape="\\"))
    if flt.action:
        query = query.where(AuditEntry.action == flt.action)
    return query


def audit_page(store: Store, cpas: str, flt: AuditFilter, *, page: int, per_page: int) -> Page[AuditEntry]:
    query = _audit_select(cpas, flt)
    total = int(store.s.scalar(select(func.count()).select_from(query.subquery())) or 0)
    items = store.s.scalars(query.order_by(AuditEntry.id.desc()).offset((page - 1) * per_page).limit(per_page)).all()
    return Page(list(items), page, per_page, total)


def audit_rows(store: Store, cpas: str, flt: AuditFilter, *, limit: int) -> list[AuditEntry]:
    return list(store.s.scalars(_audit_select(cpas, flt).order_by(AuditEntry.id.desc()).limit(limit)).all())


def audit_filter_values(store: Store, cpas: str) -> tuple[list[str], list[str]]:
    """(actions, actors) found in the CPAS's trail, for the filter's choices."""
    actions = store.s.scalars(
        select(AuditEntry.action).where(AuditEntry.cpas_id == cpas).distinct().order_by(AuditEntry.action)
    ).all()
    actors = store.s.scalars(
        select(AuditEntry.actor).where(AuditEntry.cpas_id == cpas).distinct().order_by(AuditEntry.actor).limit(500)
    ).all()
    return list(actions), list(actors)
