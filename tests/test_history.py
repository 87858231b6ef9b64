"""The policy's history (issue 13): who may use a function, now and at any past instant. A random sequence of
changes under a recorded clock: every user's answer remembered after each step is what ``?at=`` gives for
that step's instant (and for an instant between two steps), the who-can list is what ``/enforce/batch``
decides, a purge keeps every instant from its cut on; the migration starts the history of a database made
before it. On SQLite and on PostgreSQL."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from authz_service.cli import HERE
from authz_service.config import load_settings
from authz_service.db import Database
from authz_service.engine import CpasPolicy, Rules
from authz_service.models import iso
from authz_service.service import Service
from authz_service.store import Store

from .conftest import Api

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
CPAS = "0212345668"
USERS = [f"{n:011d}" for n in range(10000000001, 10000000009)]
WATCHED = ("dossier.search", "help_request.list", "care_decision.manage")  # with prerequisites and coverings


class TickClock:
    """The history's clock in tests: a second later at each change, and remembers the last instant it gave."""

    def __init__(self, start: datetime) -> None:
        self.moment = start
        self.last = start

    def __call__(self) -> datetime:
        self.moment += timedelta(seconds=1)
        self.last = self.moment
        return self.moment


def at_query(moment: datetime) -> str:
    return "at=" + iso(moment).replace("+", "%2B")


def answers(api: Api) -> dict[str, Any]:
    """What the service answers now: every user's functions route, and who can use each watched function."""
    out: dict[str, Any] = {}
    for user in USERS:
        got = api.get(f"/cpas/{CPAS}/users/{user}/functions")
        assert got.status_code == 200, got.json
        out[user] = got.json
    for function in WATCHED:
        got = api.get(f"/cpas/{CPAS}/functions/{function}/users")
        assert got.status_code == 200, got.json
        out[function] = got.json
    return out


def answers_at(api: Api, moment: datetime) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for user in USERS:
        got = api.get(f"/cpas/{CPAS}/users/{user}/functions?{at_query(moment)}")
        assert got.status_code == 200, got.json
        out[user] = got.json
    for function in WATCHED:
        got = api.get(f"/cpas/{CPAS}/functions/{function}/users?{at_query(moment)}")
        assert got.status_code == 200, got.json
        out[function] = got.json
    return out


def step(api: Api, rng: random.Random, profiles: dict[int, int], functions: list[str]) -> None:
    """One random change through the JSON API (some of them refused or changing nothing)."""
    kind = rng.choice(["assign", "assign", "assign", "functions", "includes", "describe", "deactivate",
                       "reactivate", "create", "delete"])
    user = rng.choice(USERS)
    ids = sorted(profiles)
    if kind == "assign":
        api.put(f"/cpas/{CPAS}/users/{user}/profiles", {"profiles": rng.sample(ids, rng.randint(0, min(3, len(ids))))})
    elif kind in ("functions", "includes", "describe") and ids:
        pid = rng.choice(ids)
        body: dict[str, Any] = {"version": profiles[pid]}
        if kind == "functions":
            body["functions"] = rng.sample(functions, rng.randint(0, 6))
        elif kind == "includes":
            body["includes"] = rng.sample([i for i in ids if i != pid], rng.randint(0, min(2, len(ids) - 1)))
        else:
            body["description_fr"] = f"Profil {rng.randint(0, 10**6)}"
        got = api.put(f"/cpas/{CPAS}/profiles/{pid}", body)
        if got.status_code == 200:
            profiles[pid] = got.json["version"]
    elif kind == "deactivate":
        api.post(f"/cpas/{CPAS}/users/{user}/deactivate")
    elif kind == "reactivate":
        api.post(f"/cpas/{CPAS}/users/{user}/reactivate")
    elif kind == "create":
        got = api.post(f"/cpas/{CPAS}/profiles", {"description_fr": f"Nouveau {rng.randint(0, 10**6)}",
                                                  "functions": rng.sample(functions, rng.randint(1, 5))})
        if got.status_code == 201:
            profiles[got.json["id"]] = got.json["version"]
    elif kind == "delete" and ids:
        pid = rng.choice(ids)
        if api.delete(f"/cpas/{CPAS}/profiles/{pid}").status_code == 204:
            del profiles[pid]


def enforced(api: Api, function: str) -> dict[str, list[int]]:
    """The users /enforce/batch allows the function, with their explanation's granted_by."""
    got = api.post("/enforce/batch", {"requests": [
        {"id": user, "cpas": CPAS, "user": user, "function": function, "explain": True} for user in USERS]})
    assert got.status_code == 200
    return {r["id"]: r["explanation"]["granted_by"] for r in got.json["results"] if r["allowed"]}


def test_every_past_answer_is_given_again(service: Service, operator: Api) -> None:
    rng = random.Random(13)
    clock = TickClock(datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=1))
    service.db.history_clock = clock
    assert operator.post("/cpas", {"cpas": CPAS, "name_fr": "CPAS", "name_nl": "OCMW",
                                   "region": "wallonia"}).status_code == 201
    for user in USERS:
        seen = operator.put(f"/cpas/{CPAS}/users/{user}", {"name": f"Agent {user[-2:]}", "lang": "fr"})
        assert seen.status_code == 201
    functions = [f for f in service.catalog.selectable if f.split(".")[0] in ("dossier", "help_request",
                                                                             "care_decision")]
    profiles: dict[int, int] = {}
    for n in range(4):
        got = operator.post(f"/cpas/{CPAS}/profiles", {"description_fr": f"Profil {n}",
                                                       "functions": [WATCHED[n % 3], *rng.sample(functions, 3)]})
        profiles[got.json["id"]] = got.json["version"]
    remembered: list[tuple[datetime, dict[str, Any]]] = [(clock.last, answers(operator))]
    for _ in range(24):
        step(operator, rng, profiles, functions)
        now = answers(operator)
        remembered.append((clock.last, now))
        # who can use a function is what /enforce decides, user by user, with the explanation's profiles
        for function in WATCHED:
            assert {u["user"]: u["granted_by"] for u in now[function]["users"]} == enforced(operator, function)
    assert sum(len(then[f]["users"]) for _moment, then in remembered for f in WATCHED) > 20
    versions = {answer["dossier.search"]["policy_version"] for _moment, answer in remembered}
    assert len(versions) > 10  # the steps did change the policy

    # every step's instant, and an instant between it and the next, answers as the service did then
    for moment, then in remembered:
        assert answers_at(operator, moment) == then
        assert answers_at(operator, moment + timedelta(milliseconds=500)) == then

    # before the CPAS existed: refused, saying where the history begins
    first = remembered[0][0]
    got = operator.get(f"/cpas/{CPAS}/users/{USERS[0]}/functions?{at_query(first - timedelta(minutes=5))}")
    assert got.status_code == 400 and got.json["error"]["code"] == "history_unavailable"
    assert got.json["error"]["details"]["history_since"] is not None

    # a purge keeps every instant from its cut on, and refuses the earlier ones
    cut_moment, cut_answer = remembered[12]
    with service.db.transaction() as session:
        assert Store(session).purge_history(cut_moment + timedelta(milliseconds=100)) > 0
    assert answers_at(operator, cut_moment + timedelta(milliseconds=100)) == cut_answer
    for moment, then in remembered[13:]:
        assert answers_at(operator, moment) == then
    got = operator.get(f"/cpas/{CPAS}/functions/dossier.search/users?{at_query(cut_moment)}")
    assert (got.status_code, got.json["error"]["code"]) == (400, "history_unavailable")
    assert got.json["error"]["details"]["history_since"] == iso(cut_moment + timedelta(milliseconds=100))


def test_the_history_follows_the_engine_exactly(service: Service, operator: Api) -> None:
    """The policy rebuilt from the history at the last instant is the engine's, user by user and function by
    function (inactive users, links, descriptions)."""
    clock = TickClock(datetime.now(UTC) + timedelta(minutes=1))
    service.db.history_clock = clock
    operator.post("/cpas", {"cpas": CPAS, "name_fr": "CPAS", "name_nl": "OCMW", "region": "brussels"})
    got = operator.post(f"/cpas/{CPAS}/profiles", {"description_fr": "Un", "description_nl": "Een",
                                                   "functions": ["dossier.search", "help_request.list"]})
    pid = got.json["id"]
    for user in USERS[:3]:
        operator.put(f"/cpas/{CPAS}/users/{user}", {"name": user, "lang": "nl"})
        operator.put(f"/cpas/{CPAS}/users/{user}/profiles", {"profiles": [pid]})
    operator.post(f"/cpas/{CPAS}/users/{USERS[1]}/deactivate")
    live = service.policy(CPAS)
    rebuilt: CpasPolicy | None = service.read(lambda s: s.cpas_policy_at(CPAS, live.rules, clock.last))
    assert rebuilt is not None and rebuilt.version == live.version
    assert rebuilt.descriptions == live.descriptions
    for user in USERS:
        assert rebuilt.view(user) == live.view(user)
    for function in service.catalog.selectable:
        assert rebuilt.grants_of(function) == live.grants_of(function)


def _config(connection: Any) -> Config:
    cfg = Config(str(HERE / "alembic.ini"))
    cfg.set_main_option("script_location", str(HERE / "migrations"))
    cfg.attributes["connection"] = connection
    return cfg


def test_the_migration_starts_the_history_of_an_older_database(database_url: str) -> None:
    """A database at 0006 with a CPAS, its profiles, users and links: after 0007, its state now is the
    snapshot's, and an instant before the migration is refused."""
    database = Database(database_url)
    try:
        with database.engine.begin() as connection:
            command.upgrade(_config(connection), "0006")
            connection.execute(sa.text(
                "INSERT INTO cpas (id, name_fr, name_nl, region, policy_version, created_at) "
                "VALUES (:c, 'CPAS', 'OCMW', 'wallonia', 7, :now)"), {"c": CPAS, "now": datetime.now(UTC)})
            connection.execute(sa.text(
                "INSERT INTO profile (id, cpas_id, description_fr, description_nl, key_fr, key_nl, builtin, version, "
                "created_at, updated_at) VALUES (41, :c, 'Recherche', 'Zoeken', 'recherche', 'zoeken', false, 1, "
                ":now, :now)"), {"c": CPAS, "now": datetime.now(UTC)})
            for user, active in ((USERS[0], True), (USERS[1], False)):
                connection.execute(sa.text(
                    "INSERT INTO app_user (cpas_id, \"user\", name, lang, active, created_at, last_seen_at) "
                    "VALUES (:c, :u, 'Agent', 'fr', :a, :now, :now)"),
                    {"c": CPAS, "u": user, "a": active, "now": datetime.now(UTC)})
            for child, parent in ((f"user:{USERS[0]}", "profile:41"), ("profile:41", "function:dossier.search")):
                connection.execute(sa.text(
                    "INSERT INTO casbin_rule (ptype, v0, v1, v2) VALUES ('g', :a, :b, :c)"),
                    {"a": child, "b": parent, "c": CPAS})
        before = datetime.now(UTC) - timedelta(seconds=1)
        with database.engine.begin() as connection:
            command.upgrade(_config(connection), "head")
        rules = Rules.from_rows([("function:dossier.search", "*", "dossier.search", "allow")])
        with database.reading() as session:
            store = Store(session)
            now = store.cpas_policy_at(CPAS, rules, datetime.now(UTC) + timedelta(seconds=1))
            assert store.cpas_policy_at(CPAS, rules, before) is None
            assert now is not None and now.version == 7
            assert now.grants_of("dossier.search") == ((USERS[0], (41,)),)
            assert now.view(USERS[1]).known and not now.view(USERS[1]).active
            assert now.descriptions == {41: ("Recherche", "Zoeken")}
    finally:
        database.dispose()


def test_purge_history_command(database_url: str) -> None:
    from click.testing import CliRunner

    from authz_service.cli import init_db, main

    init_db(load_settings({"database_url": database_url}))
    later = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    result = CliRunner().invoke(main, ["purge-history", "--before", later], env={"AUTHZ_DATABASE_URL": database_url})
    assert result.exit_code == 0, result.output
    assert result.output.startswith("purged ")
    result = CliRunner().invoke(main, ["purge-history", "--before", "yesterday"],
                                env={"AUTHZ_DATABASE_URL": database_url})
    assert result.exit_code != 0 and "ISO 8601" in result.output
