"""Use cases shared by the JSON admin API, the web UI and the CLI: every administrative change.

Each method works inside the caller's transaction (``Store`` wraps its session; ``Service.change`` opens
it), checks everything before writing, bumps the CPAS's policy version and writes one audit row with
before/after. It never commits: the caller's transaction commits everything at once or nothing. It
answers with what ``reads`` shows of the result (frozen, read in the same transaction), so the caller
renders it without going back to the store. Refusals are the typed errors of ``errors.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from . import reads
from .catalog import REGIONS, Catalog
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
    InvalidRequest,
    InvalidTerm,
    ProfileAssigned,
    ProfileIncluded,
    ProfileMissing,
    ProfileNotFound,
    RegionUnknown,
    ReviewClosed,
    ReviewDateInvalid,
    ReviewDecisionUnknown,
    ReviewItemDecided,
    ReviewItemUnknown,
    ReviewOpen,
    ReviewUndecided,
    ReviewUnknown,
    StaleVersion,
    UserInactive,
    UserNotFound,
)
from .models import AdminAccount, Cpas, Profile, User, iso, utcnow
from .models import Review as StoredReview
from .models import ReviewItem as StoredReviewItem
from .reads import Account, CpasInfo, ProfileDetail, ProfileRef, UserDetail
from .store import Store
from .terms import Assignment, Term, assignments, brussels_day, end_of

REVIEW_COMMENT_MAX = 500
LAST_REVIEW_DATE = date(9998, 12, 31)  # a review's dates (due, keep_until) stop here: their ends stay representable
MAX_FAILED_LOGINS = 5  # wrong passwords within LOCK_MINUTES that lock a local admin account
LOCK_MINUTES = 15
BUILTIN_FR = "Tous les accès"
BUILTIN_NL = "Alle toegangen"


def description_key(text: str | None) -> str | None:
    """What must be unique among a CPAS's descriptions (key_fr/key_nl and their unique constraints):
    NFKC + case folding + invisible characters dropped + white space collapsed (inputs.comparison_key),
    so that "Full", "FULL ", "Ｆｕｌｌ" and "Full" + U+200B are one description. None for no text."""
    from .inputs import comparison_key  # here, not at the top: this module's imports stay as they are

    return (comparison_key(text) or None) if text else None


@dataclass
class Admin:
    store: Store
    catalog: Catalog
    actor: str
    max_inclusion_depth: int = 5
    # the CPAS the use cases of this transaction changed, with their new policy versions, and the last
    # change's version (the consistency token of its answer)
    changed: dict[str, int] = field(default_factory=dict)
    policy_version: int | None = None
    # the wall clock of the use cases that keep dates (access reviews: "today" is its Brussels date);
    # Service hands over its own, which tests inject
    clock: Callable[[], datetime] = utcnow

    def _lock(self, cpas: str) -> Cpas:
        """Every change of a CPAS starts here: bump its policy version, which also takes the CPAS's write
        lock (a row lock on PostgreSQL, the database lock on SQLite), so that whatever the use case reads
        next (a user's active flag, a profile's version, whether it still exists) cannot change under it.
        UnknownCpas if there is no such CPAS."""
        version = self.store.bump_version(cpas)
        if not version:
            raise CpasUnknown(cpas)
        self.changed[cpas] = self.policy_version = version
        row = self.store.get_cpas(cpas)
        assert row is not None
        return row

    # -- CPAS ----------------------------------------------------------------------------------------
    def create_cpas(self, cpas: str, name_fr: str, name_nl: str, region: str) -> CpasInfo:
        if region not in REGIONS:
            raise RegionUnknown(REGIONS)
        if self.store.get_cpas(cpas) is not None:
            raise CpasExists(cpas)
        row = Cpas(id=cpas, name_fr=name_fr.strip(), name_nl=name_nl.strip(), region=region, policy_version=1)
        self.store.add_cpas(row)
        self.store.announce(cpas)
        self.changed[cpas] = self.policy_version = row.policy_version
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
        return reads.cpas_info(self.store, cpas)

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
    ) -> ProfileDetail:
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
        return reads.profile_detail(self.store, self.catalog, cpas, profile.id)

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
        builtin_descriptions_only: bool = False,
    ) -> ProfileDetail:
        """``functions``/``includes`` None: kept as they are. The built-in profile always holds every
        function and includes nothing: anything else is refused (BuiltinUnchangeable), unless
        ``builtin_descriptions_only`` (the web UI's form, where they are shown but disabled), which saves
        only its descriptions."""
        self._lock(cpas)
        profile = require_profile(self.store, cpas, profile_id)
        if profile.version != version:
            raise StaleVersion(profile_id, profile.version, version)
        before = self.profile_snapshot(profile)
        if profile.builtin and builtin_descriptions_only:
            functions = includes = None
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
        self.store.flush()
        if codes is not None and not profile.builtin:
            self.store.set_profile_functions(cpas, profile.id, codes)
        if included is not None and not profile.builtin:
            self.store.set_profile_includes(cpas, profile.id, included)
        self.store.audit(cpas, self.actor, "profile.update", f"profile:{profile.id}", before,
                         self.profile_snapshot(profile))
        return reads.profile_detail(self.store, self.catalog, cpas, profile.id)

    def delete_profile(self, cpas: str, profile_id: int) -> ProfileRef:
        """Answers what the profile was called."""
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
        gone = reads.profile_ref(self.store, cpas, profile_id)
        self.store.delete_profile(profile)
        self.store.audit(cpas, self.actor, "profile.delete", f"profile:{profile_id}", before, None)
        return gone

    # -- users ---------------------------------------------------------------------------------------
    def user_snapshot(self, user: User) -> dict[str, Any]:
        return {
            "user": user.user,
            "name": user.name,
            "lang": user.lang,
            "active": user.active,
            "profiles": self.store.user_profiles(user.cpas_id, user.user),
            **terms_snapshot(self.store.user_terms(user.cpas_id, user.user)),
        }

    def user_seen(self, cpas: str, user: str, *, name: str, lang: str) -> tuple[UserDetail, bool]:
        """Called by applications at login. Returns (user, created). Inactive users stay inactive."""
        if self.store.lock_cpas(cpas) is None:  # two first logins of one user: the second waits, sees the first
            raise CpasUnknown(cpas)
        row = self.store.get_user(cpas, user)
        name = " ".join(name.split())
        if row is None:
            self._lock(cpas)
            row = self.store.add_user(User(cpas_id=cpas, user=user, name=name, lang=lang, active=True))
            self.store.audit(cpas, self.actor, "user.first_login", f"user:{user}", None, self.user_snapshot(row))
            return reads.user_detail(self.store, cpas, user), True
        if (name and row.name != name) or row.lang != lang:
            before = self.user_snapshot(row)
            row.name = name or row.name
            row.lang = lang
            self.store.audit(cpas, self.actor, "user.update", f"user:{user}", before, self.user_snapshot(row))
        row.last_seen_at = utcnow()
        self.store.flush()
        return reads.user_detail(self.store, cpas, user), False

    def set_user_profiles(self, cpas: str, user: str, items: Iterable[int | Assignment]) -> UserDetail:
        """Replace the user's profiles: plain profile ids (no term) or ``Assignment``s with their term
        (``terms.py``). Giving an active user exactly the profiles and terms they hold changes nothing: no
        new policy version, no audit entry (the answer is what they hold)."""
        # the CPAS's write lock before any read (as in _lock), without a new version yet: a deactivation
        # committed meanwhile is seen here, never a user row read before it
        if self.store.lock_cpas(cpas) is None:
            raise CpasUnknown(cpas)
        row = require_user(self.store, cpas, user)
        if not row.active:
            raise UserInactive(user)
        wanted = assignments(items)
        ids = sorted(wanted)
        terms = {pid: a.term for pid, a in wanted.items() if a.bounded}
        for pid, a in wanted.items():
            if a.valid_from is not None and a.valid_until is not None and a.valid_until <= a.valid_from:
                raise InvalidTerm(pid)
        if self.store.user_profiles(cpas, user) == ids and self.store.user_terms(cpas, user) == terms:
            return reads.user_detail(self.store, cpas, user)
        self._lock(cpas)
        for pid in ids:
            if self.store.get_profile(cpas, pid) is None:
                raise ProfileMissing(pid, cpas, included=False)
        before = self.user_snapshot(row)
        self.store.set_user_profiles(cpas, user, wanted.values())
        self.store.audit(cpas, self.actor, "user.assign", f"user:{user}", before, self.user_snapshot(row))
        return reads.user_detail(self.store, cpas, user)

    def record_expiries(self, limit: int = 1000) -> int:
        """Write each assignment term that has ended (by ``clock``) and is not yet recorded to the CPAS's audit
        trail (``assignment.expired``) and history (an ``expiry`` event), once, whichever worker or instance
        gets there first. The decisions did not wait for this: they follow the term to the instant. Returns
        how many were recorded."""
        done = 0
        for cpas, user, profile_id, ended in self.store.expiries_due(self.clock(), limit):
            if self.store.lock_cpas(cpas) is None or not self.store.mark_expiry_recorded(cpas, user, profile_id):
                continue  # recorded meanwhile by another transaction
            self.store.record_expiry_event(cpas, user, profile_id, ended)
            self.store.audit(cpas, self.actor, "assignment.expired", f"user:{user}",
                             {"profile": profile_id, "valid_until": iso(ended)}, None)
            done += 1
        return done

    def deactivate_user(self, cpas: str, user: str) -> UserDetail:
        self._lock(cpas)
        row = require_user(self.store, cpas, user)
        before = self.user_snapshot(row)
        self.store.set_user_profiles(cpas, user, ())
        row.active = False
        self.store.flush()
        self.store.audit(cpas, self.actor, "user.deactivate", f"user:{user}", before, self.user_snapshot(row))
        return reads.user_detail(self.store, cpas, user)

    def reactivate_user(self, cpas: str, user: str) -> UserDetail:
        self._lock(cpas)
        row = require_user(self.store, cpas, user)
        before = self.user_snapshot(row)
        self.store.set_user_profiles(cpas, user, ())
        row.active = True
        self.store.flush()
        self.store.audit(cpas, self.actor, "user.reactivate", f"user:{user}", before, self.user_snapshot(row))
        return reads.user_detail(self.store, cpas, user)


    # -- local admin accounts (the web UI's sign-in) ------------------------------------------------
    def set_account_language(self, username: str, lang: str) -> None:
        """The account keeps the language chosen in the UI for its next sign-in."""
        row = self.store.admin_by_username(username, lock=True)
        if row is not None:
            row.lang = lang

    def end_account_sessions(self, username: str) -> None:
        """Every session of the account ends, on every worker and instance (sign-out)."""
        row = self.store.admin_by_username(username, lock=True)
        if row is not None:
            row.end_sessions()

    def record_sign_in(self, username: str, *, right: bool, checked_hash: str, at: datetime,
                       address: str | None) -> SignIn:
        """Count a password check made outside the transaction (it is slow), under the account's row lock
        so that every worker and instance agrees. ``right``: the password matched ``checked_hash``.

        MAX_FAILED_LOGINS wrong passwords within LOCK_MINUTES (counted from the first of them) lock the
        account for LOCK_MINUTES and end its sessions; a right password resets the count; the first
        attempt after a lock expired unlocks it. Lock and unlock are audited in each CPAS of the account.
        A locked, inactive or vanished account, or a password changed meanwhile, is refused like a wrong
        password (``SignIn.account`` None)."""
        row = self.store.admin_by_username(username, lock=True)
        if row is None or not row.active:
            return SignIn(None)
        if row.locked_until is not None:
            if aware(row.locked_until) > at:
                return SignIn(None)
            row.locked_until, row.failed_logins, row.failed_since = None, 0, None
            self._audit_account(row, "admin.unlocked", {"reason": "expired"})
        if right and row.password_hash == checked_hash:
            row.failed_logins, row.failed_since = 0, None
            if not row.session_epoch:
                row.end_sessions()  # its first epoch
            self.store.flush()
            found = reads.account(self.store, username)
            return SignIn(found)
        window = timedelta(minutes=LOCK_MINUTES)
        if row.failed_since is None or aware(row.failed_since) + window <= at:
            row.failed_logins, row.failed_since = 0, at
        row.failed_logins += 1
        if row.failed_logins < MAX_FAILED_LOGINS:
            return SignIn(None)
        row.failed_logins, row.failed_since = 0, None
        row.locked_until = at + window
        row.end_sessions()
        self._audit_account(row, "admin.locked", {"minutes": LOCK_MINUTES, "from": address})
        return SignIn(None, locked=True)

    def _audit_account(self, row: AdminAccount, action: str, after: dict[str, Any]) -> None:
        """One row in each CPAS of the account, so that its Admin-Logs show it (one without a CPAS for an
        operator)."""
        for cpas in sorted(row.cpas) if row.cpas else [None]:  # one order: no two sign-ins lock chains crosswise
            self.store.audit(cpas, self.actor, action, f"admin:{row.username}", None, after)

    # -- access reviews ------------------------------------------------------------------------------
    # None of them changes the policy by itself (the CPAS's lock without a new version); a decision that
    # revokes or bounds assignments goes through set_user_profiles, which moves the version and audits.
    def _review_lock(self, cpas: str) -> date:
        """The CPAS's write lock, then "today" (the Brussels date of this use case's instant)."""
        if self.store.lock_cpas(cpas) is None:
            raise CpasUnknown(cpas)
        return brussels_day(self.clock())

    def _open_review(self, cpas: str, review_id: int) -> StoredReview:
        review = self.store.get_review(cpas, review_id)
        if review is None:
            raise ReviewUnknown(review_id, cpas)
        if review.closed_at is not None:
            raise ReviewClosed(review_id)
        return review

    def start_review(self, cpas: str, due: date) -> reads.ReviewDetail:
        """Start the CPAS's access review, due on ``due`` (today or later): every active user's assignments
        are frozen as they are now (profiles with their descriptions and terms), one item per user, an
        inactive user is left out. Refused while another review of the CPAS is open."""
        today = self._review_lock(cpas)
        if due < today:
            raise ReviewDateInvalid("due", "due", today.isoformat())
        if due > LAST_REVIEW_DATE:
            raise ReviewDateInvalid("range", "due", today.isoformat())
        found = self.store.open_review(cpas)
        if found is not None:
            raise ReviewOpen(found.id)
        users = self.store.active_users(cpas)
        held = self.store.assignments(cpas, [u.user for u in users])
        profiles = {p.id: p for p in self.store.profiles(cpas)}
        items = []
        for row in users:
            ids = [pid for pid in held.get(row.user, ()) if pid in profiles]
            terms = self.store.user_terms(cpas, row.user) if ids else {}
            frozen = []
            for pid in ids:
                term = terms.get(pid)
                frozen.append(reads.FrozenAssignment(
                    pid, profiles[pid].description_fr, profiles[pid].description_nl,
                    term.valid_from if term is not None else None, term.valid_until if term is not None else None,
                ).as_json())
            items.append(StoredReviewItem(user=row.user, name=row.name, assignments=frozen))
        review = self.store.add_review(
            StoredReview(cpas_id=cpas, due=due, started_by=self.actor, started_at=self.clock()), items)
        self.store.audit(cpas, self.actor, "review.start", f"review:{review.id}", None,
                         {"review": review.id, "due": due.isoformat(), "users": len(items)})
        return reads.review_detail(self.store, cpas, review.id)

    def decide_review_item(self, cpas: str, review_id: int, user: str, decision: str, until: date | None = None,
                           comment: str | None = None) -> reads.ReviewDecision:
        """The reviewer's decision on one user of an open review, final once made: ``keep``; ``revoke`` (the
        frozen profiles the user still holds are removed now); ``keep_until`` (they end at the end of
        ``until``, a date after today, Brussels time; an earlier end they already have stays). Both go
        through ``set_user_profiles`` in this transaction (its ``user.assign`` entry, a new policy version);
        profiles not frozen in the review keep their terms. For a user inactive now the decision is
        recorded and nothing else changes: an inactive user holds nothing usable, and reactivation gives
        them no profile."""
        today = self._review_lock(cpas)
        review = self._open_review(cpas, review_id)
        item = self.store.review_item(review.id, user)
        if item is None:
            raise ReviewItemUnknown(review_id, user)
        if item.decision is not None:
            raise ReviewItemDecided(review_id, user, item.decision)
        if decision not in reads.REVIEW_DECISIONS:
            raise ReviewDecisionUnknown(decision)
        if decision == "keep_until":
            if until is None or until <= today:
                raise ReviewDateInvalid("until", "until", today.isoformat())
            if until > LAST_REVIEW_DATE:
                raise ReviewDateInvalid("range", "until", today.isoformat())
        elif until is not None:
            raise ReviewDateInvalid("until_unexpected", "until", today.isoformat())
        comment = (comment or "").strip() or None
        if comment is not None and len(comment) > REVIEW_COMMENT_MAX:
            raise InvalidRequest(f"a comment holds at most {REVIEW_COMMENT_MAX} characters", {"field": "comment"})
        row = self.store.get_user(cpas, user)
        if decision != "keep" and row is not None and row.active:
            self._apply_review_decision(cpas, user, item, until if decision == "keep_until" else None)
        item.decision, item.until, item.comment = decision, until, comment
        item.decided_by, item.decided_at = self.actor, self.clock()
        self.store.flush()
        self.store.audit(cpas, self.actor, "review.decide", f"review:{review.id}", None,
                         {"review": review.id, "user": user, "decision": decision,
                          "until": None if until is None else until.isoformat(), "comment": comment})
        return reads.ReviewDecision(reads.review_summary(self.store, cpas, review.id), reads.review_item_of(item),
                                    reads.policy_version(self.store, cpas))

    def _apply_review_decision(self, cpas: str, user: str, item: StoredReviewItem, until: date | None) -> None:
        """``until`` None: revoke the frozen profiles the user still holds; else bound them to its end."""
        frozen = {int(a["profile_id"]) for a in item.assignments or ()}
        held = self.store.user_profiles(cpas, user)
        if not frozen.intersection(held):
            return  # nothing reviewed is still held: nothing to change
        terms = self.store.user_terms(cpas, user)
        wanted: list[int | Assignment] = []
        for pid in held:
            term = terms.get(pid)
            start = term.valid_from if term is not None else None
            end = term.valid_until if term is not None else None
            if pid in frozen:
                if until is None:
                    continue
                end = end_of(until) if end is None else min(end, end_of(until))
                if start is not None and end <= start:
                    continue  # it would end before it begins: it never holds
            wanted.append(Assignment(pid, start, end))
        self.set_user_profiles(cpas, user, wanted)

    def close_review(self, cpas: str, review_id: int) -> reads.ReviewSummary:
        """Sign the review off (who, when) once every item is decided; it is read-only from then on."""
        self._review_lock(cpas)
        review = self._open_review(cpas, review_id)
        total, decided = self.store.review_counts([review.id]).get(review.id, (0, 0))
        if decided < total:
            raise ReviewUndecided(review_id, total - decided)
        review.closed_by, review.closed_at = self.actor, self.clock()
        self.store.flush()
        self.store.audit(cpas, self.actor, "review.close", f"review:{review.id}", None,
                         {"review": review.id, "users": total})
        return reads.review_summary(self.store, cpas, review.id)


@dataclass(frozen=True)
class SignIn:
    account: Account | None  # signed in; None: refused, whatever the reason
    locked: bool = False  # this attempt locked the account


def aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)  # SQLite drops the zone


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


def terms_snapshot(terms: dict[int, Term]) -> dict[str, Any]:
    """The ``terms`` of a user's audit snapshot (left out when none: entries from before terms keep their form):
    profile id -> {valid_from, valid_until} in ISO (null: unbounded)."""
    if not terms:
        return {}
    return {"terms": {str(pid): reads.term_json(t) for pid, t in sorted(terms.items())}}


def cpas_snapshot(row: Cpas) -> dict[str, Any]:
    return {"cpas": row.id, "name_fr": row.name_fr, "name_nl": row.name_nl, "region": row.region}
