"""Randomized differential test: the service's decisions equal stock pycasbin's ``Enforcer`` on
``model.conf`` over the exported policy, and both equal a plain reference computed from what was
asked (profiles, inclusions, assignments) and the product's rules (covering, prerequisites).
Random catalogs, profiles, inclusions, assignments and deactivations go through the real use cases;
fixed seeds."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import casbin
import pytest
import yaml

from authz_service.catalog import REGIONS, Catalog
from authz_service.cli import init_db
from authz_service.config import load_settings
from authz_service.errors import InvalidRequest
from authz_service.service import Service
from authz_service.store import policy_csv

ROOT = Path(__file__).resolve().parent.parent
WHY = {"fr": "test", "nl": "test"}  # a prerequisite's reason, in French and Dutch


def kbo(n: int) -> str:
    head = f"0{n:07d}"
    return head + f"{97 - int(head) % 97:02d}"


def random_catalog(rng: random.Random, folder: Path, n_selectable: int = 30) -> None:
    groups = [{"code": f"g{i}", "parent": None if i < 3 else f"g{rng.randrange(3)}", "order": i,
               "label": {"fr": f"Bloc {i}", "nl": f"Blok {i}"}, "implied": False, "note": None}
              for i in range(6)]
    codes = [f"f{i}.act" for i in range(n_selectable)]
    functions: list[dict[str, Any]] = []
    covered_count = 0
    for i, code in enumerate(codes):
        covers = []
        if rng.random() < 0.3:
            for _ in range(rng.randint(1, 3)):
                covers.append(f"f{i}.covered{covered_count}")
                covered_count += 1
        # prerequisites only on earlier codes: a DAG, with chains
        requires = [{"code": c, "reason": WHY} for c in rng.sample(codes[:i], k=min(i, rng.choice([0, 0, 1, 2])))]
        functions.append({"code": code, "group": rng.choice([None, *[g["code"] for g in groups]]), "order": i,
                          "label": {"fr": f"Fonction {i}", "nl": f"Functie {i}"}, "selectable": True,
                          "covers": covers, "requires": requires})
        for c in covers:
            extra = [{"code": r, "reason": WHY} for r in rng.sample(codes[:i], k=min(i, rng.choice([0, 1])))]
            functions.append({"code": c, "group": functions[-1]["group"], "order": 1000 + covered_count,
                              "label": {"fr": c, "nl": c}, "selectable": False, "covers": [],
                              "requires": extra})
    (folder / "catalog.yaml").write_text(yaml.safe_dump({"version": "test", "groups": groups,
                                                         "functions": functions}))
    names = {r: {"fr": "Modèle", "nl": "Sjabloon"} for r in REGIONS}
    (folder / "templates.yaml").write_text(yaml.safe_dump({"templates": [
        {"code": "t", "order": 1, "names": names, "functions": []}]}))


class World:
    """What the test asked for, kept on the side: the reference decision is computed from this alone,
    from the product's rules, without Casbin rows."""

    def __init__(self) -> None:
        self.functions: dict[str, dict[int, set[str]]] = {}  # cpas -> profile -> selectable codes
        self.includes: dict[str, dict[int, list[int]]] = {}
        self.assigned: dict[str, dict[str, list[int]]] = {}  # cpas -> user -> profiles
        self.active: dict[str, dict[str, bool]] = {}

    def reference(self, catalog: Catalog, cpas: str, user: str, code: str) -> bool:
        if not self.active.get(cpas, {}).get(user, False):
            return False
        seen: set[int] = set()
        todo = list(self.assigned[cpas].get(user, []))
        while todo:
            pid = todo.pop()
            if pid not in seen:
                seen.add(pid)
                todo.extend(self.includes[cpas].get(pid, []))
        granted = set().union(*(self.functions[cpas][p] for p in seen)) if seen else set()
        held = granted | {c for g in granted for c in catalog.functions[g].covers}
        return code in held and catalog.prerequisites(code) <= granted


def build_world(rng: random.Random, service: Service, cpas_ids: list[str]) -> tuple[World, dict[str, list[str]]]:
    catalog = service.catalog
    world = World()
    users: dict[str, list[str]] = {}
    for cpas in cpas_ids:
        with service.admin("test") as admin:
            admin.create_cpas(cpas, f"CPAS {cpas}", f"OCMW {cpas}", rng.choice(REGIONS))
            builtin = admin.store.builtin_profile(cpas)
            assert builtin is not None
        world.functions[cpas] = {builtin.id: set(catalog.selectable)}
        world.includes[cpas] = {}
        world.assigned[cpas] = {}
        world.active[cpas] = {}
        profiles: list[int] = []
        for i in range(rng.randint(3, 8)):
            includes = rng.sample(profiles, k=min(len(profiles), rng.choice([0, 0, 1, 2])))
            functions = rng.sample(catalog.selectable, k=rng.randint(0, 12))
            try:
                with service.admin("test") as admin:
                    profile = admin.create_profile(cpas, description_fr=f"P{i}", description_nl=None,
                                                   functions=functions, includes=includes)
            except InvalidRequest:  # inclusions nested too deep: the same profile without them
                includes = []
                with service.admin("test") as admin:
                    profile = admin.create_profile(cpas, description_fr=f"P{i}", description_nl=None,
                                                   functions=functions)
            profiles.append(profile.id)
            world.functions[cpas][profile.id] = set(functions)
            world.includes[cpas][profile.id] = includes
        profiles.append(builtin.id)
        users[cpas] = []
        for u in range(rng.randint(12, 20)):
            user = f"{cpas[-3:]}{u:08d}"
            chosen = rng.sample(profiles, k=rng.choice([0, 1, 1, 2, 3]))
            with service.admin("test") as admin:
                admin.user_seen(cpas, user, name=f"User {u}", lang="fr")
                admin.set_user_profiles(cpas, user, chosen)
            world.assigned[cpas][user], world.active[cpas][user] = chosen, True
            if rng.random() < 0.1:
                with service.admin("test") as admin:
                    admin.deactivate_user(cpas, user)
                world.assigned[cpas][user], world.active[cpas][user] = [], False
                if rng.random() < 0.5:
                    with service.admin("test") as admin:
                        admin.reactivate_user(cpas, user)
                    world.active[cpas][user] = True
            users[cpas].append(user)
        # an edit after the fact, so that rebuilt CPAS are compared too
        functions = rng.sample(catalog.selectable, k=5)
        with service.admin("test") as admin:
            victim = admin.store.get_profile(cpas, profiles[0])
            assert victim is not None
            admin.update_profile(cpas, victim.id, version=victim.version, description_fr=victim.description_fr,
                                 description_nl=None, functions=functions, includes=None)
        world.functions[cpas][profiles[0]] = set(functions)
    return world, users


def stock_enforcer(service: Service, cpas_ids: list[str], folder: Path) -> casbin.Enforcer:
    lines: dict[tuple[str, ...], None] = {}
    for cpas in cpas_ids:
        for line in service.read(lambda store, c=cpas: store.policy_lines(c)):
            lines[line] = None
    path = folder / "policy.csv"
    path.write_text(policy_csv(lines))
    return casbin.Enforcer(str(ROOT / "model.conf"), str(path))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_service_decides_like_stock_pycasbin(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    random_catalog(rng, tmp_path)
    settings = load_settings({"database_url": f"sqlite:///{tmp_path / 'db.sqlite3'}", "policies_dir": tmp_path,
                              "poll_interval": 0})
    init_db(settings)
    service = Service(settings)
    try:
        service.sync()
        cpas_ids = [kbo(100 + seed * 10 + i) for i in range(3)]
        world, users = build_world(rng, service, cpas_ids)
        enforcer = stock_enforcer(service, cpas_ids, tmp_path)
        codes = list(service.catalog.functions)
        checked = allowed = 0
        for cpas in cpas_ids:
            policy = service.policy(cpas)
            for user in [*users[cpas], "99999999999", *users[cpas_ids[0]][:2]]:
                for code in codes:
                    expected = enforcer.enforce(f"user:{user}", cpas, code)
                    assert world.reference(service.catalog, cpas, user, code) is expected, (seed, cpas, user, code)
                    got = policy.decide(user, code, explain=checked % 7 == 0)
                    assert got.allowed is expected, (seed, cpas, user, code)
                    assert (code in policy.functions_of(user)) is expected
                    checked += 1
                    allowed += expected
        assert checked > 2000
        assert 0.05 < allowed / checked < 0.95, allowed / checked  # the test exercises both answers
    finally:
        service.close()


def test_adapter_reads_our_table(tmp_path: Path) -> None:
    """sqlalchemy-adapter loads the very rows we write, and the stock Enforcer decides the same."""
    from sqlalchemy_adapter import Adapter

    rng = random.Random(7)
    random_catalog(rng, tmp_path, n_selectable=15)
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    settings = load_settings({"database_url": url, "policies_dir": tmp_path, "poll_interval": 0})
    init_db(settings)
    service = Service(settings)
    try:
        service.sync()
        cpas_ids = [kbo(555)]
        _, users = build_world(rng, service, cpas_ids)
        enforcer = casbin.Enforcer(str(ROOT / "model.conf"), Adapter(url))
        policy = service.policy(cpas_ids[0])
        for user in users[cpas_ids[0]]:
            for code in service.catalog.functions:
                assert policy.decide(user, code).allowed is enforcer.enforce(f"user:{user}", cpas_ids[0], code)
    finally:
        service.close()
