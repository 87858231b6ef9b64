"""The consistency model (README, "Consistency"): within one host every process decides with every change
already answered (the version board); across instances the caller's ``min_policy_version`` token; inactive
means denied in the engine itself; ids are never reused; settings that keep every Casbin alike.

Two ``Service`` objects on one database stand for two workers (same board file) or, with boards of their
own, two instances on different hosts. Neither polls nor listens: only the mechanism under test can
bring the second one up to date. Real processes are in tests/test_workers.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import casbin
import pytest
from alembic import command
from alembic.config import Config
from pydantic import ValidationError
from sqlalchemy import insert, select, text

import authz_service
from authz_service import create_app
from authz_service.cli import init_db
from authz_service.config import load_settings
from authz_service.engine import MAX_HOPS, CpasPolicy, Rules
from authz_service.errors import Unavailable
from authz_service.models import AuditEntry, CasbinRule
from authz_service.security import new_api_key
from authz_service.service import Service
from authz_service.store import Store

from .conftest import Api

CPAS = "0212345668"
USER = "71020312345"
FN = "dossier.search"
REPO = Path(__file__).resolve().parent.parent


def _services(database_url: str, tmp_path: Path, *, same_host: bool, **extra: Any) -> tuple[Service, Service]:
    base = {"database_url": database_url, "poll_interval": 0, "notify": "off", "secret_key": "x", **extra}
    init_db(load_settings(base))
    boards = (None, None) if same_host else (str(tmp_path / "host-a"), str(tmp_path / "host-b"))
    services = []
    for board in boards:
        svc = Service(load_settings({**base, **({"version_board": board} if board else {})}))
        svc.sync()
        services.append(svc)
    return services[0], services[1]


def _setup(writer: Service) -> int:
    with writer.admin("test") as admin:
        admin.create_cpas(CPAS, "CPAS test", "OCMW test", "wallonia")
    with writer.admin("test") as admin:
        admin.user_seen(CPAS, USER, name="Agent", lang="fr")
        builtin = admin.store.builtin_profile(CPAS)
        assert builtin is not None
        return builtin.id


def _change(writer: Service, fn: Any) -> int:
    with writer.admin("test") as admin:
        fn(admin)
    assert admin.policy_version is not None
    return admin.policy_version


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
def test_a_change_answered_by_one_worker_is_decided_by_every_other(database_url: str, tmp_path: Path) -> None:
    writer, reader = _services(database_url, tmp_path, same_host=True)
    try:
        builtin = _setup(writer)
        for _ in range(30):
            version = _change(writer, lambda a: a.set_user_profiles(CPAS, USER, [builtin]))
            policy = reader.policy(CPAS)
            assert policy.allows(USER, FN) and policy.version == version
            assert reader.policy(CPAS).view(USER) == writer.policy(CPAS).view(USER)  # same answer, same ETag
            version = _change(writer, lambda a: a.deactivate_user(CPAS, USER))
            policy = reader.policy(CPAS)
            assert not policy.allows(USER, FN) and policy.version == version
            _change(writer, lambda a: a.reactivate_user(CPAS, USER))
        # a CPAS created by a sibling is known at once, though the reader looked it up before it existed
        other = "0207196354"
        with pytest.raises(authz_service.errors.UnknownCpas):
            reader.policy(other)
        with writer.admin("test") as admin:
            admin.create_cpas(other, "Autre", "Ander", "brussels")
        assert reader.policy(other).version == 1
    finally:
        writer.close()
        reader.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
def test_the_token_brings_another_instance_up_to_date(database_url: str, tmp_path: Path) -> None:
    writer, reader = _services(database_url, tmp_path, same_host=False, consistency_wait=0.2)
    try:
        builtin = _setup(writer)
        reader.sync()
        before = reader.policy(CPAS).version
        version = _change(writer, lambda a: a.set_user_profiles(CPAS, USER, [builtin]))
        # no board in common, no notification, no poll: without the token the other host is behind ...
        assert reader.policy(CPAS).version == before and not reader.policy(CPAS).allows(USER, FN)
        # ... with it, it reads the store first
        policy = reader.policy(CPAS, version)
        assert policy.version == version and policy.allows(USER, FN)
        # a version the store does not have: 503 once the bounded wait is over, never an old answer
        with pytest.raises(Unavailable) as raised:
            reader.policy(CPAS, version + 5)
        assert raised.value.details == {"policy_version": version, "min_policy_version": version + 5}
    finally:
        writer.close()
        reader.close()


def _api(app: Any, database_url: str) -> Api:
    database = app.extensions["authz"].db
    with database.transaction() as session:
        key = new_api_key(Store(session), "t", ("enforce", "users", "admin"), None)
    return Api(app.test_client(), key)


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_min_policy_version_on_every_decision_route(database_url: str, tmp_path: Path) -> None:
    base = {"database_url": database_url, "poll_interval": 0, "notify": "off", "secret_key": "x",
            "consistency_wait": 0.2}
    init_db(load_settings(base))
    one = create_app({**base, "version_board": str(tmp_path / "a")}, start_polling=False)
    two = create_app({**base, "version_board": str(tmp_path / "b")}, start_polling=False)
    try:
        a, b = _api(one, database_url), _api(two, database_url)
        created = a.post("/cpas", {"cpas": CPAS, "name_fr": "x", "name_nl": "y", "region": "flanders"})
        assert created.status_code == 201 and created.headers["X-Policy-Version"] == "1"
        seen = a.put(f"/cpas/{CPAS}/users/{USER}", {"name": "Agent"})
        assert seen.status_code == 201
        builtin = a.get(f"/cpas/{CPAS}/profiles").get_json()[0]["id"]
        changed = a.put(f"/cpas/{CPAS}/users/{USER}/profiles", {"profiles": [builtin]})
        token = changed.get_json()["policy_version"]
        assert changed.headers["X-Policy-Version"] == str(token)
        ask = {"cpas": CPAS, "user": USER, "function": FN}
        # with the token: current on the other instance, through the lean path and the batch
        answer = b.post("/enforce", {**ask, "min_policy_version": token}).get_json()
        assert answer == {"allowed": True, "policy_version": token}
        batch = b.post("/enforce/batch", {"requests": [
            {"id": 1, **ask, "min_policy_version": token},
            {"id": 2, **ask, "min_policy_version": token + 9},
        ]}).get_json()["results"]
        assert batch[0] == {"id": 1, "allowed": True, "policy_version": token}
        assert batch[1]["allowed"] is False and batch[1]["error"]["code"] == "unavailable"
        functions = b.get(f"/cpas/{CPAS}/users/{USER}/functions?min_policy_version={token}")
        assert functions.status_code == 200 and FN in functions.get_json()["functions"]
        # deleting answers 204 with the token in its header
        made = a.post(f"/cpas/{CPAS}/profiles", {"description_fr": "P", "functions": [FN]}).get_json()
        gone = a.delete(f"/cpas/{CPAS}/profiles/{made['id']}")
        assert gone.status_code == 204 and int(gone.headers["X-Policy-Version"]) > made["policy_version"]
        # a version nobody has: 503 unavailable, never an old answer
        late = b.post("/enforce", {**ask, "min_policy_version": token + 100})
        assert late.status_code == 503 and late.get_json()["error"]["code"] == "unavailable"
        assert b.get(f"/cpas/{CPAS}/users/{USER}/functions?min_policy_version={token + 100}").status_code == 503
        assert b.post("/enforce", {**ask, "min_policy_version": -1}).status_code == 400
    finally:
        one.extensions["authz"].close()
        two.extensions["authz"].close()


# -- inactive means denied ---------------------------------------------------------------------------
def test_the_engine_denies_an_inactive_user_whatever_rows_exist() -> None:
    rules = Rules.from_rows([("function:a", "*", "a", "allow")])
    links = [("user:u", "profile:1"), ("profile:1", "function:a"), ("user:v", "profile:1")]
    policy = CpasPolicy(CPAS, 3, rules, links, {"u": False, "v": True})
    assert not policy.allows("u", "a") and policy.allows("v", "a")
    assert policy.view("u").functions == frozenset() and policy.view("u").profiles == ()
    explained = policy.decide("u", "a", explain=True)
    assert (explained.allowed, explained.reason, explained.granted_by) == (False, "user_inactive", ())


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
def test_rows_left_to_an_inactive_user_grant_nothing_and_are_not_exported(database_url: str, tmp_path: Path) -> None:
    writer, _ = _services(database_url, tmp_path, same_host=True)
    try:
        builtin = _setup(writer)
        _change(writer, lambda a: a.deactivate_user(CPAS, USER))
        with writer.db.transaction() as session:  # what a lost race used to leave behind
            session.execute(insert(CasbinRule), [{"ptype": "g", "v0": f"user:{USER}", "v1": f"profile:{builtin}",
                                                  "v2": CPAS}])
            Store(session).bump_version(CPAS)
        policy = writer.policy(CPAS)
        assert not policy.allows(USER, FN) and policy.view(USER).profiles == ()
        lines = writer.read(lambda store: store.policy_lines(CPAS))
        assert not [line for line in lines if line[1] == f"user:{USER}"]
        enforcer = casbin.Enforcer(str(REPO / "model.conf"))
        for line in lines:
            (enforcer.add_policy if line[0] == "p" else enforcer.add_grouping_policy)(*line[1:])
        assert enforcer.enforce(f"user:{USER}", CPAS, FN) is False
    finally:
        writer.close()


# -- identities -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
def test_a_deleted_profile_id_never_names_another_profile(operator: Api, backend: str) -> None:
    operator.post("/cpas", {"cpas": CPAS, "name_fr": "x", "name_nl": "y", "region": "wallonia"})
    first = operator.post(f"/cpas/{CPAS}/profiles", {"description_fr": "Old", "functions": [FN]}).get_json()
    assert operator.delete(f"/cpas/{CPAS}/profiles/{first['id']}").status_code == 204
    second = operator.post(f"/cpas/{CPAS}/profiles", {"description_fr": "New", "functions": ["forms.list"]})
    assert second.get_json()["id"] != first["id"]
    stale = operator.put(f"/cpas/{CPAS}/profiles/{first['id']}",
                         {"version": 1, "description_fr": "Old", "functions": [FN]})
    assert stale.status_code == 404 and stale.get_json()["error"]["code"] == "not_found"
    kept = operator.get(f"/cpas/{CPAS}/profiles/{second.get_json()['id']}").get_json()
    assert kept["description_fr"] == "New" and kept["functions"] == ["forms.list"]


def _alembic(url: str) -> Config:
    here = Path(authz_service.__file__).parent
    cfg = Config(str(here / "alembic.ini"))
    cfg.set_main_option("script_location", str(here / "migrations"))
    return cfg


def _migrate(url: str, target: str) -> None:
    from authz_service.db import Database

    database = Database(url)
    try:
        with database.engine.begin() as connection:
            cfg = _alembic(url)
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, target)
    finally:
        database.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
def test_migration_0005_repairs_inactive_users_and_never_reuses_a_deleted_id(database_url: str) -> None:
    from authz_service.db import Database

    _migrate(database_url, "0004")
    database = Database(database_url)
    try:
        with database.engine.begin() as conn:
            conn.execute(text("INSERT INTO cpas (id, name_fr, name_nl, region, policy_version, created_at) "
                              "VALUES (:c, 'x', 'y', 'wallonia', 4, CURRENT_TIMESTAMP)"), {"c": CPAS})
            conn.execute(text("INSERT INTO profile (id, cpas_id, description_fr, builtin, version, created_at, "
                              "updated_at) VALUES (3, :c, 'P', false, 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"),
                         {"c": CPAS})
            for user, active in ((USER, False), ("71020312346", True)):
                conn.execute(text("INSERT INTO app_user (cpas_id, \"user\", name, lang, active, created_at, "
                                  "last_seen_at) VALUES (:c, :u, 'n', 'fr', :a, CURRENT_TIMESTAMP, "
                                  "CURRENT_TIMESTAMP)"), {"c": CPAS, "u": user, "a": active})
                conn.execute(text("INSERT INTO casbin_rule (ptype, v0, v1, v2) VALUES ('g', :s, 'profile:3', :c)"),
                             {"s": f"user:{user}", "c": CPAS})
            conn.execute(text("INSERT INTO audit (cpas_id, at, actor, action, target) "
                              "VALUES (:c, CURRENT_TIMESTAMP, 't', 'profile.delete', 'profile:41')"), {"c": CPAS})
        _migrate(database_url, "head")
        with database.transaction() as session:
            store = Store(session)
            assert store.user_profiles(CPAS, USER) == [] and store.user_profiles(CPAS, "71020312346") == [3]
            assert store.versions()[CPAS] == 5
            repair = session.scalars(select(AuditEntry).where(AuditEntry.action == "user.repair")).all()
            assert [(r.target, r.before, r.after) for r in repair] == [
                (f"user:{USER}", {"active": False, "profiles": [3]}, {"active": False, "profiles": []})]
        with database.transaction() as session:
            from authz_service.models import Profile

            made = Store(session).add_profile(Profile(cpas_id=CPAS, description_fr="Q", builtin=False, version=1))
            assert made.id > 41  # above every id the audit trail ever named
    finally:
        database.dispose()


# -- settings that keep every Casbin alike ------------------------------------------------------------
def test_inclusion_depth_stays_within_what_every_casbin_follows() -> None:
    assert load_settings({"max_inclusion_depth": 7}).max_inclusion_depth == 7
    with pytest.raises(ValidationError):
        load_settings({"max_inclusion_depth": 8})
    assert MAX_HOPS >= 7 + 2  # user -> profile, 7 inclusions, profile -> function


def _chain(depth: int) -> list[tuple[str, str]]:
    links = [("user:u", "profile:0")]
    links += [(f"profile:{i}", f"profile:{i + 1}") for i in range(depth)]
    return [*links, (f"profile:{depth}", "function:a")]


@pytest.mark.parametrize(("depth", "granted"), [(7, True), (8, False)])
def test_a_chain_is_decided_as_stock_pycasbin_decides_it(depth: int, granted: bool) -> None:
    rules = Rules.from_rows([("function:a", "*", "a", "allow")])
    policy = CpasPolicy(CPAS, 1, rules, _chain(depth), {"u": True})
    enforcer = casbin.Enforcer(str(REPO / "model.conf"))
    enforcer.add_policy("function:a", "*", "a", "allow")
    for child, parent in _chain(depth):
        enforcer.add_grouping_policy(child, parent, CPAS)
    assert enforcer.enforce("user:u", CPAS, "a") is granted
    explained = policy.decide("u", "a", explain=True)
    assert explained.allowed is granted
    # the explanation never names a profile for a grant it does not make
    assert explained.granted_by == ((0,) if granted else ())
    assert explained.reason == ("granted" if granted else "not_granted")


@pytest.mark.parametrize("poll_interval", [0, 1])
def test_only_a_poller_can_call_the_engine_stale(tmp_path: Path, poll_interval: float) -> None:
    """Polling off means notifications only and keeps deciding (it used to refuse every decision 15 s
    after the last change); with polling on, a store silent for too long makes decisions fail closed."""
    now = [1000.0]
    settings = load_settings({"database_url": f"sqlite:///{tmp_path / 'a.sqlite3'}", "poll_interval": poll_interval,
                              "notify": "off", "secret_key": "x"})
    init_db(settings)
    svc = Service(settings, clock=lambda: now[0])
    try:
        svc.sync()
        with svc.admin("test") as admin:
            admin.create_cpas(CPAS, "x", "y", "wallonia")
        now[0] += 10 * settings.max_staleness  # no poll ran since (the poller was never started)
        if poll_interval:
            with pytest.raises(Unavailable):
                svc.policy(CPAS)
        else:
            assert svc.policy(CPAS).version == 1
    finally:
        svc.close()
