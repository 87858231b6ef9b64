"""Incremental rebuilds (issue 12): a change made here derives the CPAS's new policy from the live one and
the rows of what it touched (``CpasPolicy.with_changes`` through ``Store.cpas_policy_after``). The derived
policy must equal a full build from the store, always, and decide like stock pycasbin on the export.

- the engine alone: random graphs (cycles, chains past pycasbin's hierarchy limit, users without a row,
  inactive users) changed at random, derived step after step, against a policy built from the new rows;
- the service: random sequences of changes through the use cases (refusals, several use cases in one
  transaction, a change by another instance in between), after each one the installed policy against a
  full build from the store and, now and then, stock pycasbin on the exported ``policy.csv``;
- the hint path is the one taken: no full build after a change made here, the untouched users' entries
  shared with the old policy, which is left as it was; a full build when another change came in between.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import casbin
import pytest

from authz_service.admin import Admin
from authz_service.catalog import REGIONS
from authz_service.cli import init_db
from authz_service.config import load_settings
from authz_service.engine import MAX_HOPS, CpasPolicy, Rules
from authz_service.errors import ServiceError
from authz_service.service import Service
from authz_service.store import Store, policy_csv

from .test_differential import kbo, random_catalog

ROOT = Path(__file__).resolve().parent.parent


def state(policy: CpasPolicy) -> tuple[Any, ...]:
    """Everything a decision reads, order aside (a derived policy lists a subject's links in its own order)."""
    return (
        policy.cpas,
        policy.version,
        {k: frozenset(v) for k, v in policy._graph.items()},
        dict(policy._users),
        dict(policy._effective),
        dict(policy.descriptions),
    )


def same(derived: CpasPolicy, full: CpasPolicy, functions: list[str], subjects: list[str]) -> None:
    assert state(derived) == state(full)
    assert derived._subjects == full._subjects
    for function in functions:
        assert derived.users_allowed(function) == full.users_allowed(function), function
    for user in subjects:
        assert derived.view(user) == full.view(user), user
        for function in functions[::3]:
            assert derived.decide(user, function, explain=True) == full.decide(user, function, explain=True)


# -- the engine alone ------------------------------------------------------------------------------------
N_FUNCTIONS = 8
RULES = Rules.from_rows(
    [(f"function:f{i}", "*", f"f{i}", "allow") for i in range(N_FUNCTIONS)]
    + [("function:f0", "*", "a0", "allow"), ("function:f3", "*", "a3", "allow")]  # covered actions
    + [("function:f1", "*", "f2", "deny"), ("function:f1", "*", "f4", "deny"), ("function:f2", "*", "f4", "deny"),
       ("function:f5", "*", "a3", "deny")]  # prerequisites
)
ACTIONS = [f"f{i}" for i in range(N_FUNCTIONS)] + ["a0", "a3", "nothing"]
CHAIN = 12  # profiles 100 -> 101 -> ... -> 111 -> f0: held from 100, f0 is past the hierarchy limit


def random_parents(rng: random.Random, subject: str, profiles: list[str]) -> list[str]:
    if subject.startswith("user:"):
        return rng.sample(profiles, k=rng.choice([0, 1, 1, 2, 3]))
    if int(subject[len("profile:"):]) >= 100:
        i = int(subject[len("profile:"):]) - 100
        nxt = [f"profile:{101 + i}"] if i + 1 < CHAIN else ["function:f0"]
        return nxt if rng.random() < 0.8 else rng.sample(profiles, k=1)
    parents = [f"function:f{i}" for i in rng.sample(range(N_FUNCTIONS), k=rng.randint(0, 4))]
    return parents + rng.sample(profiles, k=rng.choice([0, 0, 1, 2]))  # cycles welcome


def build(rng: random.Random, version: int, links: dict[str, list[str]], users: dict[str, bool],
          descriptions: dict[int, tuple[str | None, str | None]]) -> CpasPolicy:
    """A full build from these rows, in a random order."""
    rows = [(s, p) for s, parents in links.items() for p in parents]
    rng.shuffle(rows)
    return CpasPolicy("0200000000", version, RULES, rows, users, descriptions)


def test_derived_equals_built_on_random_graphs() -> None:
    rng = random.Random(12)
    for _ in range(20):
        profiles = [f"profile:{i}" for i in range(8)] + [f"profile:{100 + i}" for i in range(CHAIN)]
        user_ids = [f"u{i}" for i in range(16)]
        subjects = [*profiles, *(f"user:{u}" for u in user_ids), "user:ghost"]  # ghost: links, no user row
        links = {s: random_parents(rng, s, profiles) for s in subjects}
        users: dict[str, bool] = {u: rng.random() < 0.85 for u in user_ids[:-2]}  # the last two: no row yet
        descriptions = {1: ("Un", None)}
        policy = build(rng, 1, links, users, descriptions)
        for step in range(2, 14):
            before = state(policy)
            touched = rng.sample(subjects, k=rng.randint(1, 4))
            for subject in touched:
                links[subject] = random_parents(rng, subject, profiles)
            changed_users: dict[str, bool | None] = {}
            for user in rng.sample(user_ids, k=rng.randint(0, 2)):
                choice = rng.choice([True, False, None])  # made active, inactive, or its row removed
                changed_users[user] = choice
                if choice is None:
                    users.pop(user, None)
                else:
                    users[user] = choice
            descriptions = {**descriptions, step: (None, f"P{step}")}
            derived = policy.with_changes(step, {s: links[s] for s in touched}, changed_users, descriptions)
            assert derived is not None
            assert state(policy) == before  # the installed policy is left as it was
            same(derived, build(rng, step, links, users, descriptions), ACTIONS, [*user_ids, "ghost", "nobody"])
            policy = derived


def test_chains_reach_as_far_as_pycasbin() -> None:
    """A user whose chain grows past MAX_HOPS links, one link at a time, loses the function exactly where a
    full build (and pycasbin: tests/cases/hierarchy_depth.yaml) does."""
    links: dict[str, list[str]] = {"user:u": ["profile:0"], "profile:0": ["function:f0"]}
    policy = CpasPolicy("0200000000", 1, RULES, [(s, p) for s, ps in links.items() for p in ps], {"u": True})
    for n in range(1, MAX_HOPS + 2):
        links[f"profile:{n - 1}"] = [f"profile:{n}"]
        links[f"profile:{n}"] = ["function:f0"]
        derived = policy.with_changes(n + 1, {f"profile:{n - 1}": links[f"profile:{n - 1}"],
                                              f"profile:{n}": links[f"profile:{n}"]}, {}, {})
        assert derived is not None
        full = CpasPolicy("0200000000", n + 1, RULES, [(s, p) for s, ps in links.items() for p in ps], {"u": True})
        assert state(derived) == state(full)
        assert derived.allows("u", "f0") is (n + 2 <= MAX_HOPS), n  # user, n + 1 profiles, the function
        policy = derived


def test_links_outside_the_use_cases_shape_are_built_in_full() -> None:
    rows = [("user:u", "profile:1"), ("profile:1", "function:f0")]
    plain = CpasPolicy("0200000000", 1, RULES, rows, {"u": True})
    assert plain.with_changes(2, {"profile:1": ["user:v"]}, {}, {}) is None  # a link to a user
    assert plain.with_changes(2, {"function:f0": ["profile:1"]}, {}, {}) is None  # a function with links
    odd = CpasPolicy("0200000000", 1, RULES, [*rows, ("profile:2", "user:u")], {"u": True})
    assert odd.with_changes(2, {"user:u": []}, {}, {}) is None


# -- the service ------------------------------------------------------------------------------------------
@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    rng = random.Random(2026)
    random_catalog(rng, tmp_path, n_selectable=24)
    base = {"database_url": f"sqlite:///{tmp_path / 'db.sqlite3'}", "policies_dir": tmp_path, "poll_interval": 0,
            "notify": "off", "max_inclusion_depth": 7}
    init_db(load_settings(base))
    service = Service(load_settings(base))
    # another instance on the same database (a board of its own: this one hears nothing of its changes)
    other = Service(load_settings({**base, "version_board": str(tmp_path / "other-host")}))
    builds: list[str] = []
    full_build = Store.cpas_policy

    def counted(store: Store, cpas: str, rules: Rules, at: float | None = None) -> CpasPolicy | None:
        builds.append(cpas)
        return full_build(store, cpas, rules, at)

    monkeypatch.setattr(Store, "cpas_policy", counted)
    service.sync()
    other.sync()
    yield rng, service, other, builds
    service.close()
    other.close()


def full(service: Service, cpas: str) -> CpasPolicy:
    rules = service.engine.snapshot.rules
    built = service.read(lambda store: Store.cpas_policy(store, cpas, rules))
    assert built is not None
    return built


def test_random_changes_derive_what_a_full_build_gives(world: Any, tmp_path: Path) -> None:
    rng, service, other, builds = world
    catalog = service.catalog
    codes = list(catalog.functions)
    cpas_ids = [kbo(700 + i) for i in range(2)]
    users: dict[str, list[str]] = {c: [] for c in cpas_ids}
    for cpas in cpas_ids:
        service.change("test", Admin.create_cpas, cpas, f"CPAS {cpas}", f"OCMW {cpas}", rng.choice(REGIONS))

    def profiles(admin: Admin, cpas: str) -> list[int]:
        return [p.id for p in admin.store.profiles(cpas)]  # in the transaction: an earlier use case's too

    def some_profiles(admin: Admin, cpas: str, k: int) -> list[int]:
        ids = profiles(admin, cpas)
        return rng.sample(ids, k=min(k, len(ids)))

    def update(admin: Admin, cpas: str, pid: int, **changes: Any) -> Any:
        row = admin.store.get_profile(cpas, pid)
        assert row is not None
        values: dict[str, Any] = {"description_fr": row.description_fr, "description_nl": row.description_nl,
                                  "functions": None, "includes": None, **changes}
        return admin.update_profile(cpas, pid, version=row.version, **values)

    def first_login(admin: Admin, cpas: str) -> None:
        user = f"{cpas[-3:]}{len(users[cpas]):08d}"
        admin.user_seen(cpas, user, name=f"User {user}", lang=rng.choice(["fr", "nl"]))
        users[cpas].append(user)

    def random_change(admin: Admin, cpas: str) -> None:
        action = rng.choice(["create", "create", "functions", "includes", "describe", "delete", "first_login",
                             "assign", "assign", "assign", "deactivate", "reactivate"])
        if action == "first_login" or (not users[cpas] and action in ("assign", "deactivate", "reactivate")):
            first_login(admin, cpas)
        elif action == "create":
            admin.create_profile(cpas, description_fr=f"P{rng.randrange(10**6)}", description_nl=None,
                                 functions=rng.sample(catalog.selectable, k=rng.randint(0, 10)),
                                 includes=some_profiles(admin, cpas, rng.choice([0, 1, 2])))
        elif action in ("functions", "includes", "describe", "delete"):
            pid = rng.choice(profiles(admin, cpas))
            if action == "functions":
                update(admin, cpas, pid, functions=rng.sample(catalog.selectable, k=rng.randint(0, 12)))
            elif action == "includes":
                update(admin, cpas, pid, includes=some_profiles(admin, cpas, rng.choice([0, 1, 2])))
            elif action == "describe":
                update(admin, cpas, pid, description_nl=f"N{rng.randrange(10**6)}")
            else:
                admin.delete_profile(cpas, pid)
        elif action == "assign":
            admin.set_user_profiles(cpas, rng.choice(users[cpas]), some_profiles(admin, cpas, rng.choice([0, 1, 2, 3])))
        elif action == "deactivate":
            admin.deactivate_user(cpas, rng.choice(users[cpas]))
        else:
            admin.reactivate_user(cpas, rng.choice(users[cpas]))

    derived = refused = fallback = 0
    for step in range(150):
        cpas = rng.choice(cpas_ids)
        old = service.engine.current().policies[cpas]
        behind = rng.random() < 0.05
        if behind:  # another instance changes the CPAS first: the live policy is not the one ours starts from
            try:
                with other.admin("other") as admin:
                    random_change(admin, cpas)
            except ServiceError:
                pass
        behind = service.read(lambda store, c=cpas: store.versions_of([c]))[cpas] != old.version
        builds.clear()
        try:
            if rng.random() < 0.15:  # several use cases in one transaction (the CLI, tests)
                with service.admin("test") as admin:
                    for _ in range(rng.randint(2, 3)):
                        random_change(admin, cpas)
            else:
                service.change("test", lambda admin, c: random_change(admin, c), cpas)
        except ServiceError:
            refused += 1  # rolled back: nothing to rebuild
            assert builds == [] and service.engine.current().policies[cpas] is old
            continue
        policy = service.engine.current().policies[cpas]
        if policy.version == old.version:
            continue  # an unchanged assignment: nothing written, nothing rebuilt
        if behind:
            fallback += 1
            assert builds == [cpas]  # another change came in between: built in full
        else:
            derived += 1
            assert builds == [], step  # derived from the live policy and the touched rows only
        assert policy.fresh_as_of == service.db.board.read(policy.slot)  # the freshness marks as ever
        subjects = [*users[cpas], "99999999999"]
        same(policy, full(service, cpas), codes, subjects)
        if step % 10 == 0:  # stock pycasbin on the export, a sample of decisions
            lines = service.read(lambda store, c=cpas: store.policy_lines(c))
            (tmp_path / "policy.csv").write_text(policy_csv(lines))
            enforcer = casbin.Enforcer(str(ROOT / "model.conf"), str(tmp_path / "policy.csv"))
            for _ in range(40):
                user, code = rng.choice(subjects), rng.choice(codes)
                granted = sorted(policy.functions_of(user))
                if granted and rng.random() < 0.5:
                    code = rng.choice(granted)
                assert policy.allows(user, code) is enforcer.enforce(f"user:{user}", cpas, code), (user, code)
    assert derived > 80 and fallback >= 2 and refused >= 5, (derived, fallback, refused)


def test_a_change_reads_only_what_it_touched(world: Any) -> None:
    _, service, other, builds = world
    cpas = kbo(800)
    service.change("test", Admin.create_cpas, cpas, "CPAS", "OCMW", "wallonia")
    builtin = service.read(lambda store: store.builtin_profile(cpas))
    assert builtin is not None
    base = service.change("test", Admin.create_profile, cpas, description_fr="Base", description_nl=None,
                          functions=service.catalog.selectable[:3]).value
    top = service.change("test", Admin.create_profile, cpas, description_fr="Haut", description_nl=None,
                         functions=[], includes=[base.id]).value
    for i in range(6):
        service.change("test", Admin.user_seen, cpas, f"0000000000{i}", name=f"U{i}", lang="fr")
    service.change("test", Admin.set_user_profiles, cpas, "00000000000", [top.id])
    service.change("test", Admin.set_user_profiles, cpas, "00000000001", [base.id])
    service.change("test", Admin.set_user_profiles, cpas, "00000000002", [builtin.id])
    old = service.engine.current().policies[cpas]
    kept = state(old)
    after_reads = []
    original = Store.cpas_policy_after

    def spy(store: Store, policy: CpasPolicy, touched: Any, at: float | None = None) -> CpasPolicy | None:
        after_reads.append(sorted(touched.subjects))
        return original(store, policy, touched, at)

    builds.clear()
    Store.cpas_policy_after = spy  # type: ignore[method-assign]
    try:
        service.change("test", Admin.update_profile, cpas, base.id, version=base.version, description_fr="Base",
                       description_nl=None, functions=service.catalog.selectable[3:9], includes=None)
    finally:
        Store.cpas_policy_after = original  # type: ignore[method-assign]
    assert after_reads == [[f"profile:{base.id}"]] and builds == []
    new = service.engine.current().policies[cpas]
    assert state(old) == kept and new is not old  # the installed policy was never changed
    assert new._effective["00000000002"] is old._effective["00000000002"]  # untouched: shared
    rebuilt = full(service, cpas)
    assert state(new) == state(rebuilt)
    for user in ("00000000000", "00000000001"):  # the holders of the profile and of the one including it
        assert new._effective[user] is not old._effective[user]
        assert new.functions_of(user) == rebuilt.functions_of(user) != old.functions_of(user)

    # another instance's change in between: the live policy is not the one this change starts from
    other.change("test", Admin.set_user_profiles, cpas, "00000000003", [base.id])
    builds.clear()
    service.change("test", Admin.set_user_profiles, cpas, "00000000004", [top.id])
    assert builds == [cpas]
    assert state(service.engine.current().policies[cpas]) == state(full(service, cpas))
    now = service.policy(cpas)
    assert now.profiles_of("00000000003") == (base.id,)
    assert now.functions_of("00000000003") == now.functions_of("00000000001")  # both hold the same profile

    # rows written in bulk name no subject: built in full
    builds.clear()
    with service.admin("test") as admin:
        admin._lock(cpas)  # the use cases' first step: a new version, and the CPAS to rebuild
        admin.store.bulk_insert(cpas, [], [("user:00000000005", f"profile:{base.id}")])
    assert builds == [cpas]
    assert state(service.engine.current().policies[cpas]) == state(full(service, cpas))

    # a user made inactive by hand, without a Store method: still a touched subject (inactive means denied)
    builds.clear()
    with service.admin("test") as admin:
        admin._lock(cpas)  # the use cases' first step: a new version, and the CPAS to rebuild
        row = admin.store.get_user(cpas, "00000000005")
        assert row is not None
        row.active = False
    assert builds == []
    derived = service.engine.current().policies[cpas]
    assert state(derived) == state(full(service, cpas)) and derived.functions_of("00000000005") == frozenset()
