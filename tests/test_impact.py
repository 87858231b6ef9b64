"""Dry runs (issue 13): ``Service.preview`` and ``?dry_run=true``.

A dry run must be exactly the change it previews, and nothing else: random changes through the real use
cases (fixed seed, on SQLite and PostgreSQL) are each previewed, then made; the preview's impact equals the
difference of the effective functions (the engine's, as ``POST /enforce`` decides) before and after the real
change, its unusable functions equal a plain reference computed from the catalog and the profiles' rows, its
policy version and answer are the change's, and a refused change is refused alike. After each preview every
table is as it was (a full dump), the version board and the engine's snapshot are untouched, nothing was
announced and no line went to authz.changes. Then the JSON routes' ``dry_run`` parameter.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import select

from authz_service.admin import Admin
from authz_service.errors import ServiceError
from authz_service.impact import Impact, Unusable, UserImpact, compare
from authz_service.models import Base
from authz_service.reads import profile_closure
from authz_service.service import Service
from authz_service.store import Store

from .conftest import Api, backend_service
from .test_admin import new_kbo

ACTOR = "test:impact"
SEARCH, LIST = "dossier.search", "help_request.list"  # LIST needs SEARCH


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def svc(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with backend_service(request.param, tmp_path_factory.mktemp("impact"), "impact") as service:
        yield service


def dump(svc: Service) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, every column."""
    with svc.db.reading() as session:
        return {table.name: sorted((tuple(row) for row in session.execute(select(table))), key=repr)
                for table in Base.metadata.sorted_tables}


# -- what a dry run should find, computed another way ----------------------------------------------------
def effective(svc: Service, cpas: str, users: list[str]) -> dict[str, frozenset[str]]:
    """What POST /enforce allows each user now (the engine, brought up to date)."""
    policy = svc.policy(cpas)
    return {u: policy.functions_of(u) for u in users}


def unusable_reference(svc: Service, cpas: str, user: str) -> tuple[Unusable, ...]:
    """From the catalog and the profiles' rows only: what the user's profiles grant (their own functions,
    their included profiles' and the actions these cover) whose prerequisites the profiles do not grant."""
    catalog = svc.catalog

    def held(store: Store) -> set[str] | None:
        row = store.get_user(cpas, user)
        if row is None or not row.active:
            return None
        return set().union(*(profile_closure(store, cpas, pid) for pid in store.user_profiles(cpas, user)))

    codes = svc.read(held)
    if not codes:
        return ()
    granted = codes | {c for code in codes for c in catalog.functions[code].covers}
    return tuple(Unusable(f, tuple(sorted(catalog.prerequisites(f) - codes)))
                 for f in sorted(granted) if catalog.prerequisites(f) - codes)


def expected_impact(svc: Service, cpas: str, names: dict[str, str], before: dict[str, frozenset[str]],
                    after: dict[str, frozenset[str]]) -> Impact:
    return Impact(tuple(
        UserImpact(u, names[u], tuple(sorted(after[u] - before[u])), tuple(sorted(before[u] - after[u])),
                   unusable_reference(svc, cpas, u))
        for u in sorted(names) if before[u] != after[u]
    ))


# -- the random walk -------------------------------------------------------------------------------------
class Walk:
    """Random changes of one CPAS, each previewed, checked, then made."""

    def __init__(self, svc: Service, cpas: str, rng: random.Random) -> None:
        self.svc, self.cpas, self.rng = svc, cpas, rng
        self.names = 0
        self.kinds: dict[str, int] = {}
        self.pool: list[str] = []

    def profiles(self) -> list[tuple[int, int, bool]]:
        return self.svc.read(lambda s: [(p.id, p.version, p.builtin) for p in s.profiles(self.cpas)])

    def users(self) -> dict[str, str]:
        return self.svc.read(lambda s: s.user_names(self.cpas))

    def functions(self) -> list[str]:
        """A few functions, drawn mostly from a small pool (so that profiles overlap) of functions with
        prerequisites and those prerequisites, half the time without the prerequisites they need."""
        rng, catalog = self.rng, self.svc.catalog
        if not self.pool:
            needy = sorted(c for c in catalog.selectable if catalog.prerequisites(c))
            drawn = rng.sample(needy, k=8)
            self.pool = sorted({*drawn, *(p for c in drawn for p in catalog.prerequisites(c))})
        chosen = set(rng.sample(self.pool, k=rng.randint(0, 5)))
        chosen |= set(rng.sample(catalog.selectable, k=rng.randint(0, 3)))
        if rng.random() < 0.3:
            chosen.add(LIST)
        if rng.random() < 0.4:
            for code in list(chosen):
                chosen |= catalog.prerequisites(code)
        return sorted(chosen)

    def description(self) -> str:
        self.names += 1
        return f"Profil {self.names}"

    def next_change(self) -> tuple[str, Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
        """(kind, use case, args, kwargs): a change that may well be refused."""
        rng, cpas = self.rng, self.cpas
        profiles = self.profiles()
        own = [p for p in profiles if not p[2]]
        ids = [p[0] for p in profiles]
        users = sorted(self.users())
        kind = rng.choice(["create", "update", "update", "update", "delete", "assign", "assign", "assign",
                           "deactivate", "reactivate"])
        if kind == "create" or (kind in ("update", "delete") and not own):
            includes = rng.sample(ids, k=min(len(ids), rng.choice((0, 0, 1, 2))))
            description = rng.choice(["Full", "Cible"]) if rng.random() < 0.1 else self.description()
            return "create", Admin.create_profile, (cpas,), {
                "description_fr": description, "description_nl": None, "functions": self.functions(),
                "includes": includes}
        if kind == "update":
            pid, version, _ = rng.choice(own + [p for p in profiles if p[2] and rng.random() < 0.2])
            includes = rng.sample([i for i in ids if i != pid], k=min(len(ids) - 1, rng.choice((0, 1, 1, 2))))
            return "update", Admin.update_profile, (cpas, pid), {
                "version": version if rng.random() < 0.9 else version + 1, "description_fr": self.description(),
                "description_nl": None, "functions": self.functions() if rng.random() < 0.8 else None,
                "includes": includes if rng.random() < 0.5 else None}
        if kind == "delete":
            return "delete", Admin.delete_profile, (cpas, rng.choice([*ids, 987_654])), {}
        user = rng.choice([*users, "nobody"]) if rng.random() < 0.1 else rng.choice(users)
        if kind == "assign":
            mine = [p[0] for p in own] if own and rng.random() < 0.9 else ids  # the built-in one now and then
            chosen = rng.sample(mine, k=min(len(mine), rng.choice((0, 1, 1, 2, 3))))
            if rng.random() < 0.05:
                chosen.append(987_654)
            return "assign", Admin.set_user_profiles, (cpas, user, chosen), {}
        use_case = Admin.deactivate_user if kind == "deactivate" else Admin.reactivate_user
        return kind, use_case, (cpas, user), {}

    def step(self, caplog: pytest.LogCaptureFixture) -> None:
        svc, cpas = self.svc, self.cpas
        kind, use_case, args, kwargs = self.next_change()
        names = self.users()
        before = effective(svc, cpas, sorted(names))
        rows, board, snapshot = dump(svc), svc.db.board.snapshot(), svc.engine.current()

        caplog.clear()
        preview_error: ServiceError | None = None
        try:
            previewed = svc.preview(ACTOR, use_case, *args, **kwargs)
        except ServiceError as err:
            preview_error = err
        # nothing happened: no row, no version, no announcement, no rebuild, no line of authz.changes
        assert dump(svc) == rows, kind
        assert svc.db.board.snapshot() == board and svc.engine.current() is snapshot, kind
        assert not [r for r in caplog.records if r.name == "authz.changes"], kind

        try:
            changed = svc.change(ACTOR, use_case, *args, **kwargs)
        except ServiceError as err:
            assert preview_error is not None, (kind, args, kwargs, err)
            assert (type(preview_error), preview_error.details) == (type(err), err.details), kind
            self.kinds[f"{kind} refused"] = self.kinds.get(f"{kind} refused", 0) + 1
            return
        assert preview_error is None, (kind, args, kwargs, preview_error)
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        after = effective(svc, cpas, sorted(names))
        assert previewed.impact == expected_impact(svc, cpas, names, before, after), (kind, args, kwargs)
        current = svc.read(lambda s: s.versions_of([cpas])[cpas])
        assert previewed.policy_version == (changed.policy_version or current), kind
        shown, made = previewed.value, changed.value
        if kind == "create":  # the id: on PostgreSQL the preview's insert used a value of the sequence
            assert {**shown.as_json(), "id": 0} == {**made.as_json(), "id": 0}
        else:
            assert shown == made, kind


def test_a_dry_run_is_exactly_the_change_and_changes_nothing(svc: Service, caplog: pytest.LogCaptureFixture,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.INFO, logger="authz.changes")
    announced: list[str] = []
    monkeypatch.setattr(svc.notifier, "in_transaction", lambda store, cpas: announced.append(cpas))
    monkeypatch.setattr(svc.notifier, "after_commit", announced.append)
    cpas = new_kbo()
    with svc.admin(ACTOR) as admin:
        admin.create_cpas(cpas, "CPAS aléatoire", "OCMW willekeurig", "wallonia")
        for i in range(7):
            admin.user_seen(cpas, f"u{i}", name=f"Agent {'ZYXWVUT'[i]}", lang="fr")
    walk = Walk(svc, cpas, random.Random(13))
    for _ in range(40):
        announced.clear()
        walk.step(caplog)
        # the real change was announced (notify "off" calls the hooks all the same); the preview was not
        assert all(c == cpas for c in announced) and len(announced) in (0, 2)
    # the walk exercised each kind of change, made and refused
    assert {"create", "update", "delete", "assign", "deactivate", "reactivate"} <= set(walk.kinds), walk.kinds
    assert sum(n for k, n in walk.kinds.items() if k.endswith("refused")) >= 3, walk.kinds


def test_what_a_manager_is_about_to_break(svc: Service) -> None:
    """Removing "Recherche d'un dossier" from a profile: its users lose it and the help-request list that
    needs it, which stays granted but unusable; a user who holds the search through another profile keeps
    both; an inactive user holding nothing is not concerned."""
    cpas = new_kbo()
    with svc.admin(ACTOR) as admin:
        admin.create_cpas(cpas, "CPAS", "OCMW", "flanders")
        both = admin.create_profile(cpas, description_fr="Aide", description_nl=None, functions=[SEARCH, LIST]).id
        search = admin.create_profile(cpas, description_fr="Recherche", description_nl=None, functions=[SEARCH]).id
        for user, name in (("a", "Anne"), ("b", "Bert"), ("c", "Chloé")):
            admin.user_seen(cpas, user, name=name, lang="fr")
        admin.set_user_profiles(cpas, "a", [both])
        admin.set_user_profiles(cpas, "b", [both, search])
        admin.deactivate_user(cpas, "c")
    version = svc.policy(cpas).version
    previewed = svc.preview(ACTOR, Admin.update_profile, cpas, both, version=1, description_fr="Aide",
                            description_nl=None, functions=[LIST], includes=None)
    assert previewed.policy_version == version + 1
    assert previewed.impact.as_json() == {
        "users": [{"user": "a", "name": "Anne", "gains": [], "loses": [SEARCH, LIST],
                   "unusable": [{"function": LIST, "missing_prerequisites": [SEARCH]}]}],
        "summary": {"users_affected": 1, "functions_gained": 0, "functions_lost": 2},
    }
    assert svc.policy(cpas).version == version  # nothing changed
    # a deactivation: everything lost, nothing unusable (inactive means denied)
    gone = svc.preview(ACTOR, Admin.deactivate_user, cpas, "b").impact
    assert [(u.user, u.gains, u.loses, u.unusable) for u in gone.users] == [("b", (), (SEARCH, LIST), ())]
    # a change the engine has not seen yet (made by another process): the preview starts from the store's
    with svc.db.transaction() as session:
        Admin(Store(session), svc.catalog, "elsewhere").set_user_profiles(cpas, "a", [search])
    assert svc.engine.current().policies[cpas].version == version  # type: ignore[union-attr]
    gone = svc.preview(ACTOR, Admin.deactivate_user, cpas, "a").impact
    assert [(u.user, u.loses) for u in gone.users] == [("a", (SEARCH,))]
    # a new CPAS has no user yet; an existing one is refused as the change is
    new = new_kbo()
    created = svc.preview(ACTOR, Admin.create_cpas, new, "X", "X", "brussels")
    assert (created.policy_version, created.impact.users, created.value.id) == (1, (), new)
    assert svc.read(lambda s: s.get_cpas(new)) is None


def test_compare_without_a_policy_before() -> None:
    assert compare(None, None, {"u": "U"}) == Impact(())


# -- the JSON routes -------------------------------------------------------------------------------------
def test_every_change_route_takes_dry_run(app: Any, operator: Api, demo: dict[str, Any], service: Service) -> None:
    cpas, ids = demo["cpas"], demo["profiles"]
    marie, annelies, michel = "85073003328", "96031220418", "77070619530"
    with service.admin(ACTOR) as admin:
        unused = admin.create_profile(cpas, description_fr="Jetable", description_nl=None, functions=[SEARCH]).id
    before, version = dump(service), service.policy(cpas).version
    version_now = service.read(lambda s: s.versions_of([cpas])[cpas])

    def dry(method: str, url: str, body: Any = None, status: int = 200, versions: tuple[int, ...] = ()) -> Any:
        response = operator.call(method, f"{url}?dry_run=true", body)
        assert response.status_code == status, (url, response.get_json())
        assert "X-Policy-Version" not in response.headers
        if status == 200:
            answer = response.get_json()
            assert set(answer) == {"dry_run", "policy_version", "impact"} and answer["dry_run"] is True
            assert answer["policy_version"] in (versions or (version_now, version_now + 1))
            return answer["impact"]
        return response.get_json()["error"]

    # Annelies's profile gets the search it lacks: she gains it and the help-request functions it unlocks
    annelies_profile = service.policy(cpas).view(annelies).profiles[0]
    detail = operator.get(f"/cpas/{cpas}/profiles/{annelies_profile}").get_json()
    update = {"version": detail["version"], "description_fr": detail["description_fr"],
              "description_nl": detail["description_nl"], "functions": [*detail["functions"], SEARCH]}
    impact = dry("PUT", f"/cpas/{cpas}/profiles/{annelies_profile}", update)
    gains = {u["user"]: u["gains"] for u in impact["users"]}
    assert SEARCH in gains[annelies] and LIST in gains[annelies]
    assert impact["summary"]["users_affected"] == len(impact["users"])
    # the other routes, each as its real call would answer
    assert dry("POST", f"/cpas/{cpas}/profiles", {"description_fr": "Nouveau", "functions": [SEARCH]})["users"] == []
    assert dry("POST", f"/cpas/{cpas}/profiles", {"description_fr": "full", "functions": []},
               409)["code"] == "duplicate_description"
    assert dry("DELETE", f"/cpas/{cpas}/profiles/{ids['full']}", status=409)["code"] == "profile_in_use"
    assert dry("DELETE", f"/cpas/{cpas}/profiles/{unused}")["users"] == []
    lost = dry("POST", f"/cpas/{cpas}/users/{marie}/deactivate")["users"]
    assert [u["user"] for u in lost] == [marie] and lost[0]["gains"] == [] and SEARCH in lost[0]["loses"]
    assert dry("POST", f"/cpas/{cpas}/users/{michel}/reactivate")["users"] == []  # back with no profile
    assigned = dry("PUT", f"/cpas/{cpas}/users/{marie}/profiles", {"profiles": []})["users"]
    assert [u["user"] for u in assigned] == [marie]
    assert dry("PUT", f"/cpas/{cpas}/users/{michel}/profiles", {"profiles": [ids["full"]]}, 409)["code"] == "conflict"
    assert dry("POST", "/cpas", {"cpas": "0100000070", "name_fr": "X", "name_nl": "X", "region": "brussels"},
               versions=(1,)) == {
        "users": [], "summary": {"users_affected": 0, "functions_gained": 0, "functions_lost": 0}}
    assert dry("POST", "/cpas", {"cpas": cpas, "name_fr": "X", "name_nl": "X", "region": "brussels"},
               409)["code"] == "conflict"
    assert operator.post(f"/cpas/{cpas}/users/{marie}/deactivate?dry_run=maybe").status_code == 400
    assert dump(service) == before and service.policy(cpas).version == version
    # dry_run=false is the change itself
    made = operator.post(f"/cpas/{cpas}/users/{marie}/deactivate?dry_run=false")
    assert made.status_code == 200 and made.get_json()["active"] is False
    assert int(made.headers["X-Policy-Version"]) == version + 1
