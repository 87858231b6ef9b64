"""The use cases of admin.py, called directly (no HTTP) inside ``Service.admin`` transactions on a real
database, SQLite and PostgreSQL: what each one writes, what it refuses (exception class and details,
never message text), the policy version it bumps and hands back, the one audit row it leaves, and that a
refused use case leaves the database exactly as it was (rollback).

One database and one ``Service`` per backend for the whole module (schema + catalog load cost about a
second each); every test works in CPAS of its own, made with fresh KBO numbers."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import select

from authz_service import reads
from authz_service.admin import BUILTIN_FR, BUILTIN_NL, Admin
from authz_service.catalog import REGIONS
from authz_service.errors import (
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
    ServiceError,
    StaleVersion,
    UserInactive,
    UserNotFound,
)
from authz_service.models import AuditEntry, CasbinRule, Cpas, Profile, User
from authz_service.schemas import parse_kbo
from authz_service.service import Service
from authz_service.store import Store

from .conftest import backend_service

ACTOR = "test:admin"
SEARCH = "dossier.search"  # selectable, no prerequisite
LIST = "help_request.list"  # selectable, needs dossier.search (a prerequisite)
COVERED = "debt_dossier.update"  # an action covered by debt_dossier.create: no checkbox of its own
_numbers = itertools.count(2_100_000)


def new_kbo() -> str:
    """A valid KBO/BCE number never used before in this run (8 digits + 97-modulus check)."""
    base = next(_numbers)
    number = f"{base:08d}{97 - base % 97:02d}"
    assert parse_kbo(number) == number
    return number


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def svc(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A migrated database with the catalog loaded (as the ``settings`` fixture makes one) and one Service
    on it that neither polls nor listens: ``Service.admin`` rebuilds the CPAS it changed itself."""
    with backend_service(request.param, tmp_path_factory.mktemp("admin"), "admin") as service:
        yield service


# -- reading the database -------------------------------------------------------------------------------
def dump(svc: Service) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table the use cases write, every column: equal dumps, same database."""

    with svc.db.reading() as session:
        return {
            model.__tablename__: sorted((tuple(row) for row in session.execute(select(model.__table__))), key=repr)
            for model in (Cpas, Profile, User, CasbinRule, AuditEntry)
        }


def version(svc: Service, cpas: str) -> int | None:
    return svc.read(lambda store: store.versions_of([cpas]).get(cpas))


def audit(svc: Service, cpas: str) -> list[tuple[str, str, str, Any, Any]]:
    """The CPAS's audit rows, oldest first: (action, target, actor, before, after)."""

    def run(store: Store) -> list[tuple[str, str, str, Any, Any]]:
        rows, total = store.audit_page(cpas, page=1, per_page=10_000)
        assert len(rows) == total
        return [(a.action, a.target, a.actor, a.before, a.after) for a in reversed(rows)]

    return svc.read(run)


def profile_state(svc: Service, cpas: str, profile_id: int) -> dict[str, Any] | None:
    """What ``profile_snapshot`` says, read in a transaction of its own; None if there is no such profile."""

    def run(store: Store) -> dict[str, Any] | None:
        profile = store.get_profile(cpas, profile_id)
        return None if profile is None else Admin(store, svc.catalog, ACTOR).profile_snapshot(profile)

    return svc.read(run)


def user_state(svc: Service, cpas: str, user: str) -> dict[str, Any] | None:
    def run(store: Store) -> dict[str, Any] | None:
        row = store.get_user(cpas, user)
        return None if row is None else Admin(store, svc.catalog, ACTOR).user_snapshot(row)

    return svc.read(run)


# -- running use cases ----------------------------------------------------------------------------------
def change(svc: Service, cpas: str, use_case: Callable[[Admin], Any], *, bumps: bool = True) -> tuple[Any, Any]:
    """Run one use case in its own transaction. Checks that it left exactly one audit row (returned with
    the use case's result) and, when ``bumps``, that it raised the CPAS's policy version by one, handed
    that version back on the Admin, and that the engine decides with it right after the commit."""
    before_version, before_audit = version(svc, cpas), audit(svc, cpas)
    with svc.admin(ACTOR) as admin:
        result = use_case(admin)
    after_audit = audit(svc, cpas)
    assert after_audit[: len(before_audit)] == before_audit
    assert len(after_audit) == len(before_audit) + 1, after_audit[len(before_audit) :]
    if bumps:
        assert before_version is not None
        assert admin.policy_version == before_version + 1 == version(svc, cpas)
        assert svc.policy(cpas).version == admin.policy_version  # rebuilt on commit
    else:
        assert admin.policy_version is None and version(svc, cpas) == before_version
    return result, after_audit[-1]


def refused(svc: Service, cpas: str, use_case: Callable[[Admin], Any], error: type[ServiceError]) -> ServiceError:
    """Run a use case that must be refused with ``error``: the database and the engine are left as they were.
    Returns the exception (its class is exactly ``error``)."""
    before = dump(svc)
    engine_version = svc.policy(cpas).version if version(svc, cpas) is not None else None
    with pytest.raises(ServiceError) as info, svc.admin(ACTOR) as admin:
        use_case(admin)
    assert type(info.value) is error, (info.value, info.value.details)
    assert dump(svc) == before
    if engine_version is not None:
        assert svc.policy(cpas).version == engine_version
    return info.value


def make_cpas(svc: Service) -> str:
    cpas = new_kbo()
    with svc.admin(ACTOR) as admin:
        admin.create_cpas(cpas, "CPAS de test", "OCMW test", "wallonia")
    return cpas


def make_profile(svc: Service, cpas: str, fr: str | None, nl: str | None = None,
                 functions: tuple[str, ...] = (SEARCH,), includes: tuple[int, ...] = ()) -> int:
    with svc.admin(ACTOR) as admin:
        return admin.create_profile(cpas, description_fr=fr, description_nl=nl, functions=functions,
                                    includes=includes).id


def make_user(svc: Service, cpas: str, user: str, name: str = "Agent", profiles: tuple[int, ...] = ()) -> None:
    with svc.admin(ACTOR) as admin:
        admin.user_seen(cpas, user, name=name, lang="fr")
    if profiles:
        with svc.admin(ACTOR) as admin:
            admin.set_user_profiles(cpas, user, profiles)


def builtin_id(svc: Service, cpas: str) -> int:
    def run(store: Store) -> int:
        builtin = store.builtin_profile(cpas)
        assert builtin is not None
        return builtin.id

    return svc.read(run)


@pytest.fixture
def cpas(svc: Service) -> str:
    return make_cpas(svc)


# -- CPAS -------------------------------------------------------------------------------------------
def test_create_cpas_with_its_builtin_profile(svc: Service) -> None:
    cpas = new_kbo()
    assert version(svc, cpas) is None
    with svc.admin(ACTOR) as admin:
        row = admin.create_cpas(cpas, "  CPAS d'Ixelles ", "OCMW Elsene  ", "brussels")
    assert admin.policy_version == 1 == version(svc, cpas) == svc.policy(cpas).version
    assert (row.id, row.name_fr, row.name_nl, row.region) == (cpas, "CPAS d'Ixelles", "OCMW Elsene", "brussels")

    profiles = svc.read(lambda store: [(p.id, p.builtin) for p in store.profiles(cpas)])
    assert len(profiles) == 1 and profiles[0][1] is True
    builtin = profile_state(svc, cpas, profiles[0][0])
    assert builtin == {
        "id": profiles[0][0], "description_fr": BUILTIN_FR, "description_nl": BUILTIN_NL, "builtin": True,
        "version": 1, "functions": sorted(svc.catalog.selectable), "includes": [],
    }
    assert all(svc.catalog.functions[c].selectable for c in builtin["functions"])  # checkboxes only
    assert audit(svc, cpas) == [("cpas.create", f"cpas:{cpas}", ACTOR, None, {
        "cpas": cpas, "name_fr": "CPAS d'Ixelles", "name_nl": "OCMW Elsene", "region": "brussels"})]


def test_create_cpas_refusals(svc: Service, cpas: str) -> None:
    assert "atlantis" not in REGIONS
    other = new_kbo()
    error = refused(svc, other, lambda a: a.create_cpas(other, "X", "X", "atlantis"), RegionUnknown)
    assert error.details is None and version(svc, other) is None
    refused(svc, cpas, lambda a: a.create_cpas(cpas, "X", "X", "flanders"), CpasExists)
    assert len(audit(svc, cpas)) == 1


@pytest.mark.parametrize("use_case", [
    "create_profile", "update_profile", "delete_profile", "get_profile", "user_seen", "get_user",
    "set_user_profiles", "deactivate_user", "reactivate_user",
])
def test_every_use_case_refuses_an_unknown_cpas(svc: Service, use_case: str) -> None:
    cpas = new_kbo()
    calls: dict[str, Callable[[Admin], Any]] = {
        "create_profile": lambda a: a.create_profile(cpas, description_fr="X", description_nl=None, functions=[]),
        "update_profile": lambda a: a.update_profile(cpas, 1, version=1, description_fr="X", description_nl=None,
                                                     functions=None, includes=None),
        "delete_profile": lambda a: a.delete_profile(cpas, 1),
        "get_profile": lambda a: reads.profile_detail(a.store, a.catalog, cpas, 1),
        "user_seen": lambda a: a.user_seen(cpas, "u1", name="A", lang="fr"),
        "get_user": lambda a: reads.user_detail(a.store, cpas, "u1"),
        "set_user_profiles": lambda a: a.set_user_profiles(cpas, "u1", []),
        "deactivate_user": lambda a: a.deactivate_user(cpas, "u1"),
        "reactivate_user": lambda a: a.reactivate_user(cpas, "u1"),
    }
    refused(svc, cpas, calls[use_case], CpasUnknown)


# -- profiles: create -------------------------------------------------------------------------------
def test_create_profile(svc: Service, cpas: str) -> None:
    base = make_profile(svc, cpas, "Base")
    profile, row = change(svc, cpas, lambda a: a.create_profile(
        cpas, description_fr="Aide sociale", description_nl=None,
        functions=[LIST, SEARCH, LIST, SEARCH], includes=[base, base]))
    state = profile_state(svc, cpas, profile.id)
    assert state == {"id": profile.id, "description_fr": "Aide sociale", "description_nl": None, "builtin": False,
                     "version": 1, "functions": sorted([LIST, SEARCH]), "includes": [base]}
    assert row == ("profile.create", f"profile:{profile.id}", ACTOR, None, state)
    # a Dutch description alone is enough, and no function at all is a profile too
    only_nl, _ = change(svc, cpas, lambda a: a.create_profile(
        cpas, description_fr=None, description_nl="Alleen Nederlands", functions=[]))
    assert profile_state(svc, cpas, only_nl.id)["functions"] == []  # type: ignore[index]


def test_created_profiles_decide_in_the_engine(svc: Service, cpas: str) -> None:
    base = make_profile(svc, cpas, "Recherche", functions=(SEARCH,))
    top = make_profile(svc, cpas, "Liste", functions=(LIST,), includes=(base,))
    make_user(svc, cpas, "u1", profiles=(top,))
    policy = svc.policy(cpas)
    assert policy.allows("u1", LIST) and policy.allows("u1", SEARCH)  # LIST needs SEARCH: held through base
    assert policy.view("u1").profiles == (top,)


@pytest.mark.parametrize("case", ["unknown_function", "covered_action", "no_description", "empty_descriptions",
                                  "unknown_include", "include_of_another_cpas"])
def test_create_profile_refusals(svc: Service, cpas: str, case: str) -> None:
    other = make_cpas(svc)
    foreign = make_profile(svc, other, "Ailleurs")
    args: dict[str, Any] = {"description_fr": "Nouveau", "description_nl": None, "functions": [SEARCH]}
    expected: tuple[type[ServiceError], Any] = {
        "unknown_function": (FunctionsUnknown, {"unknown": ["no.such", "x.y"]}),
        "covered_action": (CoveredActions, {"covered": [COVERED]}),
        "no_description": (DescriptionMissing, None),
        "empty_descriptions": (DescriptionMissing, None),
        "unknown_include": (ProfileMissing, {"includes": 987654}),
        "include_of_another_cpas": (ProfileMissing, {"includes": foreign}),
    }[case]
    args.update({
        "unknown_function": {"functions": [SEARCH, "no.such", "x.y", "no.such"]},
        "covered_action": {"functions": [SEARCH, COVERED]},
        "no_description": {"description_fr": None},
        "empty_descriptions": {"description_fr": "", "description_nl": ""},
        "unknown_include": {"includes": [987654]},
        "include_of_another_cpas": {"includes": [foreign]},
    }[case])
    error = refused(svc, cpas, lambda a: a.create_profile(cpas, **args), expected[0])
    assert error.details == expected[1]


@pytest.mark.parametrize("variant", ["FULL ", "Ｆｕｌｌ", "Full\u200b", "  full  ", "fULL"])
def test_descriptions_are_unique_after_normalisation(svc: Service, cpas: str, variant: str) -> None:
    first = make_profile(svc, cpas, "Full", "Vol  ledig")
    for fr, nl, lang, sent in ((variant, None, "fr", variant), (None, "VOL LEDIG\u200b", "nl", "VOL LEDIG\u200b")):
        error = refused(svc, cpas, lambda a, fr=fr, nl=nl: a.create_profile(
            cpas, description_fr=fr, description_nl=nl, functions=[]), DuplicateDescription)
        assert error.details == {"lang": lang, "description": sent}
    second = make_profile(svc, cpas, "Autre")
    error = refused(svc, cpas, lambda a: a.update_profile(
        cpas, second, version=1, description_fr=variant, description_nl=None, functions=None, includes=None),
        DuplicateDescription)
    assert error.details == {"lang": "fr", "description": variant}
    # the built-in profile's descriptions are taken as well
    error = refused(svc, cpas, lambda a: a.create_profile(
        cpas, description_fr=None, description_nl=BUILTIN_NL.upper(), functions=[]), DuplicateDescription)
    assert error.details == {"lang": "nl", "description": BUILTIN_NL.upper()}
    # not taken: the same text in the other language, in another CPAS, or a profile keeping its own
    make_profile(svc, cpas, None, variant)
    make_profile(svc, make_cpas(svc), variant)
    change(svc, cpas, lambda a: a.update_profile(cpas, first, version=1, description_fr=variant,
                                                 description_nl="Vol ledig", functions=None, includes=None))


# -- profiles: update -------------------------------------------------------------------------------
def test_update_profile(svc: Service, cpas: str) -> None:
    a_id = make_profile(svc, cpas, "A")
    b_id = make_profile(svc, cpas, "B", functions=(LIST,))
    target = make_profile(svc, cpas, "Cible", functions=(SEARCH,), includes=(a_id,))
    before = profile_state(svc, cpas, target)

    profile, row = change(svc, cpas, lambda a: a.update_profile(
        cpas, target, version=1, description_fr="Cible 2", description_nl="Doel",
        functions=[LIST, LIST], includes=[b_id, b_id]))
    after = profile_state(svc, cpas, target)
    assert profile.version == 2
    assert after == {"id": target, "description_fr": "Cible 2", "description_nl": "Doel", "builtin": False,
                     "version": 2, "functions": [LIST], "includes": [b_id]}
    assert row == ("profile.update", f"profile:{target}", ACTOR, before, after)

    # None: left as they are; an empty list: cleared
    change(svc, cpas, lambda a: a.update_profile(cpas, target, version=2, description_fr="Cible 3",
                                                 description_nl=None, functions=None, includes=None))
    state = profile_state(svc, cpas, target)
    assert state is not None
    kept = (state["version"], state["description_nl"], state["functions"], state["includes"])
    assert kept == (3, None, [LIST], [b_id])
    change(svc, cpas, lambda a: a.update_profile(cpas, target, version=3, description_fr="Cible 3",
                                                 description_nl=None, functions=[], includes=[]))
    state = profile_state(svc, cpas, target)
    assert state is not None and (state["version"], state["functions"], state["includes"]) == (4, [], [])


def test_update_with_a_stale_version_is_a_conflict(svc: Service, cpas: str) -> None:
    target = make_profile(svc, cpas, "Cible")
    change(svc, cpas, lambda a: a.update_profile(cpas, target, version=1, description_fr="Cible", description_nl=None,
                                                 functions=[LIST], includes=None))
    for stale in (1, 3):
        error = refused(svc, cpas, lambda a, v=stale: a.update_profile(
            cpas, target, version=v, description_fr="Autre", description_nl=None, functions=[], includes=None),
            StaleVersion)
        assert error.details == {"current_version": 2} and error.current_version == 2


def test_deleted_or_foreign_profiles_are_not_found(svc: Service, cpas: str) -> None:
    gone = make_profile(svc, cpas, "Parti")
    change(svc, cpas, lambda a: a.delete_profile(cpas, gone))
    foreign = make_profile(svc, make_cpas(svc), "Ailleurs")
    for pid in (gone, foreign):
        refused(svc, cpas, lambda a, p=pid: a.update_profile(cpas, p, version=1, description_fr="X",
                                                             description_nl=None, functions=None, includes=None),
                ProfileNotFound)
        refused(svc, cpas, lambda a, p=pid: a.delete_profile(cpas, p), ProfileNotFound)
        refused(svc, cpas, lambda a, p=pid: reads.profile_detail(a.store, a.catalog, cpas, p), ProfileNotFound)


def test_builtin_profile_refusals(svc: Service, cpas: str) -> None:
    builtin = builtin_id(svc, cpas)
    other = make_profile(svc, cpas, "Autre")
    refused(svc, cpas, lambda a: a.delete_profile(cpas, builtin), BuiltinUnchangeable)
    for functions, includes in (([SEARCH], None), ([], None), (None, [other])):
        refused(svc, cpas, lambda a, f=functions, i=includes: a.update_profile(
            cpas, builtin, version=1, description_fr=BUILTIN_FR, description_nl=BUILTIN_NL, functions=f, includes=i),
            BuiltinUnchangeable)
    # its descriptions may change, and sending every function (in any order) is not a change of functions
    everything = list(svc.catalog.selectable)
    random.Random(1).shuffle(everything)
    change(svc, cpas, lambda a: a.update_profile(cpas, builtin, version=1, description_fr="Tout",
                                                 description_nl="Alles", functions=everything, includes=[]))
    state = profile_state(svc, cpas, builtin)
    assert state is not None
    assert (state["description_fr"], state["version"], state["builtin"]) == ("Tout", 2, True)
    assert state["functions"] == sorted(svc.catalog.selectable) and state["includes"] == []


# -- profiles: delete -------------------------------------------------------------------------------
def test_delete_profile(svc: Service, cpas: str) -> None:
    keep = make_profile(svc, cpas, "Garde")
    target = make_profile(svc, cpas, "Cible", functions=(SEARCH, LIST), includes=(keep,))
    before = profile_state(svc, cpas, target)
    _, row = change(svc, cpas, lambda a: a.delete_profile(cpas, target))
    assert row == ("profile.delete", f"profile:{target}", ACTOR, before, None)
    assert profile_state(svc, cpas, target) is None
    lines = svc.read(lambda store: store.policy_lines(cpas))
    assert not [line for line in lines if f"profile:{target}" in line]  # its rows went with it
    assert profile_state(svc, cpas, keep) is not None


def test_a_profile_in_use_is_not_deleted_and_its_users_are_listed(svc: Service, cpas: str) -> None:
    target = make_profile(svc, cpas, "Cible")
    make_user(svc, cpas, "u-z", name="Zoé", profiles=(target,))
    make_user(svc, cpas, "u-a", name="Bernard", profiles=(target,))
    make_user(svc, cpas, "u-m", name="Albert", profiles=(target,))
    make_user(svc, cpas, "u-free", name="Aaron")
    error = refused(svc, cpas, lambda a: a.delete_profile(cpas, target), ProfileAssigned)
    assert error.details["users"] == ["u-m", "u-a", "u-z"]  # by name, then id
    assert set(error.details) == {"users", "message_nl"}
    # unassigned (a deactivation unassigns too), it goes
    change(svc, cpas, lambda a: a.set_user_profiles(cpas, "u-z", []))
    change(svc, cpas, lambda a: a.set_user_profiles(cpas, "u-a", []))
    change(svc, cpas, lambda a: a.deactivate_user(cpas, "u-m"))
    change(svc, cpas, lambda a: a.delete_profile(cpas, target))


def test_an_included_profile_is_not_deleted(svc: Service, cpas: str) -> None:
    target = make_profile(svc, cpas, "Cible")
    second = make_profile(svc, cpas, "Deux", includes=(target,))
    first = make_profile(svc, cpas, "Un", includes=(target,))
    error = refused(svc, cpas, lambda a: a.delete_profile(cpas, target), ProfileIncluded)
    assert error.details["profiles"] == sorted([first, second])
    assert set(error.details) == {"profiles", "message_nl"}
    for pid in (first, second):
        change(svc, cpas, lambda a, p=pid: a.update_profile(cpas, p, version=1, description_fr=None,
                                                            description_nl=f"P{p}", functions=None, includes=[]))
    change(svc, cpas, lambda a: a.delete_profile(cpas, target))


# -- profiles: inclusion graph --------------------------------------------------------------------
def test_inclusion_cycles_are_refused(svc: Service, cpas: str) -> None:
    a_id = make_profile(svc, cpas, "A")
    b_id = make_profile(svc, cpas, "B", includes=(a_id,))
    c_id = make_profile(svc, cpas, "C", includes=(b_id,))

    def include(pid: int, included: list[int]) -> Callable[[Admin], Any]:
        return lambda a: a.update_profile(cpas, pid, version=1, description_fr=f"P{pid}", description_nl=None,
                                          functions=None, includes=included)

    error = refused(svc, cpas, include(a_id, [b_id]), InclusionCycle)  # a <-> b
    assert set(error.details) == {"profile"} and error.details["profile"] in (a_id, b_id)
    error = refused(svc, cpas, include(a_id, [c_id]), InclusionCycle)  # a -> c -> b -> a
    assert set(error.details) == {"profile"} and error.details["profile"] in (a_id, b_id, c_id)
    error = refused(svc, cpas, include(a_id, [a_id]), InclusionCycle)  # itself
    assert error.details is None


def test_inclusion_depth_is_limited(svc: Service, cpas: str) -> None:
    limit = svc.settings.max_inclusion_depth
    chain = [make_profile(svc, cpas, "P0")]
    for level in range(1, limit + 1):  # P_level includes P_(level-1): `limit` inclusion links
        chain.append(make_profile(svc, cpas, f"P{level}", includes=(chain[-1],)))
    error = refused(svc, cpas, lambda a: a.create_profile(
        cpas, description_fr="Trop", description_nl=None, functions=[], includes=[chain[-1]]), InclusionTooDeep)
    assert error.details is None
    # deepening the chain from below is refused alike
    leaf = make_profile(svc, cpas, "Feuille")
    error = refused(svc, cpas, lambda a: a.update_profile(
        cpas, chain[0], version=1, description_fr="P0", description_nl=None, functions=None, includes=[leaf]),
        InclusionTooDeep)
    assert error.details is None
    # the longest allowed chain decides: its bottom profile's function reaches a user of the top one
    make_user(svc, cpas, "u1", profiles=(chain[-1],))
    assert svc.policy(cpas).allows("u1", SEARCH)


# -- users ------------------------------------------------------------------------------------------
def test_user_seen_creates_then_updates(svc: Service, cpas: str) -> None:
    (user, created), row = change(svc, cpas, lambda a: a.user_seen(cpas, "u1", name="  Jean \t Dupont ", lang="fr"))
    assert created is True and (user.user, user.name, user.lang, user.active) == ("u1", "Jean Dupont", "fr", True)
    first = {"user": "u1", "name": "Jean Dupont", "lang": "fr", "active": True, "profiles": []}
    assert row == ("user.first_login", "user:u1", ACTOR, None, first)
    assert svc.policy(cpas).view("u1").known

    # the same again: nothing to record, nothing bumped
    before = (version(svc, cpas), audit(svc, cpas))
    with svc.admin(ACTOR) as admin:
        user, created = admin.user_seen(cpas, "u1", name="Jean Dupont", lang="fr")
    assert created is False and admin.policy_version is None and (version(svc, cpas), audit(svc, cpas)) == before

    # a new name or language: one audit row; the decisions do not depend on it (version kept)
    (user, created), row = change(svc, cpas, lambda a: a.user_seen(cpas, "u1", name="Jean  Dupont-Durand", lang="nl"),
                                  bumps=False)
    changed = {**first, "name": "Jean Dupont-Durand", "lang": "nl"}
    assert created is False and row == ("user.update", "user:u1", ACTOR, first, changed)
    # no name given: the known one stays
    (user, _), row = change(svc, cpas, lambda a: a.user_seen(cpas, "u1", name="  ", lang="fr"), bumps=False)
    assert user_state(svc, cpas, "u1") == {**changed, "lang": "fr"} and row[4] == {**changed, "lang": "fr"}


def test_an_inactive_user_stays_inactive_at_login(svc: Service, cpas: str) -> None:
    make_user(svc, cpas, "u1", name="Agent", profiles=(builtin_id(svc, cpas),))
    change(svc, cpas, lambda a: a.deactivate_user(cpas, "u1"))
    with svc.admin(ACTOR) as admin:
        user, created = admin.user_seen(cpas, "u1", name="Agent", lang="fr")
    assert (created, user.active) == (False, False)
    assert user_state(svc, cpas, "u1") == {"user": "u1", "name": "Agent", "lang": "fr", "active": False,
                                           "profiles": []}
    decision = svc.policy(cpas).decide("u1", SEARCH, explain=True)
    assert (decision.allowed, decision.reason) == (False, "user_inactive")


def test_set_user_profiles(svc: Service, cpas: str) -> None:
    search = make_profile(svc, cpas, "Recherche", functions=(SEARCH,))
    listing = make_profile(svc, cpas, "Liste", functions=(LIST,))
    make_user(svc, cpas, "u1")
    before = user_state(svc, cpas, "u1")
    _, row = change(svc, cpas, lambda a: a.set_user_profiles(cpas, "u1", [listing, search, listing]))
    after = user_state(svc, cpas, "u1")
    assert after is not None and after["profiles"] == sorted([search, listing])
    assert row == ("user.assign", "user:u1", ACTOR, before, after)
    assert svc.policy(cpas).allows("u1", LIST)
    change(svc, cpas, lambda a: a.set_user_profiles(cpas, "u1", [listing]))  # replaces, does not add
    decision = svc.policy(cpas).decide("u1", LIST, explain=True)
    assert (decision.allowed, decision.reason, decision.missing_prerequisites) == (
        False, "missing_prerequisite", (SEARCH,))
    change(svc, cpas, lambda a: a.set_user_profiles(cpas, "u1", []))
    assert svc.policy(cpas).view("u1").profiles == ()


def test_an_unchanged_assignment_changes_nothing(svc: Service, cpas: str) -> None:
    search = make_profile(svc, cpas, "Recherche", functions=(SEARCH,))
    make_user(svc, cpas, "u1", profiles=(search,))
    before, engine_version = dump(svc), svc.policy(cpas).version
    with svc.admin(ACTOR) as admin:
        answer = admin.set_user_profiles(cpas, "u1", [search, search])
    assert [p.id for p in answer.profiles] == [search] and answer.policy_version == engine_version
    assert admin.policy_version is None and not admin.changed  # no new version, no audit entry, no rebuild
    assert dump(svc) == before and svc.policy(cpas).version == engine_version
    # the same ids for an inactive user are still refused, as any assignment to one
    with svc.admin(ACTOR) as admin:
        admin.deactivate_user(cpas, "u1")
    refused(svc, cpas, lambda a: a.set_user_profiles(cpas, "u1", []), UserInactive)


@pytest.mark.parametrize("case", ["unknown_profile", "foreign_profile", "inactive_user", "never_seen_user"])
def test_set_user_profiles_refusals(svc: Service, cpas: str, case: str) -> None:
    mine = make_profile(svc, cpas, "A moi")
    foreign = make_profile(svc, make_cpas(svc), "Ailleurs")
    make_user(svc, cpas, "u1", profiles=(mine,))
    make_user(svc, cpas, "u2")
    change(svc, cpas, lambda a: a.deactivate_user(cpas, "u2"))
    user, profiles, error_class, details = {
        "unknown_profile": ("u1", [mine, 987654], ProfileMissing, {"profile": 987654}),
        "foreign_profile": ("u1", [foreign], ProfileMissing, {"profile": foreign}),
        "inactive_user": ("u2", [mine], UserInactive, None),
        "never_seen_user": ("u3", [mine], UserNotFound, None),
    }[case]
    error = refused(svc, cpas, lambda a: a.set_user_profiles(cpas, user, profiles), error_class)
    assert error.details == details


def test_deactivate_and_reactivate_remove_every_profile(svc: Service, cpas: str) -> None:
    search = make_profile(svc, cpas, "Recherche")
    make_user(svc, cpas, "u1", profiles=(search, builtin_id(svc, cpas)))
    before = user_state(svc, cpas, "u1")
    _, row = change(svc, cpas, lambda a: a.deactivate_user(cpas, "u1"))
    assert before is not None and row == ("user.deactivate", "user:u1", ACTOR, before,
                                          {**before, "active": False, "profiles": []})
    assert svc.policy(cpas).decide("u1", SEARCH, explain=True).reason == "user_inactive"
    lines = svc.read(lambda store: store.policy_lines(cpas))
    assert not [line for line in lines if line[1] == "user:u1"]

    # links an inactive user should not have (written behind the use cases' back) are gone on reactivation
    with svc.admin(ACTOR) as admin:
        admin.store.set_user_profiles(cpas, "u1", [search])
    assert user_state(svc, cpas, "u1")["profiles"] == [search]  # type: ignore[index]
    assert svc.refresh(cpas)  # the engine reads those rows too
    assert not svc.policy(cpas).allows("u1", SEARCH)  # inactive means denied whatever rows exist
    _, row = change(svc, cpas, lambda a: a.reactivate_user(cpas, "u1"))
    assert row == ("user.reactivate", "user:u1", ACTOR, {**before, "active": False, "profiles": [search]},
                   {**before, "active": True, "profiles": []})
    view = svc.policy(cpas).view("u1")
    assert (view.active, view.profiles, view.functions) == (True, (), frozenset())
    for use_case in ("deactivate_user", "reactivate_user"):
        refused(svc, cpas, lambda a, u=use_case: getattr(a, u)(cpas, "nobody"), UserNotFound)


# -- transactions ------------------------------------------------------------------------------------
REFUSALS: dict[str, tuple[type[ServiceError], Callable[[Admin, str, dict[str, int]], Any]]] = {
    "stale_version": (StaleVersion, lambda a, c, p: a.update_profile(
        c, p["used"], version=7, description_fr="X", description_nl=None, functions=None, includes=None)),
    "duplicate": (DuplicateDescription, lambda a, c, p: a.create_profile(
        c, description_fr="UTILISÉ", description_nl=None, functions=[])),
    "unknown_function": (FunctionsUnknown, lambda a, c, p: a.create_profile(
        c, description_fr="Y", description_nl=None, functions=["no.such"])),
    "cycle": (InclusionCycle, lambda a, c, p: a.update_profile(
        c, p["base"], version=1, description_fr="Base", description_nl=None, functions=None, includes=[p["used"]])),
    "in_use": (ProfileAssigned, lambda a, c, p: a.delete_profile(c, p["used"])),
    "builtin": (BuiltinUnchangeable, lambda a, c, p: a.delete_profile(c, p["builtin"])),
    "inactive_user": (UserInactive, lambda a, c, p: a.set_user_profiles(c, "u2", [p["base"]])),
    "unknown_user": (UserNotFound, lambda a, c, p: a.deactivate_user(c, "nobody")),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_refused_use_case_rolls_back_the_whole_transaction(svc: Service, cpas: str, case: str) -> None:
    base = make_profile(svc, cpas, "Base")
    used = make_profile(svc, cpas, "Utilisé", includes=(base,))
    make_user(svc, cpas, "u1", profiles=(used,))
    make_user(svc, cpas, "u2")
    change(svc, cpas, lambda a: a.deactivate_user(cpas, "u2"))
    ids = {"base": base, "used": used, "builtin": builtin_id(svc, cpas)}
    error_class, use_case = REFUSALS[case]

    def several(admin: Admin) -> None:
        # changes that succeed first, in the same transaction: they go with the refused one
        admin.create_profile(cpas, description_fr="Éphémère", description_nl=None, functions=[LIST])
        admin.set_user_profiles(cpas, "u1", [used, base])
        admin.user_seen(cpas, "u9", name="Nouveau", lang="nl")
        use_case(admin, cpas, ids)

    engine_version = svc.policy(cpas).version
    refused(svc, cpas, several, error_class)
    assert version(svc, cpas) == engine_version == svc.policy(cpas).version
    assert svc.policy(cpas).view("u1").profiles == (used,) and not svc.policy(cpas).view("u9").known


def test_every_change_bumps_the_version_once_and_is_audited(svc: Service, cpas: str) -> None:
    """An ordinary day, each use case checked by ``change``: version + 1, handed back on the Admin, decided
    by the engine right after the commit, one audit row of the expected action."""
    made: dict[str, int] = {}

    def create(a: Admin) -> None:
        made["p"] = a.create_profile(cpas, description_fr="P", description_nl=None, functions=[SEARCH]).id

    steps: list[tuple[str, Callable[[Admin], Any]]] = [
        ("user.first_login", lambda a: a.user_seen(cpas, "u1", name="Agent", lang="fr")),
        ("profile.create", create),
        ("user.assign", lambda a: a.set_user_profiles(cpas, "u1", [made["p"]])),
        ("profile.update", lambda a: a.update_profile(cpas, made["p"], version=1, description_fr="P2",
                                                      description_nl=None, functions=[SEARCH, LIST], includes=[])),
        ("user.deactivate", lambda a: a.deactivate_user(cpas, "u1")),
        ("user.reactivate", lambda a: a.reactivate_user(cpas, "u1")),
        ("profile.delete", lambda a: a.delete_profile(cpas, made["p"])),
    ]
    for expected, step in steps:
        _, row = change(svc, cpas, step)
        assert row[0] == expected
    assert [row[0] for row in audit(svc, cpas)] == ["cpas.create", *(action for action, _ in steps)]
    assert version(svc, cpas) == 1 + len(steps)


def test_the_module_runs_on_the_backend_it_names(svc: Service, request: pytest.FixtureRequest) -> None:
    dialect = svc.db.engine.dialect.name
    assert dialect == {"sqlite": "sqlite", "postgres": "postgresql"}[request.node.callspec.params["svc"]]
