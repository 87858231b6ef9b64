"""Races on PostgreSQL through real servers (`authz-service serve`, gunicorn, 2 workers each): parallel HTTP
calls from real threads. Whatever the interleaving, a race never gives a 5xx; idempotent calls stay
idempotent; one successful change writes exactly one audit row; the rows stay consistent (no inactive
user holds a profile, no link to a deleted profile); and every worker's engine ends up agreeing with the
store."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from authz_service.catalog import load_catalog
from authz_service.cli import init_db
from authz_service.config import Settings, load_settings
from authz_service.db import Database
from authz_service.security import new_api_key
from authz_service.service import Service
from authz_service.store import Store

from .conftest import IN_CI, _postgres_available, postgres_schema
from .serving import call, running_server

pytestmark = pytest.mark.postgres


def kbo(n: int) -> str:
    """A valid KBO/BCE number (mod-97) from a 7-digit-or-less number."""
    base = 2_000_000 + n  # 8 digits starting with 0 once padded: "02xxxxxx"
    return f"{base:08d}{97 - base % 97:02d}"


_numbers = itertools.count(int(uuid.uuid4().int % 500_000))


def new_kbo() -> str:
    return kbo(next(_numbers))


@dataclass
class World:
    url: str
    settings: Settings
    key: str  # an operator's key: every scope, every CPAS


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    problem = _postgres_available()
    if problem:
        if IN_CI:
            pytest.fail(f"PostgreSQL is required in CI: {problem}")
        pytest.skip(f"PostgreSQL not available: {problem}")
    name = f"race_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    url = postgres_schema(name)
    try:
        settings = load_settings({"database_url": url, "poll_interval": 0, "notify": "off", "secret_key": "x"})
        init_db(settings)
        database = Database(url)
        try:
            with database.transaction() as session:
                key = new_api_key(Store(session), "race", ("enforce", "users", "admin"), None)
        finally:
            database.dispose()
        yield World(url, settings, key)
    finally:
        postgres_schema(name, drop=True)


def server_env(world: World) -> dict[str, str]:
    # a generous store timeout: these tests are about races, and a busy shared test machine must not turn
    # a slow lock wait into a 503 (test_store_faults.py is about timeouts)
    return {"AUTHZ_DATABASE_URL": world.url, "AUTHZ_NOTIFY": "postgres", "AUTHZ_SECRET_KEY": "race-secret",
            "AUTHZ_POLL_INTERVAL": "1", "AUTHZ_LOG_LEVEL": "WARNING", "AUTHZ_STORE_TIMEOUT": "10"}


@pytest.fixture(scope="module")
def server(world: World) -> Iterator[str]:
    with running_server(server_env(world), workers=2) as url:
        yield url


@contextlib.contextmanager
def two_servers(env: dict[str, str]) -> Iterator[list[str]]:
    """Two servers of 2 workers each on one database, started side by side."""
    managers = [running_server(env, workers=2) for _ in range(2)]
    with contextlib.ExitStack() as stack, ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(m.__enter__) for m in managers]
        urls, failures = [], []
        for manager, future in zip(managers, futures, strict=True):
            try:
                urls.append(future.result())
                stack.push(manager.__exit__)
            except Exception as exc:
                failures.append(exc)
        if failures:
            raise failures[0]
        yield urls


def parallel(calls: Sequence[Callable[[], Any]]) -> list[Any]:
    """Run every call on its own thread, all released at once; results in order."""
    gate = threading.Barrier(len(calls))

    def run(fn: Callable[[], Any]) -> Any:
        gate.wait()
        return fn()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def sql(world: World, query: str, **params: Any) -> list[Any]:
    engine = create_engine(world.url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(query), params).all())
    finally:
        engine.dispose()


def audit_rows(world: World, action: str, target: str) -> int:
    return int(sql(world, "SELECT count(*) FROM audit WHERE action = :a AND target = :t", a=action, t=target)[0][0])


def create_cpas(server: str, key: str, cpas: str) -> None:
    status, body = call(server, "POST", "/cpas", {"cpas": cpas, "name_fr": f"CPAS {cpas}",
                                                   "name_nl": f"OCMW {cpas}", "region": "wallonia"}, key)
    assert status == 201, body


def create_profile(server: str, key: str, cpas: str, label: str, functions: list[str]) -> int:
    status, body = call(server, "POST", f"/cpas/{cpas}/profiles",
                        {"description_fr": label, "description_nl": None, "functions": functions}, key)
    assert status == 201, body
    return int(body["id"])


def no_server_error(results: list[tuple[int, Any]]) -> None:
    errors = [(s, b) for s, b in results if s >= 500]
    assert not errors, f"{len(errors)} answers were 5xx: {errors[:3]}"


# -- the measured scenarios ----------------------------------------------------------------------------
def test_parallel_first_logins_create_the_user_once(server: str, world: World) -> None:
    cpas = new_kbo()
    create_cpas(server, world.key, cpas)
    for round_ in range(3):
        user = f"9{round_}000000001"
        results = parallel([partial(call, server, "PUT", f"/cpas/{cpas}/users/{user}",
                                    {"name": "Nouvel Utilisateur", "lang": "fr"}, world.key)] * 10)
        no_server_error(results)
        assert sorted(s for s, _ in results) == [200] * 9 + [201], results
        assert all(b["user"] == user and b["active"] for _, b in results)
        assert audit_rows(world, "user.first_login", f"user:{user}") == 1


def test_parallel_creation_of_one_cpas_gives_one_201_and_409s(server: str, world: World) -> None:
    cpas = new_kbo()
    body = {"cpas": cpas, "name_fr": "CPAS", "name_nl": "OCMW", "region": "brussels"}
    results = parallel([lambda: call(server, "POST", "/cpas", body, world.key)] * 50)
    no_server_error(results)
    assert sorted(s for s, _ in results) == [201] + [409] * 49, Counter(s for s, _ in results)
    assert {b["error"]["code"] for s, b in results if s == 409} == {"conflict"}
    assert audit_rows(world, "cpas.create", f"cpas:{cpas}") == 1


def test_parallel_deletes_of_one_profile_give_one_204_and_404s(server: str, world: World) -> None:
    cpas = new_kbo()
    create_cpas(server, world.key, cpas)
    for round_ in range(3):
        profile = create_profile(server, world.key, cpas, f"Jetable {round_}", ["dossier.search"])
        results = parallel([partial(call, server, "DELETE", f"/cpas/{cpas}/profiles/{profile}", key=world.key)] * 10)
        no_server_error(results)
        assert sorted(s for s, _ in results) == [204] + [404] * 9, results
        assert audit_rows(world, "profile.delete", f"profile:{profile}") == 1


def test_updates_racing_a_delete_of_a_profile_never_give_5xx(server: str, world: World) -> None:
    cpas = new_kbo()
    create_cpas(server, world.key, cpas)
    for round_ in range(5):
        profile = create_profile(server, world.key, cpas, f"Disputé {round_}", ["dossier.search"])
        path = f"/cpas/{cpas}/profiles/{profile}"
        updates = [partial(call, server, "PUT", path, {"version": 1, "description_fr": f"Renommé {round_}.{i}",
                                                       "description_nl": None, "functions": ["dossier.list"]},
                           world.key) for i in range(5)]
        deletes = [partial(call, server, "DELETE", path, key=world.key)] * 5
        results = parallel(updates + deletes)
        no_server_error(results)
        updated, deleted = [s for s, _ in results[:5]], [s for s, _ in results[5:]]
        assert sorted(deleted) == [204] + [404] * 4, results
        assert set(updated) <= {200, 404, 409} and updated.count(200) <= 1, results
        assert call(server, "GET", path, key=world.key)[0] == 404
        assert audit_rows(world, "profile.delete", f"profile:{profile}") == 1
        assert audit_rows(world, "profile.update", f"profile:{profile}") == updated.count(200)


def test_assignments_racing_a_delete_of_a_profile_leave_no_dangling_link(server: str, world: World) -> None:
    cpas = new_kbo()
    create_cpas(server, world.key, cpas)
    user = "85073003328"
    assert call(server, "PUT", f"/cpas/{cpas}/users/{user}", {"name": "Marie", "lang": "fr"}, world.key)[0] == 201
    for round_ in range(5):
        profile = create_profile(server, world.key, cpas, f"Affecté {round_}", ["dossier.search"])
        assign = [partial(call, server, "PUT", f"/cpas/{cpas}/users/{user}/profiles", {"profiles": [profile]},
                          world.key)] * 5
        delete = [partial(call, server, "DELETE", f"/cpas/{cpas}/profiles/{profile}", key=world.key)] * 5
        results = parallel(assign + delete)
        no_server_error(results)
        assert {s for s, _ in results[:5]} <= {200, 400}, results
        assert {s for s, _ in results[5:]} <= {204, 404, 409}, results
        assert not dangling_links(world, cpas)
        # clear the way for the next round
        call(server, "PUT", f"/cpas/{cpas}/users/{user}/profiles", {"profiles": []}, world.key)


def test_a_deactivation_racing_an_assignment_never_leaves_an_inactive_user_allowed(server: str, world: World) -> None:
    """Measured before: `{"active": false, "profiles": [8]}` and `allowed: true` in 4 of 20 rounds."""
    cpas = new_kbo()
    create_cpas(server, world.key, cpas)
    builtin = call(server, "GET", f"/cpas/{cpas}/profiles", key=world.key)[1][0]["id"]
    user = "85073003328"
    assert call(server, "PUT", f"/cpas/{cpas}/users/{user}", {"name": "Marie", "lang": "fr"}, world.key)[0] == 201
    for _ in range(20):
        assert call(server, "POST", f"/cpas/{cpas}/users/{user}/reactivate", key=world.key)[0] == 200
        results = parallel([
            partial(call, server, "PUT", f"/cpas/{cpas}/users/{user}/profiles", {"profiles": [builtin]}, world.key),
            partial(call, server, "POST", f"/cpas/{cpas}/users/{user}/deactivate", key=world.key),
        ])
        no_server_error(results)
        assert results[0][0] in (200, 409) and results[1][0] == 200, results
        status, state = call(server, "GET", f"/cpas/{cpas}/users/{user}", key=world.key)
        assert status == 200 and state["active"] is False and state["profiles"] == [], state
        version = max(b["policy_version"] for s, b in results if s == 200)
        decision = call(server, "POST", "/enforce", {"cpas": cpas, "user": user, "function": "dossier.search",
                                                     "min_policy_version": version, "explain": True}, world.key)[1]
        assert decision["allowed"] is False and decision["explanation"]["reason"] == "user_inactive", decision


def dangling_links(world: World, cpas: str | None = None) -> list[Any]:
    """g rows naming a profile that does not exist (in its CPAS)."""
    return sql(world, """
        SELECT r.v0, r.v1, r.v2 FROM casbin_rule r
        WHERE r.ptype = 'g' AND (CAST(:cpas AS TEXT) IS NULL OR r.v2 = :cpas)
          AND ((r.v1 LIKE 'profile:%' AND NOT EXISTS (
                  SELECT 1 FROM profile p WHERE p.cpas_id = r.v2 AND 'profile:' || p.id = r.v1))
            OR (r.v0 LIKE 'profile:%' AND NOT EXISTS (
                  SELECT 1 FROM profile p WHERE p.cpas_id = r.v2 AND 'profile:' || p.id = r.v0)))""", cpas=cpas)


# -- a randomized mix --------------------------------------------------------------------------------------
SEED = 20261201
THREADS = 8
OPS_PER_THREAD = 40
CHANGES = {  # operation -> (audit action, status of a success)
    "first_login": ("user.first_login", 201),
    "deactivate": ("user.deactivate", 200),
    "reactivate": ("user.reactivate", 200),
    "assign": ("user.assign", 200),
    "delete_profile": ("profile.delete", 204),
    "update_profile": ("profile.update", 200),
    "create_profile": ("profile.create", 201),
    "create_cpas": ("cpas.create", 201),
}
ALLOWED = {
    "first_login": {200, 201},
    "deactivate": {200, 404},
    "reactivate": {200, 404},
    "assign": {200, 400, 404, 409},  # 400: a profile that no longer exists; 409: the user is inactive
    "delete_profile": {204, 404, 409},  # 409: still assigned or included
    "get_profile": {200, 404},
    "update_profile": {200, 404, 409},  # 409: someone else's version, or a description taken
    "create_profile": {201},
    "create_cpas": {201, 409},
}


@dataclass
class Mix:
    servers: list[str]
    key: str
    cpas: list[str]
    users: list[str]
    functions: list[str]
    profiles: dict[str, list[int]]
    new_cpas: list[str]
    lock: threading.Lock = field(default_factory=threading.Lock)
    answers: list[tuple[str, int, Any]] = field(default_factory=list)

    def run(self, name: str, method: str, path: str, body: Any = None, rng: random.Random | None = None) -> int:
        server = (rng or random).choice(self.servers)
        status, answer = call(server, method, path, body, self.key)
        with self.lock:
            self.answers.append((name, status, answer))
        return status

    def thread(self, index: int) -> None:
        rng = random.Random(SEED * 100 + index)
        made = itertools.count()
        for _ in range(OPS_PER_THREAD):
            cpas = rng.choice(self.cpas)
            user = rng.choice(self.users)
            with self.lock:
                known = list(self.profiles[cpas])
            profile = rng.choice(known)
            op = rng.choices(list(CHANGES), weights=[2, 2, 2, 5, 1, 3, 2, 1])[0]
            base = f"/cpas/{cpas}"
            if op == "first_login":
                self.run(op, "PUT", f"{base}/users/{user}", {"name": f"Utilisateur {user[-3:]}", "lang": "fr"}, rng)
            elif op in ("deactivate", "reactivate"):
                self.run(op, "POST", f"{base}/users/{user}/{op}", rng=rng)
            elif op == "assign":
                self.run(op, "PUT", f"{base}/users/{user}/profiles", {"profiles": rng.sample(known, rng.randint(0, 2))},
                         rng)
            elif op == "delete_profile":
                self.run(op, "DELETE", f"{base}/profiles/{profile}", rng=rng)
            elif op == "update_profile":
                server = rng.choice(self.servers)
                status, current = call(server, "GET", f"{base}/profiles/{profile}", key=self.key)
                with self.lock:
                    self.answers.append(("get_profile", status, current))
                if status == 200:
                    self.run(op, "PUT", f"{base}/profiles/{profile}", {
                        "version": current["version"], "description_fr": current["description_fr"],
                        "description_nl": f"v{rng.randint(0, 9)}",
                        "functions": rng.sample(self.functions, rng.randint(1, 4))}, rng)
            elif op == "create_profile":
                status, body = call(rng.choice(self.servers), "POST", f"{base}/profiles", {
                    "description_fr": f"Profil {index}.{next(made)}", "description_nl": None,
                    "functions": rng.sample(self.functions, 2)}, self.key)
                with self.lock:
                    self.answers.append((op, status, body))
                    if status == 201:
                        self.profiles[cpas].append(int(body["id"]))
            else:
                new = rng.choice(self.new_cpas)
                self.run(op, "POST", "/cpas", {"cpas": new, "name_fr": "Nouveau", "name_nl": "Nieuw",
                                               "region": "flanders"}, rng)


def test_a_randomized_mix_of_parallel_changes_keeps_every_invariant(world: World) -> None:
    with two_servers(server_env(world)) as servers:
        first = servers[0]
        catalog = load_catalog(world.settings.policies_dir)
        functions = sorted(catalog.selectable)[:8]
        cpas = [new_kbo(), new_kbo()]
        users = [f"7{n:010d}" for n in range(8)]
        profiles: dict[str, list[int]] = {}
        for c in cpas:
            create_cpas(first, world.key, c)
            profiles[c] = [create_profile(first, world.key, c, f"Départ {i}", functions[i:i + 3]) for i in range(4)]
            for u in users[:5]:
                assert call(first, "PUT", f"/cpas/{c}/users/{u}", {"name": f"Utilisateur {u[-3:]}", "lang": "fr"},
                            world.key)[0] == 201
        mark = int(sql(world, "SELECT coalesce(max(id), 0) FROM audit")[0][0])
        mix = Mix(servers, world.key, cpas, users, functions, profiles, [new_kbo() for _ in range(3)])

        started = time.monotonic()
        parallel([partial(mix.thread, i) for i in range(THREADS)])
        took = time.monotonic() - started

        # no 5xx, and only the answers each call may give
        errors = [(n, s, b) for n, s, b in mix.answers if s >= 500]
        assert not errors, f"{len(errors)} of {len(mix.answers)} answers were 5xx in {took:.1f} s: {errors[:5]}"
        odd = [(n, s, b) for n, s, b in mix.answers if s not in ALLOWED[n]]
        assert not odd, f"unexpected answers: {odd[:5]}"

        # no inactive user holds a profile; no link names a deleted profile
        inactive_holders = sql(world, """
            SELECT u.cpas_id, u."user", r.v1 FROM app_user u
            JOIN casbin_rule r ON r.ptype = 'g' AND r.v2 = u.cpas_id AND r.v0 = 'user:' || u."user"
            WHERE NOT u.active""")
        assert not inactive_holders, inactive_holders
        assert not dangling_links(world)

        # exactly one audit row per successful change; an assignment of the profiles a user already holds
        # succeeds but changes nothing, and writes no row: every audited assignment changed something
        succeeded = Counter(CHANGES[n][0] for n, s, _ in mix.answers if n in CHANGES and s == CHANGES[n][1])
        audited = Counter({a: int(c) for a, c in sql(
            world, "SELECT action, count(*) FROM audit WHERE id > :mark GROUP BY action", mark=mark)})
        assigned, assigned_ok = audited.pop("user.assign", 0), succeeded.pop("user.assign", 0)
        assert audited == succeeded, {"audit rows": dict(audited), "successful calls": dict(succeeded)}
        assert 0 < assigned <= assigned_ok, (assigned, assigned_ok)
        rows = sql(world, "SELECT before, after FROM audit WHERE id > :mark AND action = 'user.assign'", mark=mark)
        assert all(_json(b)["profiles"] != _json(a)["profiles"] for b, a in rows)

        # every server's engine agrees with the store
        fresh = Service(world.settings)
        try:
            assert fresh.sync()
            expected = {
                (c, u): (view.active, list(view.profiles), sorted(view.functions))
                for c in cpas
                for u in users
                for view in [fresh.policy(c).view(u)]
                if view.known
            }
        finally:
            fresh.close()
        deadline = time.monotonic() + 10
        while True:
            wrong = engines_disagree(servers, world.key, expected)
            if not wrong or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert not wrong, f"{len(wrong)} answers differ from the store, e.g. {wrong[:3]}"
        assert took < 20, f"the mix took {took:.1f} s"


def engines_disagree(servers: list[str], key: str, expected: dict[tuple[str, str], Any]) -> list[Any]:
    wrong = []
    for server in servers:
        for (cpas, user), want in expected.items():
            for _ in range(3):  # gunicorn hands each connection to either worker
                status, body = call(server, "GET", f"/cpas/{cpas}/users/{user}/functions", key=key)
                got = (body["active"], [p["id"] for p in body["profiles"]], body["functions"]) if status == 200 \
                    else (status, body)
                if got != want:
                    wrong.append((server, cpas, user, got, want))
    return wrong


def _json(value: Any) -> Any:
    """A JSON column as the driver hands it back (already decoded on PostgreSQL, text elsewhere)."""
    return json.loads(value) if isinstance(value, str) else value
