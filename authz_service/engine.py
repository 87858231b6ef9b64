"""The decision engine: exactly what ``model.conf`` decides, answered from precomputed per-CPAS indexes.

It reads Casbin rows (``p`` lines from the catalog, ``g`` lines per CPAS) and mirrors the model:
a user holds every role reachable through ``g`` links in the CPAS (at most ``MAX_HOPS`` links away,
as pycasbin's role manager), a function is allowed when one of its allow roles is held and every one
of its deny roles (prerequisites) is held too. No Flask, no SQL here: ``store.py`` feeds it rows.

Each CPAS index is immutable; a change builds a new one beside it and swaps the reference, so a
concurrent decision sees either the old or the new policy, never a half-built one. A change made here
need not rebuild the whole CPAS: ``CpasPolicy.with_changes`` derives the new index from the old one and
the rows of the subjects the change wrote (``Touched``), recomputing only the users who reach them and
sharing every other entry with the old index; the result is what a full build from the same rows gives.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from sys import intern
from types import MappingProxyType

from .freshness import slot_of
from .terms import Term, next_change

USER = "user:"
PROFILE = "profile:"
FUNCTION = "function:"
ANY_CPAS = "*"
# pycasbin's RoleManager(max_hierarchy_level=10) looks at most 9 links beyond the subject itself.
MAX_HOPS = 9


def user_subject(user: str) -> str:
    return USER + user


def profile_role(profile_id: int) -> str:
    return f"{PROFILE}{profile_id}"


def function_role(code: str) -> str:
    return FUNCTION + code


# The model this engine implements, as pycasbin reads model.conf (whitespace aside). The service refuses
# to start on another model: a changed model.conf must come with a changed engine.
EXPECTED_MODEL = {
    ("r", "r"): "sub, dom, obj",
    ("p", "p"): "sub, dom, obj, eft",
    ("g", "g"): "_, _, _",
    ("e", "e"): "some(where (p_eft == allow)) && !some(where (p_eft == deny))",
    ("m", "m"): 'r_obj == p_obj && (p_dom == "*" || p_dom == r_dom) && ((p_eft == "allow" && '
    'g(r_sub, p_sub, r_dom)) || (p_eft == "deny" && !g(r_sub, p_sub, r_dom)))',
}


def check_model(path: str) -> None:
    """Raise ValueError unless ``path`` is the model this engine decides exactly like."""
    from casbin.model import Model

    model = Model()
    model.load_model(path)
    found = {(sec, key): assertion.value for sec in ("r", "p", "g", "e", "m")
             for key, assertion in model.model.get(sec, {}).items()}
    squash = {k: "".join(v.split()) for k, v in found.items()}
    if squash != {k: "".join(v.split()) for k, v in EXPECTED_MODEL.items()}:
        raise ValueError(
            f"{path} is not the model the decision engine implements; change engine.py together with it"
        )


def in_language(fr: str | None, nl: str | None, lang: str) -> str:
    """A description in the reader's language, falling back to the other one."""
    return (nl or fr or "") if lang == "nl" else (fr or nl or "")


class EngineUnavailable(Exception):
    """The policy is not loaded or too old to trust: no decision can be made."""


@dataclass(frozen=True)
class Rules:
    """The catalog's ``p`` lines, indexed both ways."""

    allow_roles: Mapping[str, frozenset[str]]  # function code -> roles whose holding grants it
    deny_roles: Mapping[str, frozenset[str]]  # function code -> roles whose absence refuses it
    grants: Mapping[str, frozenset[str]]  # role -> function codes it grants

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[str, str, str, str]]) -> Rules:
        """``rows`` are ``(sub, dom, obj, eft)`` of ``p`` lines; lines for another domain than ``*`` are
        refused, since the service keeps every ``p`` line global."""
        allow: dict[str, set[str]] = {}
        deny: dict[str, set[str]] = {}
        grants: dict[str, set[str]] = {}
        for sub, dom, obj, eft in rows:
            if dom != ANY_CPAS:
                raise ValueError(f"p line for domain {dom!r}: only '*' is supported")
            if eft == "allow":
                allow.setdefault(obj, set()).add(sub)
                grants.setdefault(sub, set()).add(obj)
            elif eft == "deny":
                deny.setdefault(obj, set()).add(sub)
            else:
                raise ValueError(f"p line with effect {eft!r}")
        return cls(
            allow_roles=MappingProxyType({k: frozenset(v) for k, v in allow.items()}),
            deny_roles=MappingProxyType({k: frozenset(v) for k, v in deny.items()}),
            grants=MappingProxyType({k: frozenset(v) for k, v in grants.items()}),
        )


@dataclass(frozen=True)
class Decision:
    allowed: bool
    # granted | not_granted | missing_prerequisite | user_inactive | unknown_user | assignment_expired
    # | assignment_not_started
    reason: str
    policy_version: int
    granted_by: tuple[int, ...] = ()
    missing_prerequisites: tuple[str, ...] = ()

    def as_json(self, *, explain: bool) -> dict[str, object]:
        """The body of a decision's answer (docs/api.md, "Decisions")."""
        body: dict[str, object] = {"allowed": self.allowed, "policy_version": self.policy_version}
        if explain:
            body["explanation"] = {
                "reason": self.reason,
                "granted_by": list(self.granted_by),
                "missing_prerequisites": list(self.missing_prerequisites),
            }
        return body


@dataclass(frozen=True)
class Touched:
    """What one committed transaction wrote in one CPAS, as the store saw it written: every subject
    (``user:U``, ``profile:P``) whose ``g`` rows or user row it changed, and the CPAS's policy version
    before its first change and after its last. The policy at ``since`` with these subjects' rows read
    again is the policy at ``version``, provided no other change came in between: the store's version
    says whether one did."""

    since: int
    version: int
    subjects: frozenset[str]


@dataclass(frozen=True)
class UserView:
    known: bool
    active: bool
    profiles: tuple[int, ...]  # directly assigned profile ids, sorted
    functions: frozenset[str]  # effective function codes


def _split(
    parents: tuple[str, ...], terms: Mapping[int, Term] | None, at: float
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A user's parents as (those that hold at ``at``, assignments out of their term then)."""
    if not terms:
        return parents, ()
    live: list[str] = []
    dormant: list[str] = []
    for parent in parents:
        term = terms.get(int(parent[len(PROFILE):])) if parent.startswith(PROFILE) else None
        (live if term is None or term.holds(at) else dormant).append(parent)
    return tuple(live), tuple(dormant)


class CpasPolicy:
    """One CPAS's policy at one version and one instant. Built once, never changed.

    ``terms`` (user -> profile id -> ``Term``) bound some assignments in time: the policy decides as of
    ``at`` (epoch seconds), an assignment out of its term then counting as absent, and holds until
    ``next_change``, the first bound after ``at``; ``at_instant`` gives the policy at a later instant."""

    def __init__(
        self,
        cpas: str,
        version: int,
        rules: Rules,
        links: Iterable[tuple[str, str]],
        users: Mapping[str, bool],
        descriptions: Mapping[int, tuple[str | None, str | None]] | None = None,
        terms: Mapping[str, Mapping[int, Term]] | None = None,
        at: float | None = None,
    ) -> None:
        self.cpas = cpas
        # profile id -> (description_fr, description_nl): plain data, so that answering "what may this
        # user use" needs no database round trip
        self.descriptions = MappingProxyType(dict(descriptions or {}))
        self.version = version
        self.rules = rules
        graph: dict[str, list[str]] = {}
        for child, parent in links:
            # interned: a million rule rows name a few hundred functions and profiles many times over
            graph.setdefault(intern(child), []).append(intern(parent))
        self._graph = {k: tuple(v) for k, v in graph.items()}
        self.at = time.time() if at is None else at
        self._terms: dict[str, Mapping[int, Term]] = {
            u: MappingProxyType(dict(t)) for u, t in (terms or {}).items() if t}
        # a user's assignments out of their term at ``at``: not in the graph, kept to come back in and to explain
        self._dormant: dict[str, tuple[str, ...]] = {}
        for user, user_terms in self._terms.items():
            subject = intern(user_subject(user))
            live, dormant = _split(self._graph.get(subject, ()), user_terms, self.at)
            if dormant:
                self._dormant[subject] = dormant
                if live:
                    self._graph[subject] = live
                else:
                    self._graph.pop(subject, None)
        self.next_change = next_change(self._terms, self.at)
        self._users = dict(users)  # user id -> active
        self._by_profiles: dict[tuple[str, ...], frozenset[str]] = {}
        self._effective: dict[str, frozenset[str]] = {}
        for user, active in self._users.items():
            # inactive means denied, whatever rows exist (the export leaves an inactive user's rows out)
            self._effective[user] = self._compute(user_subject(user)) if active else frozenset()
        self.slot = slot_of(cpas)
        # the version board's counter for this CPAS's slot, read before the rows were: the policy holds
        # every change announced up to that count (raised, never lowered, when a sync finds it current)
        self.fresh_as_of = 0

    # -- building -------------------------------------------------------------------------------
    def _reachable(self, subject: str, hops: int = MAX_HOPS) -> frozenset[str]:
        seen = {subject}
        frontier = [subject]
        for _ in range(hops):
            nxt = []
            for node in frontier:
                for parent in self._graph.get(node, ()):
                    if parent not in seen:
                        seen.add(parent)
                        nxt.append(parent)
            if not nxt:
                break
            frontier = nxt
        seen.discard(subject)
        return frozenset(seen)

    def _compute(self, subject: str) -> frozenset[str]:
        direct = self._graph.get(subject, ())
        if not direct:
            return frozenset()
        key = tuple(sorted(direct))
        cached = self._by_profiles.get(key)
        if cached is None:
            cached = self._functions_of_roles(self._reachable(subject))
            self._by_profiles[key] = cached
        return cached

    # -- deriving ---------------------------------------------------------------------------------
    @cached_property
    def _holders(self) -> Mapping[str, frozenset[str]] | None:
        """The links read the other way, for every role that is not a function: role -> the subjects
        linked to it. None when the links leave the shape the use cases write (a function with links of
        its own, a link to a user): a change is then rebuilt in full. Built on first use (the first change
        after a full build), then carried from policy to derived policy."""
        holders: dict[str, set[str]] = {}
        for child, parents in self._graph.items():
            if child.startswith(FUNCTION):
                return None
            for parent in parents:
                if parent.startswith(FUNCTION):
                    continue
                if parent.startswith(USER):
                    return None
                holders.setdefault(parent, set()).add(child)
        return {k: frozenset(v) for k, v in holders.items()}

    def all_links(self) -> Iterable[tuple[str, str]]:
        """Every ``g`` row this policy was built from, in term or not."""
        for child, parents in self._graph.items():
            for parent in parents:
                yield child, parent
        for child, parents in self._dormant.items():
            for parent in parents:
                yield child, parent

    def at_instant(self, at: float) -> CpasPolicy:
        """This policy as it decides at ``at`` (a later instant): itself until ``next_change``; after it, a
        new policy with the assignments whose term began or ended in between taken in or out, equal to a
        full build from the same rows at ``at``."""
        if at < self.next_change:
            return self
        policy = self.with_changes(self.version, {}, {}, self.descriptions, at=at)
        if policy is None:
            policy = CpasPolicy(self.cpas, self.version, self.rules, self.all_links(), self._users,
                                self.descriptions, self._terms, at)
        policy.fresh_as_of = self.fresh_as_of  # the same rows: as fresh as they were
        return policy

    def terms_of(self, user: str) -> Mapping[int, Term]:
        """The terms of the user's bounded assignments (profile id -> Term), in force or not."""
        return self._terms.get(user, MappingProxyType({}))

    def next_change_of(self, user: str) -> float | None:
        """When what this user may use next changes by a term alone (epoch seconds), or None: never."""
        found = [t.next_change(self.at) for t in self._terms.get(user, {}).values()]
        later = [f for f in found if f is not None]
        return min(later) if later else None

    def with_changes(
        self,
        version: int,
        links: Mapping[str, Collection[str]],
        users: Mapping[str, bool | None],
        descriptions: Mapping[int, tuple[str | None, str | None]],
        terms: Mapping[str, Mapping[int, Term] | None] | None = None,
        at: float | None = None,
    ) -> CpasPolicy | None:
        """This policy with the changes of one or more transactions applied: a new policy equal to a full
        build from the rows as they now are, this one untouched. ``links``: every subject whose ``g``
        rows changed, with all its parents now (none: it has no rows left); ``users``: every user whose
        row may have changed, with its active flag now (None: no row); ``descriptions``: every profile's;
        ``terms``: every user whose terms may have changed, with them now (None or empty: no term); ``at``:
        the instant to decide as of (this policy's when not given). Only the users who reach a changed
        subject, or whose assignment entered or left its term between the two instants, are computed again
        (through at most ``MAX_HOPS`` links, as a decision looks); every other user's entry is shared.

        None when the links leave the use cases' shape (see ``_holders``): build in full instead."""
        holders = self._holders
        at = self.at if at is None else at
        new_terms = dict(self._terms)
        for user, user_terms in (terms or {}).items():
            if user_terms:
                new_terms[user] = MappingProxyType(dict(user_terms))
            else:
                new_terms.pop(user, None)
        # every user subject whose parents in term may differ: its rows or terms changed, or a bound passed
        moved = {user_subject(u) for u in (terms or {})}
        if at != self.at and (at < self.at or self.next_change <= at):
            low, high = min(at, self.at), max(at, self.at)
            moved.update(user_subject(u) for u, user_terms in self._terms.items()
                         if any(bound is not None and low < bound <= high
                                for t in user_terms.values() for bound in (t.start, t.end)))
        dormant = dict(self._dormant)
        effective: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in links.items()}
        for subject in set(links) | moved:
            if not subject.startswith(USER):
                continue
            parents = tuple(links[subject]) if subject in links else (
                self._graph.get(subject, ()) + self._dormant.get(subject, ()))
            live, out = _split(parents, new_terms.get(subject[len(USER):]), at)
            effective[subject] = live
            if out:
                dormant[intern(subject)] = out
            else:
                dormant.pop(subject, None)
        touched = set(effective) | {user_subject(u) for u in users}
        if holders is None or any(s.startswith(FUNCTION) for s in touched) or any(
            p.startswith(USER) for parents in effective.values() for p in parents
        ):
            return None
        # who reaches a changed subject: only their sets can differ (a user whose search never meets one
        # follows the same links in both graphs)
        reached = set(touched)
        frontier = list(touched)
        for _ in range(MAX_HOPS):
            nxt = []
            for node in frontier:
                for child in holders.get(node, ()):
                    if child not in reached:
                        reached.add(child)
                        nxt.append(child)
            if not nxt:
                break
            frontier = nxt
        graph = dict(self._graph)
        new_holders = dict(holders)
        for subject, parents in effective.items():
            subject = intern(subject)
            now = tuple(dict.fromkeys(intern(p) for p in parents))
            before = set(graph.get(subject, ()))
            if now:
                graph[subject] = now
            else:
                graph.pop(subject, None)
            after = set(now)
            for parent in before - after:
                if not parent.startswith(FUNCTION):
                    left = new_holders.get(parent, frozenset()) - {subject}
                    if left:
                        new_holders[parent] = left
                    else:
                        new_holders.pop(parent, None)
            for parent in after - before:
                if not parent.startswith(FUNCTION):
                    new_holders[parent] = new_holders.get(parent, frozenset()) | {subject}
        policy = CpasPolicy.__new__(CpasPolicy)
        policy.cpas = self.cpas
        policy.descriptions = MappingProxyType(dict(descriptions))
        policy.version = version
        policy.rules = self.rules
        policy._graph = graph
        policy.at = at
        policy._terms = new_terms
        policy._dormant = dormant
        policy.next_change = next_change(new_terms, at)
        policy._users = dict(self._users)
        for user, active in users.items():
            if active is None:
                policy._users.pop(user, None)
            else:
                policy._users[user] = active
        # the shared sets of direct profiles that reach no changed subject stay right (all of them when only
        # users changed: nothing links to a user)
        roles = {node for node in reached if not node.startswith(USER)}
        cache = dict(self._by_profiles)
        policy._by_profiles = {k: v for k, v in cache.items() if roles.isdisjoint(k)} if roles else cache
        policy._effective = dict(self._effective)
        for node in reached:
            if node.startswith(USER):
                user = node[len(USER) :]
                active = policy._users.get(user)
                if active is None:
                    policy._effective.pop(user, None)
                else:
                    policy._effective[user] = policy._compute(node) if active else frozenset()
        policy.slot = self.slot
        policy.fresh_as_of = 0
        policy.__dict__["_holders"] = new_holders  # the cached_property's value, carried
        return policy

    def _functions_of_roles(self, held: frozenset[str]) -> frozenset[str]:
        rules = self.rules
        candidates: set[str] = set()
        for role in held:
            granted = rules.grants.get(role)
            if granted:
                candidates.update(granted)
        return frozenset(c for c in candidates if rules.deny_roles.get(c, frozenset()) <= held)

    # -- reading --------------------------------------------------------------------------------
    def functions_of(self, user: str) -> frozenset[str]:
        found = self._effective.get(user)
        if found is None:  # a subject with links but no user row decides as Casbin would on the export
            found = self._compute(user_subject(user))
        return found

    def allows(self, user: str, function: str) -> bool:
        """The bare decision, with nothing built around it (the hot path)."""
        found = self._effective.get(user)
        return function in (found if found is not None else self.functions_of(user))

    def profiles_of(self, user: str) -> tuple[int, ...]:
        if not self._users.get(user, True):
            return ()
        return tuple(
            sorted(int(r[len(PROFILE) :]) for r in self._graph.get(user_subject(user), ()) if r.startswith(PROFILE))
        )

    def description(self, profile_id: int, lang: str) -> str:
        """In the reader's language, falling back to the other one."""
        return in_language(*self.descriptions.get(profile_id, (None, None)), lang)

    def view(self, user: str) -> UserView:
        return UserView(
            known=user in self._users,
            active=self._users.get(user, False),
            profiles=self.profiles_of(user),
            functions=self.functions_of(user),
        )

    @cached_property
    def _subjects(self) -> tuple[str, ...]:
        """Every user id this policy can allow, sorted: the CPAS's users, and any subject with links but
        no user row (``functions_of`` decides those as Casbin would). Built on first use, never changed."""
        linked = {node[len(USER):] for node in self._graph if node.startswith(USER)}
        return tuple(sorted(linked.union(self._users)))

    def users_allowed(self, function: str) -> tuple[str, ...]:
        """The users whose decision on ``function`` is allow (exactly ``allows``: hierarchy, covering,
        prerequisites, inactive users denied), sorted by id."""
        return tuple(user for user in self._subjects if self.allows(user, function))

    def grants_of(self, function: str) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """Every user ``users_allowed`` gives, sorted by id, each with the profiles directly assigned to them
        that grant ``function`` (the explanation's ``granted_by``): one reach per distinct profile, shared
        by every user who holds it, so a function held by thousands costs a few hundred searches."""
        allow_roles = self.rules.allow_roles.get(function, frozenset())
        grants: dict[str, bool] = {}
        out = []
        for user in self.users_allowed(function):
            granted_by = []
            for role in self._graph.get(user_subject(user), ()):
                if not role.startswith(PROFILE):
                    continue
                found = grants.get(role)
                if found is None:  # as _explain: one hop is spent reaching the profile
                    found = grants[role] = role in allow_roles or bool(
                        self._reachable(role, MAX_HOPS - 1) & allow_roles)
                if found:
                    granted_by.append(int(role[len(PROFILE):]))
            out.append((user, tuple(sorted(granted_by))))
        return tuple(out)

    def decide(self, user: str, function: str, *, explain: bool = False) -> Decision:
        allowed = self.allows(user, function)
        if not explain:
            return Decision(allowed, "granted" if allowed else "not_granted", self.version)
        return self._explain(user, function, allowed)

    def _explain(self, user: str, function: str, allowed: bool) -> Decision:
        if user not in self._users and not allowed:
            return Decision(False, "unknown_user", self.version)
        if not self._users.get(user, True):
            return Decision(False, "user_inactive", self.version)
        allow_roles = self.rules.allow_roles.get(function, frozenset())
        granted_by = []
        for role in self._graph.get(user_subject(user), ()):
            # a profile's own links count from the user's: one hop is spent reaching the profile
            if role.startswith(PROFILE) and (role in allow_roles or self._reachable(role, MAX_HOPS - 1) & allow_roles):
                granted_by.append(int(role[len(PROFILE) :]))
        held = self._reachable(user_subject(user))
        missing = sorted(
            r[len(FUNCTION) :] if r.startswith(FUNCTION) else r
            for r in self.rules.deny_roles.get(function, frozenset()) - held
        )
        if allowed:
            reason = "granted"
        elif held & allow_roles:
            reason = "missing_prerequisite"
        else:
            reason = self._out_of_term(user, allow_roles) or "not_granted"
        return Decision(allowed, reason, self.version, tuple(sorted(granted_by)), tuple(missing) if not allowed else ())


    def _out_of_term(self, user: str, allow_roles: frozenset[str]) -> str | None:
        """Why an assignment out of its term would have granted: ``assignment_expired`` (its term ended;
        preferred) or ``assignment_not_started``; None when none would have."""
        found = None
        terms = self._terms.get(user, {})
        for role in self._dormant.get(user_subject(user), ()):
            if role in allow_roles or self._reachable_through(role) & allow_roles:
                term = terms.get(int(role[len(PROFILE):]))
                if term is not None and term.ended(self.at):
                    return "assignment_expired"
                found = "assignment_not_started"
        return found

    def _reachable_through(self, role: str) -> frozenset[str]:
        return self._reachable(role, MAX_HOPS - 1)


@dataclass
class Snapshot:
    rules: Rules
    catalog_digest: str
    policies: Mapping[str, CpasPolicy] = field(default_factory=dict)
    # the version board's "every CPAS" counter, read before this snapshot's rows were
    fresh_as_of: int = 0


class Engine:
    """Holds the live snapshot; ``swap`` installs a new one. Decisions never take a lock."""

    def __init__(self, *, max_staleness: float = 15.0, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self._snapshot: Snapshot | None = None
        self.clock = clock
        self.wall = wall  # the instant decisions are made as of (epoch seconds): time-bound assignments
        self._synced_at: float = clock()
        self.max_staleness = max_staleness
        self.build_lock = threading.Lock()  # one builder at a time; readers never wait on it

    @property
    def snapshot(self) -> Snapshot:
        snap = self._snapshot
        if snap is None:
            raise EngineUnavailable("the policy is not loaded yet")
        if self.clock() - self._synced_at > self.max_staleness:
            raise EngineUnavailable("the policy store has not answered recently")
        return snap

    def allows(self, cpas: str, user: str, function: str) -> bool:
        """Fail closed: EngineUnavailable when stale or not loaded, KeyError for an unknown CPAS."""
        policy = self.snapshot.policies[cpas]
        if policy.next_change != math.inf and policy.next_change <= self.wall():
            policy = policy.at_instant(self.wall())
        return policy.allows(user, function)

    @property
    def loaded(self) -> bool:
        return self._snapshot is not None

    def current(self) -> Snapshot | None:
        """The snapshot even when stale (for builders), or None."""
        return self._snapshot

    def install(self, snapshot: Snapshot, *, synced: bool = True) -> None:
        """``synced``: the snapshot was checked against every CPAS's version in the store (a full
        sync), not just rebuilt for one CPAS."""
        self._snapshot = snapshot
        if synced:
            self.mark_synced()

    def mark_synced(self) -> None:
        self._synced_at = self.clock()

    def seconds_since_sync(self) -> float:
        return self.clock() - self._synced_at
