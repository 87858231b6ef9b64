"""One suite for the store and its use cases, run on SQLite and on PostgreSQL: every write lands
whole or not at all, stale edits are refused, and the engine follows each change."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import select, text

from authz_service.errors import Conflict, ProfileInUse
from authz_service.models import AuditEntry, CasbinRule, Cpas, Profile, User
from authz_service.service import Service
from authz_service.store import Store

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
CPAS = "0212345668"  # a valid KBO number (checked in the fixture)


def dump(service: Service) -> dict[str, Any]:
    """Every row the service owns, in a comparable form."""

    with service.db.reading() as s:
        return {
            "rules": sorted(
                (r.ptype, r.v0, r.v1, r.v2, r.v3) for r in s.scalars(select(CasbinRule)).all()
            ),
            "cpas": sorted((c.id, c.policy_version) for c in s.scalars(select(Cpas)).all()),
            "profiles": sorted(
                (p.id, p.description_fr, p.description_nl, p.version) for p in s.scalars(select(Profile)).all()
            ),
            "users": sorted((u.cpas_id, u.user, u.active) for u in s.scalars(select(User)).all()),
            "audit": s.scalar(select(text("count(*)")).select_from(AuditEntry)),
        }


@pytest.fixture
def world(service: Service) -> dict[str, Any]:
    from authz_service.schemas import parse_kbo

    assert parse_kbo(CPAS) == CPAS
    fns = service.catalog.selectable
    with service.admin("test") as admin:
        admin.create_cpas(CPAS, "CPAS de Test", "OCMW Test", "wallonia")
    with service.admin("test") as admin:
        search = admin.create_profile(CPAS, description_fr="Recherche", description_nl="Zoeken",
                                      functions=["dossier.search"])
    with service.admin("test") as admin:
        helper = admin.create_profile(CPAS, description_fr="Aide", description_nl=None,
                                      functions=[f for f in fns if f.startswith("help_request.")])
    for user in ("11111111111", "22222222222"):
        with service.admin("test") as admin:
            admin.user_seen(CPAS, user, name=f"User {user[:2]}", lang="fr")
    return {"search": search.id, "help": helper.id}


def test_assign_and_decide(service: Service, world: dict[str, Any]) -> None:
    help_list = next(f for f in service.catalog.selectable if f.startswith("help_request."))
    with service.admin("test") as admin:
        admin.set_user_profiles(CPAS, "11111111111", [world["help"]])
    decision = service.policy(CPAS).decide("11111111111", help_list, explain=True)
    assert (decision.allowed, decision.reason) == (False, "missing_prerequisite")
    with service.admin("test") as admin:
        admin.set_user_profiles(CPAS, "11111111111", [world["help"], world["search"]])
    assert service.policy(CPAS).decide("11111111111", help_list).allowed


def test_failure_after_rule_rows_leaves_database_as_before(
    service: Service, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = dump(service)
    version_before = service.policy(CPAS).version
    written: list[str] = []
    original = Store.set_profile_functions

    def write_then_crash(self: Store, cpas: str, profile_id: int, codes: Any) -> None:
        original(self, cpas, profile_id, codes)
        self.flush()  # the rule rows really reach the database inside the transaction
        written.append(",".join(self.profile_functions(cpas, profile_id)))
        raise RuntimeError("injected crash after the rule rows were written")

    monkeypatch.setattr(Store, "set_profile_functions", write_then_crash)
    with pytest.raises(RuntimeError), service.admin("test") as admin:
        admin.update_profile(CPAS, world["search"], version=1, description_fr="Recherche 2",
                             description_nl="Zoeken", functions=["dossier.search", "dossier.list"],
                             includes=None)
    assert written, "the crash happened after the write"
    with pytest.raises(RuntimeError), service.admin("test") as admin:
        admin.create_profile(CPAS, description_fr="Nouveau", description_nl=None, functions=["dossier.search"])
    monkeypatch.undo()
    assert dump(service) == before
    assert service.policy(CPAS).version == version_before


def test_stale_version_is_refused(service: Service, world: dict[str, Any]) -> None:
    with service.admin("test") as admin:
        admin.update_profile(CPAS, world["search"], version=1, description_fr="Recherche v2",
                             description_nl="Zoeken", functions=None, includes=None)
    before = dump(service)
    with pytest.raises(Conflict), service.admin("test") as admin:
        admin.update_profile(CPAS, world["search"], version=1, description_fr="Recherche v3",
                             description_nl="Zoeken", functions=None, includes=None)
    assert dump(service) == before


def test_concurrent_edits_of_one_profile_let_exactly_one_win(service: Service, world: dict[str, Any]) -> None:
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def edit(i: int) -> None:
        barrier.wait()
        try:
            with service.admin(f"editor{i}") as admin:
                admin.update_profile(CPAS, world["search"], version=1, description_fr=f"Recherche {i}",
                                     description_nl="Zoeken", functions=["dossier.search"], includes=None)
            outcomes.append("ok")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=edit, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict", "conflict", "conflict", "ok"]
    version = service.read(lambda store: store.get_profile(CPAS, world["search"]).version)  # type: ignore[union-attr]
    assert version == 2


def test_delete_refused_while_assigned_then_allowed(service: Service, world: dict[str, Any]) -> None:
    with service.admin("test") as admin:
        admin.set_user_profiles(CPAS, "22222222222", [world["search"]])
    before = dump(service)
    with pytest.raises(ProfileInUse) as refused, service.admin("test") as admin:
        admin.delete_profile(CPAS, world["search"])
    assert "Veuillez d'abord le désaffecter" in refused.value.message
    assert dump(service) == before
    with service.admin("test") as admin:
        admin.deactivate_user(CPAS, "22222222222")
    with service.admin("test") as admin:
        admin.delete_profile(CPAS, world["search"])
    rules = dump(service)["rules"]
    assert not [r for r in rules if f"profile:{world['search']}" in (r[1], r[2])]


def test_poll_picks_up_changes_from_another_process(service: Service, settings: Any, world: dict[str, Any]) -> None:
    other = Service(settings)  # a second instance on the same database
    try:
        other.sync()
        assert not other.policy(CPAS).decide("11111111111", "dossier.search").allowed
        with service.admin("test") as admin:
            admin.set_user_profiles(CPAS, "11111111111", [world["search"]])
        assert other.sync()
        assert other.policy(CPAS).decide("11111111111", "dossier.search").allowed
        assert other.policy(CPAS).version == service.policy(CPAS).version
    finally:
        other.close()
