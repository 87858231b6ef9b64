"""Use cases shared by the JSON admin API, the CLI and (later) the web UI: every administrative change.

Each function works inside the caller's transaction (``Store`` wraps its session), checks everything
before writing, bumps the CPAS's policy version and writes one audit row with before/after. It never
commits: the caller's transaction commits everything at once or nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .catalog import REGIONS, Catalog
from .engine import in_language
from .errors import (
    BuiltinUnchangeable,
    CoveredActions,
    CpasExists,
    CpasUnknown,
    DescriptionMissing,
    DuplicateDescription,
    FunctionsUnknown,
    InclusionCycle,
    InclusionTooDeep,
    ProfileAssigned,
    ProfileIncluded,
    ProfileMissing,
    ProfileNotFound,
    RegionUnknown,
    StaleVersion,
    UserInactive,
    UserNotFound,
)
from .models import Cpas, Profile, User, utcnow
from .store import Store

BUILTIN_FR = "Tous les accès"
BUILTIN_NL = "Alle toegangen"


def description_key(text: str | None) -> str | None:
    """What must be unique among a CPAS's descriptions (key_fr/key_nl and their unique constraints):
    NFKC + case folding + invisible characters dropped + white space collapsed (inputs.comparison_key),
    so that "Full", "FULL ", "Ｆｕｌｌ" and "Full" + U+200B are one description. None for no text."""
    from .inputs import comparison_key  # here, not at the top: this module's imports stay as they are

    return (comparison_key(text) or None) if text else None


def profile_description(profile: Profile, lang: str) -> str:
    """In the reader's language, falling back to the other one."""
    return in_language(profile.description_fr, profile.description_nl, lang)


@dataclass
class Admin:
    store: Store
    catalog: Catalog
    actor: str
    max_inclusion_depth: int = 5
    # the CPAS's new policy version once a use case changed it (the consistency token of its answer)
    policy_version: int | None = None

    def _lock(self, cpas: str) -> Cpas:
        """Every change of a CPAS starts here: bump its policy version, which also takes the CPAS's write
        lock (a row lock on PostgreSQL, the database lock on SQLite), so that whatever the use case reads
        next (a user's active flag, a profile's version, whether it still exists) cannot change under it.
        UnknownCpas if there is no such CPAS."""
        version = self.store.bump_version(cpas)
        if not version:
            raise CpasUnknown(cpas)
        self.policy_version = version
        return self.require_cpas(cpas)

    # -- CPAS ----------------------------------------------------------------------------------------
    def require_cpas(self, cpas: str) -> Cpas:
        row = self.store.get_cpas(cpas)
        if row is None:
            raise CpasUnknown(cpas)
        return row

    def create_cpas(self, cpas: str, name_fr: str, name_nl: str, region: str) -> Cpas:
        if region not in REGIONS:
            raise RegionUnknown(REGIONS)
        if self.store.get_cpas(cpas) is not None:
            raise CpasExists(cpas)
        row = Cpas(id=cpas, name_fr=name_fr.strip(), name_nl=name_nl.strip(), region=region, policy_version=1)
        self.store.s.add(row)
        self.store.s.flush()
        self.store.announce(cpas)
        self.policy_version = row.policy_version
        builtin = self.store.add_profile(
            Profile(
                cpas_id=cpas,
                description_fr=BUILTIN_FR,
                description_nl=BUILTIN_NL,
                key_fr=description_key(BUILTIN_FR),
                key_nl=description_key(BUILTIN_NL),
                builtin=True,
                version=1,
            )
        )
        self.store.set_profile_functions(cpas, builtin.id, self.catalog.selectable)
        self.store.audit(cpas, self.actor, "cpas.create", f"cpas:{cpas}", None, cpas_snapshot(row))
        return row

    def sync_catalog(self) -> bool:
        """Write the catalog's rule rows if they changed; give every built-in profile every function.
        Returns whether anything changed."""
        state = self.store.catalog_state()
        if state is not None and state.digest == self.catalog.digest:
            return False
        self.store.write_catalog_rules(self.catalog)
        for row in self.store.list_cpas():
            builtin = self.store.builtin_profile(row.id)
            if builtin is not None:
                self.store.set_profile_functions(row.id, builtin.id, self.catalog.selectable)
        self.store.bump_all_versions()
        self.store.audit(
            None, self.actor, "catalog.load", "catalog",
            {"version": state.version, "digest": state.digest} if state else None,
            {"version": self.catalog.version, "digest": self.catalog.digest},
        )
        return True

    # -- profiles ------------------------------------------------------------------------------------
    def profile_snapshot(self, profile: Profile) -> dict[str, Any]:
        return {
            "id": profile.id,
            "description_fr": profile.description_fr,
            "description_nl": profile.description_nl,
            "builtin": profile.builtin,
            "version": profile.version,
            "functions": self.store.profile_functions(profile.cpas_id, profile.id),
            "includes": self.store.profile_includes(profile.cpas_id, profile.id),
        }

    def get_profile(self, cpas: str, profile_id: int) -> Profile:
        self.require_cpas(cpas)
        return require_profile(self.store, cpas, profile_id)

    def _check_functions(self, codes: Iterable[str]) -> list[str]:
        codes = list(dict.fromkeys(codes))
        unknown = [c for c in codes if c not in self.catalog]
        if unknown:
            raise FunctionsUnknown(unknown)
        covered = [c for c in codes if not self.catalog.functions[c].selectable]
        if covered:
            raise CoveredActions({c: list(self.catalog.coverers(c)) for c in covered})
        return codes

    def _check_descriptions(self, cpas: str, fr: str | None, nl: str | None, except_id: int | None) -> None:
        if not fr and not nl:
            raise DescriptionMissing()
        for lang, text in (("fr", fr), ("nl", nl)):
            key = description_key(text)
            if key and self.store.description_taken(cpas, lang, key, except_id=except_id):
                raise DuplicateDescription(
                    f"another profile of this CPAS is already described as {text!r} ({lang})",
                    {"lang": lang, "description": text},
                )

    def _check_includes(self, cpas: str, profile_id: int | None, includes: Iterable[int]) -> list[int]:
        includes = sorted(set(includes))
        for pid in includes:
            if self.store.get_profile(cpas, pid) is None:
                raise ProfileMissing(pid, cpas, included=True)
        graph = self.store.inclusion_graph(cpas)
        key = profile_id if profile_id is not None else 0  # 0: the profile being created
        graph[key] = includes
        if profile_id is not None and profile_id in includes:
            raise InclusionCycle(None)
        # depth of the longest inclusion chain through any profile; a cycle is refused
        depth: dict[int, int] = {}
        visiting: set[int] = set()

        def walk(node: int) -> int:
            if node in depth:
                return depth[node]
            if node in visiting:
                raise InclusionCycle(node)
            visiting.add(node)
            d = 1 + max((walk(n) for n in graph.get(node, ())), default=0)
            visiting.discard(node)
            depth[node] = d
            return d

        for node in list(graph):
            if walk(node) - 1 > self.max_inclusion_depth:
                raise InclusionTooDeep(self.max_inclusion_depth)
        return includes

    def create_profile(
        self,
        cpas: str,
        *,
        description_fr: str | None,
        description_nl: str | None,
        functions: Iterable[str],
        includes: Iterable[int] = (),
    ) -> Profile:
        self._lock(cpas)
        codes = self._check_functions(functions)
        self._check_descriptions(cpas, description_fr, description_nl, None)
        included = self._check_includes(cpas, None, includes)
        profile = self.store.add_profile(
            Profile(
                cpas_id=cpas,
                description_fr=description_fr,
                description_nl=description_nl,
                key_fr=description_key(description_fr),
                key_nl=description_key(description_nl),
                builtin=False,
                version=1,
            )
        )
        self.store.set_profile_functions(cpas, profile.id, codes)
        self.store.set_profile_includes(cpas, profile.id, included)
        self.store.audit(cpas, self.actor, "profile.create", f"profile:{profile.id}", None,
                         self.profile_snapshot(profile))
        return profile

    def update_profile(
        self,
        cpas: str,
        profile_id: int,
        *,
        version: int,
        description_fr: str | None,
        description_nl: str | None,
        functions: Iterable[str] | None,
        includes: Iterable[int] | None,
    ) -> Profile:
        self._lock(cpas)
        profile = require_profile(self.store, cpas, profile_id)
        if profile.version != version:
            raise StaleVersion(profile_id, profile.version, version)
        before = self.profile_snapshot(profile)
        codes = self._check_functions(functions) if functions is not None else None
        if profile.builtin:
            if codes is not None and set(codes) != set(self.catalog.selectable):
                raise BuiltinUnchangeable("functions")
            if includes:
                raise BuiltinUnchangeable("includes")
        self._check_descriptions(cpas, description_fr, description_nl, profile.id)
        included = self._check_includes(cpas, profile.id, includes) if includes is not None else None
        profile.description_fr, profile.description_nl = description_fr, description_nl
        profile.key_fr, profile.key_nl = description_key(description_fr), description_key(description_nl)
        profile.version += 1
        profile.updated_at = utcnow()
        self.store.s.flush()
        if codes is not None and not profile.builtin:
            self.store.set_profile_functions(cpas, profile.id, codes)
        if included is not None and not profile.builtin:
            self.store.set_profile_includes(cpas, profile.id, included)
        self.store.audit(cpas, self.actor, "profile.update", f"profile:{profile.id}", before,
                         self.profile_snapshot(profile))
        return profile

    def delete_profile(self, cpas: str, profile_id: int) -> None:
        self._lock(cpas)
        profile = require_profile(self.store, cpas, profile_id)
        if profile.builtin:
            raise BuiltinUnchangeable("delete")
        users = self.store.profile_users(cpas, profile_id)
        if users:
            raise ProfileAssigned([u.user for u in users])
        including = self.store.profiles_including(cpas, profile_id)
        if including:
            raise ProfileIncluded(including)
        before = self.profile_snapshot(profile)
        self.store.delete_profile(profile)
        self.store.audit(cpas, self.actor, "profile.delete", f"profile:{profile_id}", before, None)

    # -- users ---------------------------------------------------------------------------------------
    def user_snapshot(self, user: User) -> dict[str, Any]:
        return {
            "user": user.user,
            "name": user.name,
            "lang": user.lang,
            "active": user.active,
            "profiles": self.store.user_profiles(user.cpas_id, user.user),
        }

    def get_user(self, cpas: str, user: str) -> User:
        self.require_cpas(cpas)
        return require_user(self.store, cpas, user)

    def user_seen(self, cpas: str, user: str, *, name: str, lang: str) -> tuple[User, bool]:
        """Called by applications at login. Returns (user, created). Inactive users stay inactive."""
        if self.store.lock_cpas(cpas) is None:  # two first logins of one user: the second waits, sees the first
            raise CpasUnknown(cpas)
        row = self.store.get_user(cpas, user)
        name = " ".join(name.split())
        if row is None:
            self._lock(cpas)
            row = self.store.add_user(User(cpas_id=cpas, user=user, name=name, lang=lang, active=True))
            self.store.audit(cpas, self.actor, "user.first_login", f"user:{user}", None, self.user_snapshot(row))
            return row, True
        if (name and row.name != name) or row.lang != lang:
            before = self.user_snapshot(row)
            row.name = name or row.name
            row.lang = lang
            self.store.audit(cpas, self.actor, "user.update", f"user:{user}", before, self.user_snapshot(row))
        row.last_seen_at = utcnow()
        self.store.s.flush()
        return row, False

    def set_user_profiles(self, cpas: str, user: str, profile_ids: Iterable[int]) -> User:
        self._lock(cpas)
        row = require_user(self.store, cpas, user)
        if not row.active:
            raise UserInactive(user)
        ids = sorted(set(profile_ids))
        for pid in ids:
            if self.store.get_profile(cpas, pid) is None:
                raise ProfileMissing(pid, cpas, included=False)
        before = self.user_snapshot(row)
        self.store.set_user_profiles(cpas, user, ids)
        self.store.audit(cpas, self.actor, "user.assign", f"user:{user}", before, self.user_snapshot(row))
        return row

    def deactivate_user(self, cpas: str, user: str) -> User:
        self._lock(cpas)
        row = require_user(self.store, cpas, user)
        before = self.user_snapshot(row)
        self.store.set_user_profiles(cpas, user, ())
        row.active = False
        self.store.s.flush()
        self.store.audit(cpas, self.actor, "user.deactivate", f"user:{user}", before, self.user_snapshot(row))
        return row

    def reactivate_user(self, cpas: str, user: str) -> User:
        self._lock(cpas)
        row = require_user(self.store, cpas, user)
        before = self.user_snapshot(row)
        self.store.set_user_profiles(cpas, user, ())
        row.active = True
        self.store.s.flush()
        self.store.audit(cpas, self.actor, "user.reactivate", f"user:{user}", before, self.user_snapshot(row))
        return row


def require_profile(store: Store, cpas: str, profile_id: int) -> Profile:
    profile = store.get_profile(cpas, profile_id)
    if profile is None:
        raise ProfileNotFound(profile_id, cpas)
    return profile


def require_user(store: Store, cpas: str, user: str) -> User:
    row = store.get_user(cpas, user)
    if row is None:
        raise UserNotFound(user, cpas)
    return row


def users_with_profiles(
    store: Store, cpas: str, lang: str, *, active: bool, page: int, per_page: int, search: str | None
) -> tuple[list[tuple[User, list[tuple[int, str]]]], int]:
    """One page of the CPAS's users, each with its profiles (id, description in the reader's language)."""
    rows, total = store.users_page(cpas, active=active, page=page, per_page=per_page, search=search)
    profiles = {p.id: p for p in store.profiles(cpas)}
    assigned = store.assignments(cpas, [r.user for r in rows])
    items = [
        (r, [(i, profile_description(profiles[i], lang)) for i in assigned.get(r.user, []) if i in profiles])
        for r in rows
    ]
    return items, total


def cpas_snapshot(row: Cpas) -> dict[str, Any]:
    return {"cpas": row.id, "name_fr": row.name_fr, "name_nl": row.name_nl, "region": row.region}
