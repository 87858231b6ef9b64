"""The only module that runs SQL (beside the migrations and ``db.py``'s connection settings). Reads and
writes our rows and the Casbin rule rows through the caller's session, private to ``Store``, so that they
share its transaction (sqlalchemy-adapter's own writes commit on their own and have known bugs; see
docs/architecture.md, "Casbin facts"); also the audit trail's filters, the login throttle's counts,
``generate``'s bulk rows and PostgreSQL's NOTIFY/LISTEN. Casbin words stay here and in ``engine.py``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, bindparam, delete, event, func, insert, or_, select, text, update
from sqlalchemy.orm import Session, object_session

from .catalog import Catalog
from .db import HISTORY_CLOCK, note_change
from .engine import (
    ANY_CPAS,
    FUNCTION,
    PROFILE,
    USER,
    CpasPolicy,
    Rules,
    Touched,
    function_role,
    profile_role,
    user_subject,
)
from .models import (
    AdminAccount,
    ApiKey,
    AssignmentTerm,
    AuditEntry,
    CasbinRule,
    CatalogState,
    Cpas,
    LoginAttempt,
    PolicyEvent,
    Profile,
    Review,
    ReviewItem,
    ServiceSecret,
    User,
    as_stored,
    audit_genesis,
    audit_hash,
    iso,
    utcnow,
)
from .terms import Assignment, Term, assignments, aware


@dataclass(frozen=True)
class AuditWhere:
    """Which audit entries: from ``since`` (included) to ``until`` (excluded), exactly ``actor`` (the
    trail's own text: "demo" does not find "cli:seed-demo"), exactly ``action``. Empty values do not filter."""

    since: datetime | None = None
    until: datetime | None = None
    actor: str = ""
    action: str = ""


class Store:
    """Every read and write of the database, through the caller's session (private: no other module sees
    it). Returns model rows; ``reads`` turns them into the frozen answers the routes show."""

    def __init__(self, session: Session) -> None:
        self._s = session

    def flush(self) -> None:
        """Send the pending changes of model rows to the database (constraints are checked here)."""
        self._s.flush()

    # -- catalog rule rows ------------------------------------------------------------------------
    def catalog_state(self) -> CatalogState | None:
        return self._s.get(CatalogState, 1)

    def write_catalog_rules(self, catalog: Catalog) -> None:
        """Replace every global ``p`` line by the catalog's: allow lines for each function and covered
        action, deny lines for each transitive prerequisite."""
        self._s.execute(delete(CasbinRule).where(CasbinRule.ptype == "p"))
        _written(self._s).doubtful.add(None)
        rows: list[dict[str, Any]] = []
        for code, fn in catalog.functions.items():
            if fn.selectable:
                rows.append(_p(function_role(code), code, "allow"))
                rows.extend(_p(function_role(code), c, "allow") for c in fn.covers)
            rows.extend(_p(function_role(pre), code, "deny") for pre in sorted(catalog.prerequisites(code)))
        if rows:
            self._s.execute(insert(CasbinRule), rows)
        state = self.catalog_state()
        if state is None:
            self._s.add(CatalogState(id=1, version=catalog.version, digest=catalog.digest))
        else:
            state.version, state.digest, state.loaded_at = catalog.version, catalog.digest, utcnow()

    def rules(self) -> Rules:
        rows = self._s.execute(
            select(CasbinRule.v0, CasbinRule.v1, CasbinRule.v2, CasbinRule.v3).where(CasbinRule.ptype == "p")
        ).all()
        return Rules.from_rows((str(a), str(b), str(c), str(d)) for a, b, c, d in rows)

    # -- CPAS -------------------------------------------------------------------------------------
    def get_cpas(self, cpas: str) -> Cpas | None:
        return self._s.get(Cpas, cpas)

    def list_cpas(self) -> Sequence[Cpas]:
        return self._s.scalars(select(Cpas).order_by(Cpas.id)).all()

    def add_cpas(self, row: Cpas) -> Cpas:
        self._s.add(row)
        self._s.flush()
        _written(self._s).doubtful.add(row.id)
        return row

    def versions(self) -> dict[str, int]:
        return {k: v for k, v in self._s.execute(select(Cpas.id, Cpas.policy_version)).all()}

    def versions_of(self, cpas: Iterable[str]) -> dict[str, int]:
        query = select(Cpas.id, Cpas.policy_version).where(Cpas.id.in_(list(cpas)))
        return {k: v for k, v in self._s.execute(query).all()}

    def bump_version(self, cpas: str) -> int:
        """Also the write lock that serializes changes of one CPAS (row lock on PostgreSQL)."""
        self._s.execute(update(Cpas).where(Cpas.id == cpas).values(policy_version=Cpas.policy_version + 1))
        note_change(self._s, cpas)
        version = int(self._s.scalar(select(Cpas.policy_version).where(Cpas.id == cpas)) or 0)
        if version:
            written = _written(self._s)
            written.since.setdefault(cpas, version - 1)  # the lock is held from here: nobody else bumps
            written.version[cpas] = version
        return version

    def announce(self, cpas: str) -> None:
        """A new CPAS: announced on the version board at commit, as a bumped version is."""
        note_change(self._s, cpas)

    def bump_all_versions(self) -> None:
        self._s.execute(update(Cpas).values(policy_version=Cpas.policy_version + 1))
        note_change(self._s, None)
        _written(self._s).doubtful.add(None)

    def lock_cpas(self, cpas: str) -> Cpas | None:
        return self._s.scalar(select(Cpas).where(Cpas.id == cpas).with_for_update())

    # -- profiles ---------------------------------------------------------------------------------
    def profiles(self, cpas: str) -> Sequence[Profile]:
        return self._s.scalars(select(Profile).where(Profile.cpas_id == cpas).order_by(Profile.id)).all()

    def get_profile(self, cpas: str, profile_id: int) -> Profile | None:
        profile = self._s.get(Profile, profile_id)
        return profile if profile is not None and profile.cpas_id == cpas else None

    def builtin_profile(self, cpas: str) -> Profile | None:
        return self._s.scalar(select(Profile).where(Profile.cpas_id == cpas, Profile.builtin.is_(True)))

    def description_taken(self, cpas: str, lang: str, key: str, *, except_id: int | None = None) -> bool:
        column = Profile.key_fr if lang == "fr" else Profile.key_nl
        query = select(Profile.id).where(Profile.cpas_id == cpas, column == key)
        if except_id is not None:
            query = query.where(Profile.id != except_id)
        return self._s.scalar(query.limit(1)) is not None

    def add_profile(self, profile: Profile) -> Profile:
        self._s.add(profile)
        self._s.flush()
        _written(self._s).descriptions.add(profile.cpas_id)
        return profile

    def delete_profile(self, profile: Profile) -> None:
        role = profile_role(profile.id)
        holders = self._s.scalars(  # none when a use case deletes it (refused while assigned or included)
            select(CasbinRule.v0).where(
                CasbinRule.ptype == "g", CasbinRule.v2 == profile.cpas_id, CasbinRule.v1 == role
            )
        ).all()
        self._touch(profile.cpas_id, role, *(str(h) for h in holders))
        _written(self._s).descriptions.add(profile.cpas_id)
        self._drop_terms(profile.cpas_id, AssignmentTerm.profile_id == profile.id)
        self._s.execute(
            delete(CasbinRule).where(
                CasbinRule.ptype == "g",
                CasbinRule.v2 == profile.cpas_id,
                or_(CasbinRule.v0 == role, CasbinRule.v1 == role),
            )
        )
        self._s.delete(profile)
        self._s.flush()

    def _links_from(self, cpas: str, subject: str, prefix: str) -> list[str]:
        rows = self._s.scalars(
            select(CasbinRule.v1).where(
                CasbinRule.ptype == "g",
                CasbinRule.v2 == cpas,
                CasbinRule.v0 == subject,
                CasbinRule.v1.startswith(prefix),
            )
        ).all()
        return [str(r) for r in rows]

    def _replace_links(self, cpas: str, subject: str, prefix: str, targets: Iterable[str]) -> None:
        self._touch(cpas, subject)
        self._s.execute(
            delete(CasbinRule).where(
                CasbinRule.ptype == "g",
                CasbinRule.v2 == cpas,
                CasbinRule.v0 == subject,
                CasbinRule.v1.startswith(prefix),
            )
        )
        rows = [_g(subject, t, cpas) for t in sorted(set(targets))]
        if rows:
            self._s.execute(insert(CasbinRule), rows)

    def profile_functions(self, cpas: str, profile_id: int) -> list[str]:
        return sorted(r[len(FUNCTION) :] for r in self._links_from(cpas, profile_role(profile_id), FUNCTION))

    def set_profile_functions(self, cpas: str, profile_id: int, codes: Iterable[str]) -> None:
        self._replace_links(cpas, profile_role(profile_id), FUNCTION, (function_role(c) for c in codes))

    def profile_includes(self, cpas: str, profile_id: int) -> list[int]:
        return sorted(int(r[len(PROFILE) :]) for r in self._links_from(cpas, profile_role(profile_id), PROFILE))

    def set_profile_includes(self, cpas: str, profile_id: int, included: Iterable[int]) -> None:
        self._replace_links(cpas, profile_role(profile_id), PROFILE, (profile_role(i) for i in included))

    def inclusion_graph(self, cpas: str) -> dict[int, list[int]]:
        rows = self._s.execute(
            select(CasbinRule.v0, CasbinRule.v1).where(
                CasbinRule.ptype == "g",
                CasbinRule.v2 == cpas,
                CasbinRule.v0.startswith(PROFILE),
                CasbinRule.v1.startswith(PROFILE),
            )
        ).all()
        graph: dict[int, list[int]] = {}
        for child, parent in rows:
            graph.setdefault(int(str(child)[len(PROFILE) :]), []).append(int(str(parent)[len(PROFILE) :]))
        return graph

    def profile_users(self, cpas: str, profile_id: int) -> list[User]:
        subjects = self._s.scalars(
            select(CasbinRule.v0).where(
                CasbinRule.ptype == "g", CasbinRule.v2 == cpas, CasbinRule.v1 == profile_role(profile_id),
                CasbinRule.v0.startswith(USER),
            )
        ).all()
        ids = [str(s)[len(USER) :] for s in subjects]
        if not ids:
            return []
        return list(
            self._s.scalars(
                select(User).where(User.cpas_id == cpas, User.user.in_(ids)).order_by(User.name, User.user)
            ).all()
        )

    def profiles_including(self, cpas: str, profile_id: int) -> list[int]:
        rows = self._s.scalars(
            select(CasbinRule.v0).where(
                CasbinRule.ptype == "g", CasbinRule.v2 == cpas, CasbinRule.v1 == profile_role(profile_id),
                CasbinRule.v0.startswith(PROFILE),
            )
        ).all()
        return sorted(int(str(r)[len(PROFILE) :]) for r in rows)

    def profile_counts(self, cpas: str) -> tuple[dict[int, int], dict[int, int]]:
        """(functions per profile, users per profile) for the CPAS."""
        rows = self._s.execute(
            select(CasbinRule.v0, CasbinRule.v1).where(CasbinRule.ptype == "g", CasbinRule.v2 == cpas)
        ).all()
        functions: dict[int, int] = {}
        users: dict[int, int] = {}
        for child, parent in ((str(a), str(b)) for a, b in rows):
            if child.startswith(PROFILE) and parent.startswith(FUNCTION):
                pid = int(child[len(PROFILE) :])
                functions[pid] = functions.get(pid, 0) + 1
            elif child.startswith(USER) and parent.startswith(PROFILE):
                pid = int(parent[len(PROFILE) :])
                users[pid] = users.get(pid, 0) + 1
        return functions, users

    # -- users ------------------------------------------------------------------------------------
    def get_user(self, cpas: str, user: str) -> User | None:
        return self._s.get(User, (cpas, user))

    def add_user(self, user: User) -> User:
        self._s.add(user)
        self._s.flush()
        self._touch(user.cpas_id, user_subject(user.user))
        return user

    def user_names(self, cpas: str) -> dict[str, str]:
        """Every user of the CPAS, active or not: user id -> name."""
        return {str(u): str(n) for u, n in self._s.execute(select(User.user, User.name).where(User.cpas_id == cpas))}

    def user_profiles(self, cpas: str, user: str) -> list[int]:
        return sorted(int(r[len(PROFILE) :]) for r in self._links_from(cpas, user_subject(user), PROFILE))

    def set_user_profiles(self, cpas: str, user: str, items: Iterable[int | Assignment]) -> None:
        """The user's assignments become ``items``: plain profile ids (no term) or ``Assignment``s."""
        wanted = assignments(items)
        self._replace_links(cpas, user_subject(user), PROFILE, (profile_role(i) for i in wanted))
        self._drop_terms(cpas, AssignmentTerm.user == user)
        rows = [{"cpas_id": cpas, "user": user, "profile_id": a.profile_id, "valid_from": a.valid_from,
                 "valid_until": a.valid_until, "ended_recorded": False} for a in wanted.values() if a.bounded]
        if rows:
            self._s.execute(insert(AssignmentTerm), rows)
            _written(self._s).terms.setdefault(cpas, set()).add(user)

    def _drop_terms(self, cpas: str, where: Any) -> None:
        users = self._s.scalars(select(AssignmentTerm.user).where(AssignmentTerm.cpas_id == cpas, where)).all()
        if users:
            _written(self._s).terms.setdefault(cpas, set()).update(str(u) for u in users)
            self._s.execute(delete(AssignmentTerm).where(AssignmentTerm.cpas_id == cpas, where))

    def user_terms(self, cpas: str, user: str) -> dict[int, Term]:
        """The user's bounded assignments: profile id -> Term (in force or not)."""
        return self.terms_of(cpas, [user]).get(user, {})

    def terms_of(self, cpas: str, users: Iterable[str] | None = None) -> dict[str, dict[int, Term]]:
        """user -> profile id -> Term, for ``users`` (None: every user of the CPAS)."""
        query = select(AssignmentTerm.user, AssignmentTerm.profile_id, AssignmentTerm.valid_from,
                       AssignmentTerm.valid_until).where(AssignmentTerm.cpas_id == cpas)
        out: dict[str, dict[int, Term]] = {}
        chunks: list[list[str] | None] = [None]
        if users is not None:
            ids = sorted(set(users))
            chunks = [ids[start:start + 500] for start in range(0, len(ids), 500)]
        for chunk in chunks:
            rows = self._s.execute(query if chunk is None else query.where(AssignmentTerm.user.in_(chunk)))
            for user, pid, start, end in rows:
                out.setdefault(str(user), {})[int(pid)] = Term.of(start, end)
        return out

    def ending_assignments(self, cpas: str, after: datetime, until: datetime) -> list[tuple[str, int, datetime]]:
        """(user, profile id, valid_until) of the active users' assignments whose term ends in (after, until],
        soonest first."""
        rows = self._s.execute(
            select(AssignmentTerm.user, AssignmentTerm.profile_id, AssignmentTerm.valid_until)
            .join(User, and_(User.cpas_id == AssignmentTerm.cpas_id, User.user == AssignmentTerm.user))
            .where(AssignmentTerm.cpas_id == cpas, User.active.is_(True), AssignmentTerm.valid_until > after,
                   AssignmentTerm.valid_until <= until)
            .order_by(AssignmentTerm.valid_until, AssignmentTerm.user, AssignmentTerm.profile_id)
        ).all()
        return [(str(u), int(p), aware(e)) for u, p, e in rows if e is not None]

    def expiries_due(self, now: datetime, limit: int = 1000) -> list[tuple[str, str, int, datetime]]:
        """(cpas, user, profile id, valid_until) of terms ended by ``now`` and not yet recorded."""
        rows = self._s.execute(
            select(AssignmentTerm.cpas_id, AssignmentTerm.user, AssignmentTerm.profile_id, AssignmentTerm.valid_until)
            .where(AssignmentTerm.valid_until <= now, AssignmentTerm.ended_recorded.is_(False))
            .order_by(AssignmentTerm.valid_until, AssignmentTerm.cpas_id, AssignmentTerm.user).limit(limit)
        ).all()
        return [(str(c), str(u), int(p), aware(e)) for c, u, p, e in rows if e is not None]

    def mark_expiry_recorded(self, cpas: str, user: str, profile_id: int) -> bool:
        """Mark one ended term as recorded; False when another transaction did it first (or it is gone)."""
        result = self._s.execute(
            update(AssignmentTerm)
            .where(AssignmentTerm.cpas_id == cpas, AssignmentTerm.user == user,
                   AssignmentTerm.profile_id == profile_id, AssignmentTerm.ended_recorded.is_(False))
            .values(ended_recorded=True))
        return bool(getattr(result, "rowcount", 0))

    def record_expiry_event(self, cpas: str, user: str, profile_id: int, ended: datetime) -> None:
        """The history's mark of an ended term (it changes no state: the term already says when it held)."""
        clock = self._s.info.get(HISTORY_CLOCK)
        version = int(self.versions_of([cpas]).get(cpas, 0))
        self._s.execute(insert(PolicyEvent), [{
            "cpas_id": cpas, "at": self._history_instant(cpas, clock), "version": version, "kind": "expiry",
            "subject": user_subject(user), "payload": {"profile": profile_id, "valid_until": iso(ended)}}])

    def users_page(
        self, cpas: str, *, active: bool, page: int, per_page: int, search: str | None = None
    ) -> tuple[list[User], int]:
        """``search``: every word of it (in any order: "Dupont Nathalie" finds "Nathalie DUPONT") is in the
        user's name or id, case-insensitively."""
        where = [User.cpas_id == cpas, User.active.is_(active)]
        for word in (search or "").lower().split():
            pattern = "%" + _like_escaped(word) + "%"
            where.append(or_(func.lower(User.name).like(pattern, escape=ESCAPE),
                             func.lower(User.user).like(pattern, escape=ESCAPE)))
        total = int(self._s.scalar(select(func.count()).select_from(User).where(and_(*where))) or 0)
        items = self._s.scalars(
            select(User).where(*where).order_by(User.name, User.user).offset((page - 1) * per_page).limit(per_page)
        ).all()
        return list(items), total

    def assignments(self, cpas: str, users: Iterable[str]) -> dict[str, list[int]]:
        """user -> the profile ids assigned to them, in term or not (see ``terms_of``)."""
        subjects = [user_subject(u) for u in users]
        result: dict[str, list[int]] = {}
        if not subjects:
            return result
        rows = self._s.execute(
            select(CasbinRule.v0, CasbinRule.v1).where(
                CasbinRule.ptype == "g", CasbinRule.v2 == cpas, CasbinRule.v0.in_(subjects)
            )
        ).all()
        for subject, role in ((str(a), str(b)) for a, b in rows):
            if role.startswith(PROFILE):
                result.setdefault(subject[len(USER) :], []).append(int(role[len(PROFILE) :]))
        for value in result.values():
            value.sort()
        return result

    # -- decisions --------------------------------------------------------------------------------
    def cpas_policy(self, cpas: str, rules: Rules, at: float | None = None) -> CpasPolicy | None:
        """Version first, rows after: a change committed in between is picked up by the next poll. ``at``:
        the instant the policy decides as of, for time-bound assignments (None: now)."""
        version = self._s.scalar(select(Cpas.policy_version).where(Cpas.id == cpas))
        if version is None:
            return None
        links = self._s.execute(
            select(CasbinRule.v0, CasbinRule.v1).where(CasbinRule.ptype == "g", CasbinRule.v2 == cpas)
        ).all()
        users = self._s.execute(select(User.user, User.active).where(User.cpas_id == cpas)).all()
        descriptions = self._s.execute(
            select(Profile.id, Profile.description_fr, Profile.description_nl).where(Profile.cpas_id == cpas)
        ).all()
        return CpasPolicy(
            cpas,
            int(version),
            rules,
            ((str(a), str(b)) for a, b in links),
            {u: bool(a) for u, a in users},
            {pid: (fr, nl) for pid, fr, nl in descriptions},
            self.terms_of(cpas),
            at,
        )

    def touched(self, cpas: str) -> Touched | None:
        """What this transaction wrote in ``cpas`` that its policy is built from, for ``cpas_policy_after``
        once it commits; None when it did not bump the CPAS's version or wrote in a way that names no
        subject (a new CPAS, bulk rows, the catalog): the policy is then built in full."""
        written = _written(self._s)
        since = written.since.get(cpas)
        if since is None or cpas in written.doubtful or None in written.doubtful:
            return None
        return Touched(since, written.version[cpas], frozenset(written.subjects.get(cpas, ())))

    def cpas_policy_after(self, old: CpasPolicy, touched: Touched, at: float | None = None) -> CpasPolicy | None:
        """``old``, the CPAS's policy at ``touched.since``, brought to the store's present by reading only
        the rows of the subjects ``touched`` names (and the profiles' descriptions, a few rows): equal to
        ``cpas_policy``. None when it would not be: the store's version is not ``touched.version`` (another
        change came in between) or the engine cannot derive it; build in full then. Version first, rows
        after, as ``cpas_policy``."""
        cpas = old.cpas
        if old.version != touched.since:
            return None
        version = self._s.scalar(_VERSION, {"cpas": cpas})
        if version != touched.version:
            return None
        subjects = sorted(touched.subjects)
        links: dict[str, list[str]] = {s: [] for s in subjects}
        ids = [s[len(USER) :] for s in subjects if s.startswith(USER)]
        users: dict[str, bool | None] = dict.fromkeys(ids)
        for start in range(0, len(subjects), 500):
            for child, parent in self._s.execute(_LINKS_OF, {"cpas": cpas, "subjects": subjects[start : start + 500]}):
                links[str(child)].append(str(parent))
        for start in range(0, len(ids), 500):
            rows = self._s.execute(_USERS_OF, {"cpas": cpas, "users": ids[start : start + 500]})
            users.update((str(u), bool(a)) for u, a in rows)
        descriptions = self._s.execute(_DESCRIPTIONS, {"cpas": cpas}).all()
        found = self.terms_of(cpas, ids)
        terms: dict[str, dict[int, Term] | None] = {user: found.get(user) for user in ids}
        return old.with_changes(int(version), links, users, {pid: (fr, nl) for pid, fr, nl in descriptions},
                                terms, old.at if at is None else at)

    def _touch(self, cpas: str, *subjects: str) -> None:
        _written(self._s).subjects.setdefault(cpas, set()).update(subjects)

    def policy_lines(self, cpas: str, at: datetime | None = None) -> list[tuple[str, ...]]:
        """The CPAS's policy as Casbin lines at ``at`` (None: now): the global p lines, then its g lines,
        without the assignments out of their term then (stock Casbin knows no terms: the export is what
        holds at its instant)."""
        p_rows = self._s.execute(
            select(CasbinRule.v0, CasbinRule.v1, CasbinRule.v2, CasbinRule.v3)
            .where(CasbinRule.ptype == "p")
            .order_by(CasbinRule.v2, CasbinRule.v3, CasbinRule.v0)
        ).all()
        g_rows = self._s.execute(
            select(CasbinRule.v0, CasbinRule.v1, CasbinRule.v2)
            .where(CasbinRule.ptype == "g", CasbinRule.v2 == cpas)
            .order_by(CasbinRule.v0, CasbinRule.v1)
        ).all()
        # inactive means denied: an inactive user's links (there should be none) are not part of the policy
        inactive = {user_subject(u) for u in self._s.scalars(
            select(User.user).where(User.cpas_id == cpas, User.active.is_(False)))}
        instant = aware(at or utcnow()).timestamp()
        out_of_term = {(user_subject(user), profile_role(pid)) for user, by_profile in self.terms_of(cpas).items()
                       for pid, term in by_profile.items() if not term.holds(instant)}
        return [("p", *map(str, r)) for r in p_rows] + [
            ("g", *map(str, r)) for r in g_rows if r[0] not in inactive and (str(r[0]), str(r[1])) not in out_of_term]

    # -- audit ------------------------------------------------------------------------------------
    def audit(self, cpas: str | None, actor: str, action: str, target: str, before: Any, after: Any) -> None:
        """Append a row to the CPAS's chain (``cpas`` None: the chain of the rows without a CPAS), hashed with
        the chain's last row's hash.

        No two transactions take the same last row: the chain is locked before its last row is read, until
        the transaction ends. On PostgreSQL that is a transaction-level advisory lock per chain: use cases
        already hold their CPAS's row lock, but the sign-in's lock and unlock rows (under the account's lock
        only) and the rows without a CPAS do not. A transaction that waited for it then reads the last row
        in a new snapshot (READ COMMITTED: one per statement), which has the row of the transaction that
        held the lock, since a lock is released only once its transaction is committed or rolled back; the
        new row's id, drawn after the lock, is then the chain's highest. On SQLite a write transaction holds
        the database's write lock from its BEGIN IMMEDIATE. Whatever happens, ``ix_audit_prev_hash`` is
        unique: a second row after the same one is refused (a conflict), never written."""
        self._lock_chain(cpas)
        last = select(AuditEntry.row_hash).where(_chain(cpas)).order_by(AuditEntry.id.desc()).limit(1)
        prev = self._s.scalar(last) or audit_genesis(cpas)
        at, before, after = utcnow(), as_stored(before), as_stored(after)
        self._s.add(AuditEntry(cpas_id=cpas, at=at, actor=actor, action=action, target=target, before=before,
                               after=after, prev_hash=prev,
                               row_hash=audit_hash(cpas, at, actor, action, target, before, after, prev)))
        self._s.flush()  # the next row of this transaction in the same chain follows this one

    def _lock_chain(self, cpas: str | None) -> None:
        if self._s.get_bind().dialect.name == "postgresql":
            self._s.execute(text("SELECT pg_advisory_xact_lock(:space, :key)"),
                            {"space": AUDIT_LOCKS, "key": _chain_lock_key(cpas)})

    def audit_chains(self) -> list[str | None]:
        """The chains that have rows, by CPAS (None, the rows without a CPAS, first)."""
        found = set(self._s.scalars(select(AuditEntry.cpas_id).distinct()))
        return sorted(found, key=lambda c: (c is not None, c or ""))

    def audit_chain(self, cpas: str | None, *, after: int = 0) -> Iterator[tuple[Any, ...]]:
        """The chain's rows after row ``after``, in order (by id), streamed: (id, at, actor, action, target,
        before, after, prev_hash, row_hash)."""
        query = (
            select(AuditEntry.id, AuditEntry.at, AuditEntry.actor, AuditEntry.action, AuditEntry.target,
                   AuditEntry.before, AuditEntry.after, AuditEntry.prev_hash, AuditEntry.row_hash)
            .where(_chain(cpas), AuditEntry.id > after)
            .order_by(AuditEntry.id)
            .execution_options(yield_per=1000)
        )
        for row in self._s.execute(query):
            yield tuple(row)

    def audit_chain_length(self, cpas: str | None, *, upto: int) -> int:
        """How many rows the chain has up to row ``upto`` (included)."""
        query = select(func.count()).select_from(AuditEntry).where(_chain(cpas), AuditEntry.id <= upto)
        return int(self._s.scalar(query) or 0)

    def audit_link(self, audit_id: int) -> tuple[str | None, str] | None:
        """(CPAS, row_hash) of one row; None if there is no such row."""
        found = self._s.execute(select(AuditEntry.cpas_id, AuditEntry.row_hash).where(AuditEntry.id == audit_id))
        row = found.first()
        return (row[0], row[1]) if row is not None else None

    def _audit_query(self, cpas: str, where: AuditWhere) -> Select[AuditEntry]:
        query = select(AuditEntry).where(AuditEntry.cpas_id == cpas)
        if where.since is not None:
            query = query.where(AuditEntry.at >= where.since)
        if where.until is not None:
            query = query.where(AuditEntry.at < where.until)
        if where.actor:
            query = query.where(AuditEntry.actor == where.actor)
        if where.action:
            query = query.where(AuditEntry.action == where.action)
        return query

    def audit_page(
        self, cpas: str, *, page: int, per_page: int, where: AuditWhere | None = None
    ) -> tuple[list[AuditEntry], int]:
        """One page of the CPAS's audit trail, newest first, and how many entries match in all."""
        query = self._audit_query(cpas, where or AuditWhere())
        total = int(self._s.scalar(select(func.count()).select_from(query.subquery())) or 0)
        items = self._s.scalars(query.order_by(AuditEntry.id.desc()).offset((page - 1) * per_page).limit(per_page))
        return list(items), total

    def audit_rows(self, cpas: str, where: AuditWhere, *, limit: int) -> list[AuditEntry]:
        return list(self._s.scalars(self._audit_query(cpas, where).order_by(AuditEntry.id.desc()).limit(limit)))

    def audit_actions_and_actors(self, cpas: str) -> tuple[list[str], list[str]]:
        """The actions and (at most 500) actors found in the CPAS's trail."""
        actions = self._s.scalars(
            select(AuditEntry.action).where(AuditEntry.cpas_id == cpas).distinct().order_by(AuditEntry.action)
        )
        actors = self._s.scalars(
            select(AuditEntry.actor).where(AuditEntry.cpas_id == cpas).distinct().order_by(AuditEntry.actor).limit(500)
        )
        return list(actions), list(actors)

    # -- credentials ------------------------------------------------------------------------------
    def add_api_key(self, key: ApiKey) -> ApiKey:
        self._s.add(key)
        self._s.flush()
        return key

    def api_keys(self) -> Sequence[ApiKey]:
        return self._s.scalars(select(ApiKey).order_by(ApiKey.id)).all()

    def api_key_by_prefix(self, prefix: str) -> ApiKey | None:
        return self._s.scalar(select(ApiKey).where(ApiKey.prefix == prefix))

    def admin_by_username(self, username: str, *, lock: bool = False) -> AdminAccount | None:
        query = select(AdminAccount).where(AdminAccount.username == username)
        return self._s.scalar(query.with_for_update() if lock else query)

    def add_admin(self, account: AdminAccount) -> AdminAccount:
        self._s.add(account)
        self._s.flush()
        return account

    def shared_secret(self, name: str, make: Callable[[], str]) -> str:
        """The named secret, created by whichever process asks first (the others read the same)."""
        found = self._s.get(ServiceSecret, name)
        if found is None:
            found = ServiceSecret(name=name, value=make())
            self._s.add(found)
            self._s.flush()
        return found.value

    def ping(self) -> None:
        self._s.execute(select(1))

    def notify(self, channel: str, payload: str) -> None:
        """PostgreSQL NOTIFY, sent when (and only if) this transaction commits."""
        self._s.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": channel, "payload": payload})

    # -- failed sign-ins (the login throttle's moving windows) ---------------------------------------
    def take_login_attempt(self, bucket: str, limit: int, at: float, window: float, amount: int = 1) -> bool:
        """Count ``amount`` attempts in ``bucket`` at ``at`` if the window still has room; forget every
        attempt whose window has passed. Returns whether they were counted."""
        self._s.execute(delete(LoginAttempt).where(LoginAttempt.expires <= at))
        used = self._s.scalar(select(func.count()).select_from(LoginAttempt)
                              .where(LoginAttempt.bucket == bucket, LoginAttempt.at > at - window)) or 0
        if used + amount > limit:
            return False
        self._s.add_all(LoginAttempt(bucket=bucket, at=at, expires=at + window) for _ in range(amount))
        return True

    def login_window(self, bucket: str, at: float, window: float) -> tuple[float | None, int]:
        """(the oldest attempt's time, how many) in the window ending at ``at``."""
        count, oldest = self._s.execute(
            select(func.count(), func.min(LoginAttempt.at))
            .where(LoginAttempt.bucket == bucket, LoginAttempt.at > at - window)
        ).one()
        return (float(oldest) if oldest is not None else None), int(count)

    def login_attempts(self, bucket: str, at: float) -> int:
        return int(self._s.scalar(select(func.count()).select_from(LoginAttempt)
                                  .where(LoginAttempt.bucket == bucket, LoginAttempt.expires > at)) or 0)

    def login_attempts_expiry(self, bucket: str) -> float | None:
        latest = self._s.scalar(select(func.max(LoginAttempt.expires)).where(LoginAttempt.bucket == bucket))
        return float(latest) if latest is not None else None

    def forget_login_attempts(self, bucket: str | None = None) -> int:
        """Every counted attempt of ``bucket`` (of every bucket: None) forgotten; returns how many."""
        query = delete(LoginAttempt)
        if bucket is not None:
            query = query.where(LoginAttempt.bucket == bucket)
        return int(self._s.execute(query).rowcount or 0)  # type: ignore[attr-defined]

    # -- history (migration 0007): what a CPAS's policy was built from, at any instant since ------------------
    def record_history(self) -> None:
        """Append to ``policy_history`` what this transaction changed of each CPAS's policy, as it now is (called
        by the session's ``before_commit``: every write path, in its own transaction). A CPAS written in a way
        that names no subject (new, bulk rows) gets a snapshot; a catalog change, every CPAS's new version."""
        written = _written(self._s)
        named = set(written.version) | set(written.subjects) | written.descriptions | set(written.terms)
        named |= {c for c in written.doubtful if c is not None}
        if None in written.doubtful:
            named |= set(self._s.scalars(select(Cpas.id)))
        if not named:
            return
        versions = self.versions_of(named)  # a CPAS gone (none is ever deleted) has nothing left to record
        clock = self._s.info.get(HISTORY_CLOCK)
        rows: list[dict[str, Any]] = []
        for cpas in sorted(versions):
            at, version = self._history_instant(cpas, clock), int(versions[cpas])
            event = {"cpas_id": cpas, "at": at, "version": version}
            if cpas in written.doubtful:
                rows.append({**event, "kind": "snapshot", "subject": None, "payload": self._state_now(cpas)})
                continue
            subjects = sorted(written.subjects.get(cpas, ()))
            links: dict[str, list[str]] = {subject: [] for subject in subjects}
            for start in range(0, len(subjects), 500):
                chunk = subjects[start:start + 500]
                for child, parent in self._s.execute(_LINKS_OF, {"cpas": cpas, "subjects": chunk}):
                    links[str(child)].append(str(parent))
            ids = [subject[len(USER):] for subject in subjects if subject.startswith(USER)]
            users: dict[str, bool | None] = dict.fromkeys(ids)
            for start in range(0, len(ids), 500):
                users.update((str(u), bool(a)) for u, a in self._s.execute(
                    _USERS_OF, {"cpas": cpas, "users": ids[start:start + 500]}))
            rows.extend({**event, "kind": "links", "subject": subject, "payload": sorted(parents)}
                        for subject, parents in links.items())
            rows.extend({**event, "kind": "user", "subject": user, "payload": active} for user, active in users.items())
            if cpas in written.terms:
                changed = sorted(written.terms[cpas])
                found = self.terms_of(cpas, changed)
                rows.extend({**event, "kind": "terms", "subject": user_subject(user),
                             "payload": _terms_json(found.get(user, {}))} for user in changed)
            if cpas in written.descriptions:
                rows.append({**event, "kind": "descriptions", "subject": None, "payload": self._descriptions_now(cpas)})
            if not subjects and cpas not in written.descriptions and cpas not in written.terms:
                rows.append({**event, "kind": "version", "subject": None, "payload": None})
        for start in range(0, len(rows), 5000):
            self._s.execute(insert(PolicyEvent), rows[start:start + 5000])

    def _history_instant(self, cpas: str, clock: Callable[[], datetime] | None) -> datetime:
        """The transaction's instant for the CPAS's history: the database's clock (PostgreSQL's
        ``clock_timestamp()``, read after the CPAS's lock; on SQLite, whose write lock serializes every
        transaction, this process's clock) or the injected ``clock``; always after the CPAS's last row."""
        if clock is not None:
            now = clock()
        elif self._s.get_bind().dialect.name == "postgresql":
            now = self._s.scalar(text("SELECT clock_timestamp()"))
        else:
            now = utcnow()
        now = _aware(now)
        last = self._s.scalar(select(func.max(PolicyEvent.at)).where(PolicyEvent.cpas_id == cpas))
        if last is not None and now <= _aware(last):
            now = _aware(last) + timedelta(microseconds=1)
        return now

    def _descriptions_now(self, cpas: str) -> dict[str, list[str | None]]:
        return {str(pid): [fr, nl] for pid, fr, nl in self._s.execute(_DESCRIPTIONS, {"cpas": cpas})}

    def _state_now(self, cpas: str) -> dict[str, Any]:
        links: dict[str, list[str]] = {}
        for child, parent in self._s.execute(
            select(CasbinRule.v0, CasbinRule.v1).where(CasbinRule.ptype == "g", CasbinRule.v2 == cpas)
        ):
            links.setdefault(str(child), []).append(str(parent))
        users = {str(u): bool(a) for u, a in self._s.execute(_USERS_ALL, {"cpas": cpas})}
        return {"links": {k: sorted(v) for k, v in links.items()}, "users": users,
                "descriptions": self._descriptions_now(cpas),
                "terms": {user: _terms_json(t) for user, t in self.terms_of(cpas).items()}}

    def history_state(self, cpas: str, at: datetime) -> HistoryState | None:
        """The CPAS's policy rows as they were at ``at`` (included): the latest snapshot at or before it with
        every later row up to it applied; None when the history has nothing at or before ``at``."""
        at = _aware(at)
        snap = self._s.execute(
            select(PolicyEvent.at, PolicyEvent.version, PolicyEvent.payload)
            .where(PolicyEvent.cpas_id == cpas, PolicyEvent.kind == "snapshot", PolicyEvent.at <= at)
            .order_by(PolicyEvent.at.desc(), PolicyEvent.id.desc()).limit(1)
        ).first()
        if snap is None:
            return None
        taken, version, payload = snap
        links = {str(k): list(v) for k, v in payload["links"].items()}
        users = {str(k): bool(v) for k, v in payload["users"].items()}
        descriptions = {str(k): list(v) for k, v in payload["descriptions"].items()}
        terms = {str(k): dict(v) for k, v in (payload.get("terms") or {}).items()}  # none before migration 0008
        # a row at the snapshot's own instant is already in it (a purge's snapshot): applied again, it changes nothing
        for kind, subject, value, row_version in self._s.execute(
            select(PolicyEvent.kind, PolicyEvent.subject, PolicyEvent.payload, PolicyEvent.version)
            .where(PolicyEvent.cpas_id == cpas, PolicyEvent.kind != "snapshot", PolicyEvent.at >= taken,
                   PolicyEvent.at <= at)
            .order_by(PolicyEvent.at, PolicyEvent.id)
        ):
            version = max(version, row_version)
            if kind == "links":
                if value:
                    links[str(subject)] = list(value)
                else:
                    links.pop(str(subject), None)
            elif kind == "user":
                if value is None:
                    users.pop(str(subject), None)
                else:
                    users[str(subject)] = bool(value)
            elif kind == "descriptions":
                descriptions = {str(k): list(v) for k, v in value.items()}
            elif kind == "terms":
                user = str(subject)[len(USER):]
                if value:
                    terms[user] = dict(value)
                else:
                    terms.pop(user, None)
        return HistoryState(int(version), links, users, descriptions, terms)

    def cpas_policy_at(self, cpas: str, rules: Rules, at: datetime) -> CpasPolicy | None:
        """The CPAS's policy as it was at ``at`` (with today's catalog rules); None: no history then."""
        state = self.history_state(cpas, at)
        if state is None:
            return None
        return CpasPolicy(cpas, state.version, rules,
                          ((child, parent) for child, parents in state.links.items() for parent in parents),
                          state.users, {int(k): (v[0], v[1]) for k, v in state.descriptions.items()},
                          {user: _terms_from_json(t) for user, t in state.terms.items()}, _aware(at).timestamp())

    def history_since(self, cpas: str) -> datetime | None:
        """The first instant the CPAS's history can answer for (its oldest snapshot), or None."""
        found = self._s.scalar(select(func.min(PolicyEvent.at)).where(
            PolicyEvent.cpas_id == cpas, PolicyEvent.kind == "snapshot"))
        return _aware(found) if found is not None else None

    def purge_history(self, before: datetime) -> int:
        """Forget the history before ``before``: each CPAS that has rows before it gets a snapshot of its state
        at ``before`` (so every instant from ``before`` on is still answered), then those rows are deleted.
        Returns how many rows were deleted."""
        before = _aware(before)
        deleted = 0
        for cpas in sorted(set(self._s.scalars(
                select(PolicyEvent.cpas_id).where(PolicyEvent.at < before).distinct()))):
            state = self.history_state(cpas, before)
            if state is not None:
                self._s.execute(insert(PolicyEvent), [{
                    "cpas_id": cpas, "at": before, "version": state.version, "kind": "snapshot", "subject": None,
                    "payload": {"links": state.links, "users": state.users, "descriptions": state.descriptions,
                                "terms": state.terms}}])
            result = self._s.execute(delete(PolicyEvent).where(PolicyEvent.cpas_id == cpas, PolicyEvent.at < before))
            deleted += int(getattr(result, "rowcount", 0) or 0)
        return deleted

    # -- bulk loading (``generate``: national-scale test data) ----------------------------------------
    def add_profiles(self, profiles: Sequence[Profile]) -> None:
        self._s.add_all(profiles)
        self._s.flush()  # their ids are known from here on

    def bulk_insert(self, cpas: str, users: Sequence[dict[str, Any]], links: Sequence[tuple[str, str]]) -> None:
        """Users as plain rows and the CPAS's links (child, parent), in a few large statements."""
        _written(self._s).doubtful.add(cpas)
        if users:
            self._s.execute(insert(User), list(users))
        rows = [_g(child, parent, cpas) for child, parent in links]
        for start in range(0, len(rows), 20_000):
            self._s.execute(insert(CasbinRule), rows[start : start + 20_000])

    # -- access reviews (migration 0009) ------------------------------------------------------------
    def active_users(self, cpas: str) -> list[User]:
        """The CPAS's active users, by name then user id."""
        query = select(User).where(User.cpas_id == cpas, User.active.is_(True)).order_by(User.name, User.user)
        return list(self._s.scalars(query))

    def add_review(self, review: Review, items: Iterable[ReviewItem]) -> Review:
        self._s.add(review)
        self._s.flush()  # its id
        for item in items:
            item.review_id = review.id
            self._s.add(item)
        self._s.flush()
        return review

    def get_review(self, cpas: str, review_id: int) -> Review | None:
        review = self._s.get(Review, review_id)
        return review if review is not None and review.cpas_id == cpas else None

    def open_review(self, cpas: str) -> Review | None:
        return self._s.scalar(select(Review).where(Review.cpas_id == cpas, Review.closed_at.is_(None)))

    def reviews(self, cpas: str) -> list[Review]:
        """The CPAS's reviews, newest first."""
        return list(self._s.scalars(select(Review).where(Review.cpas_id == cpas).order_by(Review.id.desc())))

    def review_counts(self, review_ids: Iterable[int]) -> dict[int, tuple[int, int]]:
        """Review id -> (items, decided items)."""
        ids = list(review_ids)
        if not ids:
            return {}
        decided = func.count(ReviewItem.decision)  # counts the non-null decisions
        rows = self._s.execute(select(ReviewItem.review_id, func.count(), decided)
                               .where(ReviewItem.review_id.in_(ids)).group_by(ReviewItem.review_id))
        return {int(r): (int(total), int(done)) for r, total, done in rows}

    def review_items(self, review_id: int) -> list[ReviewItem]:
        """By name then user id."""
        query = select(ReviewItem).where(ReviewItem.review_id == review_id).order_by(ReviewItem.name, ReviewItem.user)
        return list(self._s.scalars(query))

    def review_item(self, review_id: int, user: str) -> ReviewItem | None:
        return self._s.scalar(select(ReviewItem).where(ReviewItem.review_id == review_id, ReviewItem.user == user))

    def last_closed_reviews(self, cpas_ids: Iterable[str] | None) -> dict[str, datetime]:
        """CPAS -> when its latest review was closed (CPAS without a closed review left out)."""
        query = select(Review.cpas_id, func.max(Review.closed_at)).where(Review.closed_at.is_not(None))
        if cpas_ids is not None:
            query = query.where(Review.cpas_id.in_(list(cpas_ids)))
        return {str(c): _aware(at) for c, at in self._s.execute(query.group_by(Review.cpas_id)) if at is not None}

    def open_reviews(self, cpas_ids: Iterable[str] | None) -> list[Review]:
        query = select(Review).where(Review.closed_at.is_(None))
        if cpas_ids is not None:
            query = query.where(Review.cpas_id.in_(list(cpas_ids)))
        return list(self._s.scalars(query))


# the statements of Store.cpas_policy_after, built once (a change's rebuild is a few small reads)
_VERSION = select(Cpas.policy_version).where(Cpas.id == bindparam("cpas"))
_LINKS_OF = select(CasbinRule.v0, CasbinRule.v1).where(
    CasbinRule.ptype == "g",
    CasbinRule.v2 == bindparam("cpas"),
    CasbinRule.v0.in_(bindparam("subjects", expanding=True)),
)
_USERS_OF = select(User.user, User.active).where(
    User.cpas_id == bindparam("cpas"), User.user.in_(bindparam("users", expanding=True))
)
_USERS_ALL = select(User.user, User.active).where(User.cpas_id == bindparam("cpas"))
_DESCRIPTIONS = select(Profile.id, Profile.description_fr, Profile.description_nl).where(
    Profile.cpas_id == bindparam("cpas")
)

WRITTEN = "authz_written"  # session.info key: what this transaction wrote that policies are built from


@dataclass(frozen=True)
class HistoryState:
    """A CPAS's policy rows at an instant, from its history: subject -> parents, user -> active, profile id (as
    text) -> [description_fr, description_nl], and the CPAS's version then."""

    version: int
    links: dict[str, list[str]]
    users: dict[str, bool]
    descriptions: dict[str, list[str | None]]
    terms: dict[str, dict[str, list[str | None]]] = field(default_factory=dict)  # user -> profile id -> bounds


def _terms_json(terms: dict[int, Term]) -> dict[str, list[str | None]]:
    """A user's terms as the history keeps them: profile id (as text) -> [valid_from, valid_until] in ISO."""
    return {str(pid): [None if t.valid_from is None else iso(t.valid_from),
                       None if t.valid_until is None else iso(t.valid_until)] for pid, t in sorted(terms.items())}


def _terms_from_json(terms: dict[str, list[str | None]]) -> dict[int, Term]:
    def instant(text: str | None) -> datetime | None:
        return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))

    return {int(pid): Term.of(instant(bounds[0]), instant(bounds[1])) for pid, bounds in terms.items()}


def _aware(moment: datetime) -> datetime:
    """In UTC, with its zone (SQLite hands back naive datetimes, always written in UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass
class _Written:
    """Per write transaction and CPAS: the version before its first bump and after its last, and the
    subjects whose ``g`` rows or user row it wrote; ``doubtful``: CPAS written in ways that name no
    subject (None: every CPAS). Read by ``Store.touched``."""

    since: dict[str, int] = field(default_factory=dict)
    version: dict[str, int] = field(default_factory=dict)
    subjects: dict[str, set[str]] = field(default_factory=dict)
    doubtful: set[str | None] = field(default_factory=set)
    descriptions: set[str] = field(default_factory=set)  # CPAS whose profiles were added, deleted or renamed
    terms: dict[str, set[str]] = field(default_factory=dict)  # CPAS -> users whose assignment terms were written


def _written(session: Session) -> _Written:
    found = session.info.get(WRITTEN)
    if not isinstance(found, _Written):
        found = session.info[WRITTEN] = _Written()
    return found


@event.listens_for(User.active, "set")
def _user_active_set(target: User, value: Any, oldvalue: Any, initiator: Any) -> None:
    """A user made active or inactive by whatever code, not only through ``Store``'s methods, is a
    touched subject of its transaction (inactive means denied)."""
    session = object_session(target)
    if session is not None:
        _written(session).subjects.setdefault(target.cpas_id, set()).add(user_subject(target.user))


@event.listens_for(Profile.description_fr, "set")
@event.listens_for(Profile.description_nl, "set")
def _description_set(target: Profile, value: Any, oldvalue: Any, initiator: Any) -> None:
    session = object_session(target)
    if session is not None and target.cpas_id is not None:
        _written(session).descriptions.add(target.cpas_id)


@event.listens_for(Session, "before_commit")
def _record_history(session: Session) -> None:
    """Every committed change leaves its history (``Store.record_history``) in its own transaction."""
    if isinstance(session.info.get(WRITTEN), _Written):
        Store(session).record_history()
        session.info.pop(WRITTEN, None)  # recorded: a later transaction of the session starts afresh


AUDIT_LOCKS = 0x61756474  # "audt": the advisory locks of the audit chains (the first of the two keys)


def _chain(cpas: str | None) -> Any:
    return AuditEntry.cpas_id.is_(None) if cpas is None else AuditEntry.cpas_id == cpas


def _chain_lock_key(cpas: str | None) -> int:
    """The chain's advisory lock (the second key, 32 bits): two chains sharing one only wait for each other."""
    return int.from_bytes(hashlib.sha256((cpas or "").encode()).digest()[:4], "big", signed=True)


def listen(connection: Any, channel: str) -> None:
    """Subscribe a dedicated psycopg connection (autocommit, outside any session) to ``channel``'s NOTIFY."""
    connection.execute(f"LISTEN {channel}")


def ping_listener(connection: Any) -> None:
    connection.execute("SELECT 1")


def policy_csv(lines: Iterable[tuple[str, ...]]) -> str:
    """Casbin's own CSV convention, ``p, a, b``: no value of ours holds a comma or a quote."""
    return "".join(", ".join(line) + "\n" for line in lines)


ESCAPE = "\\"


def _like_escaped(text: str) -> str:
    """``text`` matched literally by LIKE ... ESCAPE (no wildcard of the reader's)."""
    return text.replace(ESCAPE, ESCAPE * 2).replace("%", ESCAPE + "%").replace("_", ESCAPE + "_")


def _p(sub: str, obj: str, eft: str) -> dict[str, Any]:
    return {"ptype": "p", "v0": sub, "v1": ANY_CPAS, "v2": obj, "v3": eft, "v4": None, "v5": None}


def _g(child: str, parent: str, cpas: str) -> dict[str, Any]:
    return {"ptype": "g", "v0": child, "v1": parent, "v2": cpas, "v3": None, "v4": None, "v5": None}
