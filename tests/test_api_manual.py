"""Every scenario of the manual ("La gestion des profils dans PrimaWeb") as HTTP API tests through the
Flask test client, on the demo CPAS of seed/demo.yaml: profiles (list, create from a predefined profile,
manage, print, delete refused while assigned, built-in profile), users (first login, assign several
profiles, deactivate, reactivate, "Mes accès"), prerequisites, covering, inclusion, explained and bulk
decisions, audit, the Casbin CSV export against stock pycasbin, and the operations routes.

Expected values come from the data files (seed/demo.yaml, policies/catalog.yaml, policies/templates.yaml)
and from docs/api.md, never from the service's own answers."""

from __future__ import annotations

import re
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import casbin
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "model.conf"

IN_USE_FR = (
    "Le profil que vous voulez supprimer est affecté à un ou plusieurs utilisateurs. "
    "Veuillez d'abord le désaffecter."
)

# demo users (seed/demo.yaml)
MARIE = "85073003328"  # Full
SOPHIE = "79021412462"  # Tous les accès
CLAIRE = "91012704692"  # Directeur général / Secrétaire + clignotants
LUC = "75081815365"  # Pas de profil
ELS = "88040206208"  # clignotants
THOMAS = "93061517116"  # RMC-1 + clignotants
NATHALIE = "84022908844"  # travailleur administratif + clignotants
ANNELIES = "96031220418"  # administratif medewerkster (help requests without dossier.search)
KOEN = "71092421339"  # Full + travailleur administratif + clignotants
MICHEL = "77070619530"  # inactive
UNKNOWN_USER = "99999999999"


def kbo(n: int) -> str:
    head = f"0{n:07d}"
    return head + f"{97 - int(head) % 97:02d}"


# -- the catalog as data: an oracle independent of the service -------------------------------------------
@cache
def catalog_data() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "policies" / "catalog.yaml").read_text(encoding="utf-8"))


@cache
def templates_data() -> list[dict[str, Any]]:
    return yaml.safe_load((ROOT / "policies" / "templates.yaml").read_text(encoding="utf-8"))["templates"]


@cache
def functions() -> dict[str, dict[str, Any]]:
    return {f["code"]: f for f in catalog_data()["functions"]}


def all_codes() -> list[str]:
    return list(functions())


def selectable() -> list[str]:
    return [c for c, f in functions().items() if f.get("selectable", True)]


def coverers(code: str) -> set[str]:
    return {c for c, f in functions().items() if code in (f.get("covers") or [])}


def prerequisites(code: str) -> set[str]:
    """Transitive prerequisites of ``code`` (itself excluded)."""
    out: set[str] = set()
    todo = [r["code"] for r in functions()[code].get("requires") or []]
    while todo:
        c = todo.pop()
        if c not in out:
            out.add(c)
            todo.extend(r["code"] for r in functions()[c].get("requires") or [])
    return out


def effective(granted: set[str]) -> set[str]:
    """What model.conf allows to someone holding the selectable functions ``granted``."""
    return {
        code for code in functions()
        if (code in granted or coverers(code) & granted) and prerequisites(code) <= granted
    }


# -- helpers ---------------------------------------------------------------------------------------------
def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:500])
    return response.get_json()


def error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:500])
    body = response.get_json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]  # type: ignore[no-any-return]


def decide(api: Any, cpas: str, user: str, function: str) -> dict[str, Any]:
    return ok(api.post("/enforce", {"cpas": cpas, "user": user, "function": function, "explain": True}))


def allowed(api: Any, cpas: str, user: str, function: str) -> bool:
    body = ok(api.post("/enforce", {"cpas": cpas, "user": user, "function": function}))
    assert set(body) == {"allowed", "policy_version"}, body
    return body["allowed"]  # type: ignore[no-any-return]


def profiles_list(api: Any, cpas: str) -> dict[int, dict[str, Any]]:
    items = ok(api.get(f"/cpas/{cpas}/profiles"))
    assert isinstance(items, list)
    return {p["id"]: p for p in items}


def users_list(api: Any, cpas: str, status: str = "active") -> dict[str, dict[str, Any]]:
    body = ok(api.get(f"/cpas/{cpas}/users?status={status}&per_page=500"))
    assert body["total"] == len(body["items"])
    return {u["user"]: u for u in body["items"]}


def get_profile(api: Any, cpas: str, pid: int) -> dict[str, Any]:
    return ok(api.get(f"/cpas/{cpas}/profiles/{pid}"))  # type: ignore[no-any-return]


def demo_profile(demo: dict[str, Any], key: str) -> dict[str, Any]:
    return next(p for p in demo["data"]["profiles"] if p["key"] == key)


def demo_granted(demo: dict[str, Any], user: str) -> set[str]:
    """Selectable functions a demo user holds, through its profiles and their inclusions."""
    entry = demo["users"][user]
    if not entry.get("active", True):
        return set()
    out: set[str] = set()
    todo = list(entry.get("profiles") or [])
    seen: set[str] = set()
    while todo:
        key = todo.pop()
        if key in seen:
            continue
        seen.add(key)
        if key == "builtin":
            out |= set(selectable())
            continue
        item = demo_profile(demo, key)
        out |= set(item.get("functions") or [])
        todo.extend(item.get("includes") or [])
    return out


def assign(api: Any, cpas: str, user: str, ids: list[int]) -> dict[str, Any]:
    return ok(api.put(f"/cpas/{cpas}/users/{user}/profiles", {"profiles": ids}))  # type: ignore[no-any-return]


def create(api: Any, cpas: str, fr: str | None, nl: str | None, fns: list[str], **extra: Any) -> dict[str, Any]:
    return ok(api.post(f"/cpas/{cpas}/profiles",  # type: ignore[no-any-return]
                       {"description_fr": fr, "description_nl": nl, "functions": fns, **extra}), 201)


def seen(api: Any, cpas: str, user: str, name: str, lang: str = "fr") -> Any:
    return api.put(f"/cpas/{cpas}/users/{user}", {"name": name, "lang": lang})


# == profiles ============================================================================================
def test_list_profiles_shows_builtin_and_the_manuals_profiles(operator, demo) -> None:
    cpas, ids = demo["cpas"], demo["profiles"]
    listed = profiles_list(operator, cpas)
    assert set(listed) == set(ids.values())
    builtin = listed[ids["builtin"]]
    assert builtin["description_fr"] == "Tous les accès"
    assert builtin["description_nl"] == "Alle toegangen"
    assert builtin["builtin"] is True
    assert builtin["functions_count"] == len(selectable())
    assert builtin["users_count"] == sum(
        1 for u in demo["users"].values() if "builtin" in (u.get("profiles") or []))
    assert builtin["users_count"] == 4
    for item in demo["data"]["profiles"]:
        row = listed[ids[item["key"]]]
        assert row["description_fr"] == item["description_fr"]
        assert row["description_nl"] == item["description_nl"]
        assert row["builtin"] is False
        assert row["functions_count"] == len(item["functions"]), item["key"]
        expected_users = sum(1 for u in demo["users"].values()
                             if u.get("active", True) and item["key"] in (u.get("profiles") or []))
        assert row["users_count"] == expected_users, item["key"]
    by_name = {p["description_fr"]: p for p in listed.values()}
    assert {"Full", "RMC-1", "clignotants", "travailleur administratif + clignotants",
            "administratif medewerkster", "Directeur général / Secrétaire", "Tous les accès"} == set(by_name)
    assert by_name["clignotants"]["users_count"] == 3
    assert by_name["Full"]["users_count"] == 2


def test_create_profile_from_predefined_template(operator, demo) -> None:
    cpas = demo["cpas"]
    body = ok(operator.get("/catalog/templates?region=flanders"))
    templates = {t["code"]: t for t in body["templates"]}
    assert set(templates) == {t["code"] for t in templates_data()}
    social = templates["social_worker"]
    expected = next(t for t in templates_data() if t["code"] == "social_worker")["functions"]
    assert social["functions"] == expected
    response = operator.post(f"/cpas/{cpas}/profiles", {
        "description_fr": "Travailleur social", "description_nl": "Maatschappelijk werker",
        "functions": social["functions"]})
    created = ok(response, 201)
    pid = created["id"]
    assert response.headers["Location"].endswith(f"/cpas/{cpas}/profiles/{pid}")
    assert created["description_fr"] == "Travailleur social"
    assert created["description_nl"] == "Maatschappelijk werker"
    assert created["builtin"] is False
    assert created["version"] == 1
    assert sorted(created["functions"]) == sorted(expected)
    assert created["users"] == []
    listed = profiles_list(operator, cpas)
    assert listed[pid]["functions_count"] == len(expected)
    assert listed[pid]["users_count"] == 0
    assert listed[pid]["builtin"] is False
    assert len(listed) == len(demo["profiles"]) + 1
    printed = get_profile(operator, cpas, pid)
    assert sorted(printed["functions"]) == sorted(expected)
    # a predefined profile is a template, not a role: nothing else appeared, and it holds every
    # prerequisite of its functions (the manual: help requests need dossier.search)
    assert "dossier.search" in printed["functions"]
    for code in printed["functions"]:
        assert prerequisites(code) <= set(printed["functions"]), code


def test_create_profile_refusals(operator, demo) -> None:
    cpas = demo["cpas"]
    before = profiles_list(operator, cpas)
    err = error(operator.post(f"/cpas/{cpas}/profiles", {"description_fr": "full", "description_nl": None,
                                                         "functions": ["forms.list"]}), 409,
                "duplicate_description")
    assert err["message"]
    error(operator.post(f"/cpas/{cpas}/profiles", {"description_fr": None, "description_nl": None,
                                                   "functions": ["forms.list"]}), 400, "invalid_request")
    error(operator.post(f"/cpas/{cpas}/profiles", {"description_fr": "Nouveau", "functions": ["no.such"]}),
          400, "unknown_function")
    # a covered action has no checkbox of its own
    covered = next(c for c, f in functions().items() if not f.get("selectable", True))
    error(operator.post(f"/cpas/{cpas}/profiles", {"description_fr": "Nouveau", "functions": [covered]}),
          400, "invalid_request")
    assert profiles_list(operator, cpas) == before


def test_manage_profile_rename_change_functions_and_stale_version(operator, demo) -> None:
    cpas = demo["cpas"]
    created = create(operator, cpas, "RMC", "OCMW-RMC", ["forms.list"])
    pid = created["id"]
    seen(operator, cpas, "60010100184", "Agent RMC")
    assign(operator, cpas, "60010100184", [pid])
    assert allowed(operator, cpas, "60010100184", "forms.list") is True
    assert allowed(operator, cpas, "60010100184", "mutation.national_register.mark_read") is False

    new_functions = ["forms.list", "mutation.national_register.view", "mutation.national_register.mark_read"]
    updated = ok(operator.put(f"/cpas/{cpas}/profiles/{pid}", {
        "version": 1, "description_fr": "RMC-2", "description_nl": "RMC-2 (nl)", "functions": new_functions}))
    assert updated["version"] == 2
    assert updated["description_fr"] == "RMC-2" and updated["description_nl"] == "RMC-2 (nl)"
    assert sorted(updated["functions"]) == sorted(new_functions)
    assert allowed(operator, cpas, "60010100184", "mutation.national_register.mark_read") is True

    # the stale version: 409 conflict, nothing changed
    err = error(operator.put(f"/cpas/{cpas}/profiles/{pid}", {
        "version": 1, "description_fr": "RMC-X", "description_nl": None, "functions": []}), 409, "conflict")
    assert err["message"]
    printed = get_profile(operator, cpas, pid)
    assert printed["version"] == 2
    assert printed["description_fr"] == "RMC-2"
    assert sorted(printed["functions"]) == sorted(new_functions)
    assert printed["users"] == [{"user": "60010100184", "name": "Agent RMC"}]
    assert profiles_list(operator, cpas)[pid]["description_fr"] == "RMC-2"

    # change functions again with the current version
    again = ok(operator.put(f"/cpas/{cpas}/profiles/{pid}", {
        "version": 2, "description_fr": "RMC-2", "description_nl": "RMC-2 (nl)",
        "functions": ["mutation.national_register.view"]}))
    assert again["version"] == 3
    assert again["functions"] == ["mutation.national_register.view"]
    assert allowed(operator, cpas, "60010100184", "forms.list") is False
    assert profiles_list(operator, cpas)[pid]["functions_count"] == 1
    # renaming to another profile's description is refused
    error(operator.put(f"/cpas/{cpas}/profiles/{pid}", {
        "version": 3, "description_fr": "Full", "description_nl": None}), 409, "duplicate_description")
    error(operator.put(f"/cpas/{cpas}/profiles/999999", {
        "version": 1, "description_fr": "x", "description_nl": None}), 404, "not_found")


def test_print_profile_shows_functions_and_users(operator, demo) -> None:
    cpas, ids = demo["cpas"], demo["profiles"]
    rmc = get_profile(operator, cpas, ids["rmc1"])
    assert rmc["id"] == ids["rmc1"]
    assert rmc["description_fr"] == "RMC-1"
    assert rmc["functions"] == ["forms.list"]  # "Gestion du profil RMC-1": the forms listing only
    assert rmc["users"] == [{"user": THOMAS, "name": "Thomas GOOSSENS"}]
    assert rmc["version"] == 1
    assert rmc["builtin"] is False
    full = get_profile(operator, cpas, ids["full"])
    assert sorted(full["functions"]) == sorted(demo_profile(demo, "full")["functions"])
    assert sorted(u["user"] for u in full["users"]) == sorted([MARIE, KOEN])
    assert {u["name"] for u in full["users"]} == {"Marie LEBLANC", "Koen CLAES"}
    error(operator.get(f"/cpas/{cpas}/profiles/999999"), 404, "not_found")


# == users and profiles ==================================================================================
def test_assign_several_profiles(operator, demo) -> None:
    cpas, ids = demo["cpas"], demo["profiles"]
    assert users_list(operator, cpas)[LUC]["profiles"] == []
    refused = decide(operator, cpas, LUC, "dossier.search")
    assert refused["allowed"] is False and refused["explanation"]["reason"] == "not_granted"

    body = assign(operator, cpas, LUC, [ids["director"], ids["clignotants"]])
    assert body["user"] == LUC and body["active"] is True
    assert sorted(p["id"] for p in body["profiles"]) == sorted([ids["director"], ids["clignotants"]])

    row = users_list(operator, cpas)[LUC]
    assert row["name"] == "Luc LAMBERT"
    assert row["active"] is True
    assert sorted((p["id"], p["description"]) for p in row["profiles"]) == sorted(
        [(ids["director"], "Directeur général / Secrétaire"), (ids["clignotants"], "clignotants")])

    assert allowed(operator, cpas, LUC, "dossier.search") is True  # director
    assert allowed(operator, cpas, LUC, "notification.alert.reply") is True  # clignotants only
    assert allowed(operator, cpas, LUC, "dossier.create") is False  # neither
    granted = decide(operator, cpas, LUC, "notification.alert.view")  # both
    assert granted["explanation"]["reason"] == "granted"
    assert sorted(granted["explanation"]["granted_by"]) == sorted([ids["director"], ids["clignotants"]])
    assert decide(operator, cpas, LUC, "notification.alert.reply")["explanation"]["granted_by"] == [
        ids["clignotants"]]

    # "replaces": RMC-1 alone now
    body = assign(operator, cpas, LUC, [ids["rmc1"]])
    assert [p["id"] for p in body["profiles"]] == [ids["rmc1"]]
    assert allowed(operator, cpas, LUC, "notification.alert.reply") is False
    assert allowed(operator, cpas, LUC, "forms.list") is True  # RMC-1's only function
    users = users_list(operator, cpas)
    assert [p["id"] for p in users[LUC]["profiles"]] == [ids["rmc1"]]
    listed = profiles_list(operator, cpas)
    assert listed[ids["rmc1"]]["users_count"] == 2
    assert listed[ids["director"]]["users_count"] == 1
    # unknown profile, unknown user
    error(operator.put(f"/cpas/{cpas}/users/{LUC}/profiles", {"profiles": [999999]}), 400, "invalid_request")
    assert [p["id"] for p in users_list(operator, cpas)[LUC]["profiles"]] == [ids["rmc1"]]
    error(operator.put(f"/cpas/{cpas}/users/{UNKNOWN_USER}/profiles", {"profiles": [ids["rmc1"]]}),
          404, "not_found")


def test_delete_refused_while_assigned_then_unassign_and_delete(operator, demo) -> None:
    cpas, ids = demo["cpas"], demo["profiles"]
    rmc = ids["rmc1"]
    err = error(operator.delete(f"/cpas/{cpas}/profiles/{rmc}"), 409, "profile_in_use")
    assert err["message"] == IN_USE_FR
    dutch = [v for v in (err.get("details") or {}).values() if isinstance(v, str) and "profiel" in v.lower()]
    assert dutch, err  # the Dutch twin of the manual's message
    assert rmc in profiles_list(operator, cpas)
    assert allowed(operator, cpas, THOMAS, "forms.list") is True

    assign(operator, cpas, THOMAS, [ids["clignotants"]])
    response = operator.delete(f"/cpas/{cpas}/profiles/{rmc}")
    assert response.status_code == 204, response.get_data(as_text=True)
    assert response.get_data() == b""
    assert rmc not in profiles_list(operator, cpas)
    error(operator.get(f"/cpas/{cpas}/profiles/{rmc}"), 404, "not_found")
    error(operator.delete(f"/cpas/{cpas}/profiles/{rmc}"), 404, "not_found")
    assert allowed(operator, cpas, THOMAS, "forms.list") is False
    assert allowed(operator, cpas, THOMAS, "notification.alert.view") is True


def test_delete_refused_for_a_profile_included_by_another(operator, demo) -> None:
    cpas, ids = demo["cpas"], demo["profiles"]
    for user in (CLAIRE, ELS, THOMAS):  # every user of "clignotants"
        entry = demo["users"][user]
        assign(operator, cpas, user, [ids[k] for k in entry["profiles"] if k != "clignotants"])
    assert profiles_list(operator, cpas)[ids["clignotants"]]["users_count"] == 0
    error(operator.delete(f"/cpas/{cpas}/profiles/{ids['clignotants']}"), 409, "profile_in_use")
    assert ids["clignotants"] in profiles_list(operator, cpas)


def test_deactivate_then_reactivate_user(operator, demo) -> None:
    cpas, ids = demo["cpas"], demo["profiles"]
    assert allowed(operator, cpas, MARIE, "forms.list") is True
    body = ok(operator.post(f"/cpas/{cpas}/users/{MARIE}/deactivate"))
    assert body["user"] == MARIE and body["active"] is False and body["profiles"] == []

    active = users_list(operator, cpas, "active")
    inactive = users_list(operator, cpas, "inactive")
    assert MARIE not in active
    assert set(inactive) == {MARIE, MICHEL}
    assert inactive[MARIE]["profiles"] == [] and inactive[MARIE]["active"] is False
    assert MARIE not in [u["user"] for u in get_profile(operator, cpas, ids["full"])["users"]]
    assert profiles_list(operator, cpas)[ids["full"]]["users_count"] == 1

    for code in all_codes():
        body = decide(operator, cpas, MARIE, code)
        assert body["allowed"] is False, code
        assert body["explanation"]["reason"] == "user_inactive", (code, body)
    mine = ok(operator.get(f"/cpas/{cpas}/users/{MARIE}/functions"))
    assert mine["active"] is False and mine["profiles"] == [] and mine["functions"] == []

    error(operator.put(f"/cpas/{cpas}/users/{MARIE}/profiles", {"profiles": [ids["full"]]}), 409, "conflict")
    assert users_list(operator, cpas, "inactive")[MARIE]["profiles"] == []

    body = ok(operator.post(f"/cpas/{cpas}/users/{MARIE}/reactivate"))
    assert body["active"] is True and body["profiles"] == []  # "ne possèdera pas de profils"
    active = users_list(operator, cpas, "active")
    assert active[MARIE]["profiles"] == [] and active[MARIE]["active"] is True
    assert set(users_list(operator, cpas, "inactive")) == {MICHEL}
    refused = decide(operator, cpas, MARIE, "forms.list")
    assert refused["allowed"] is False and refused["explanation"]["reason"] == "not_granted"
    assign(operator, cpas, MARIE, [ids["rmc1"]])
    assert allowed(operator, cpas, MARIE, "forms.list") is True


def test_seeded_inactive_user(operator, demo) -> None:
    cpas = demo["cpas"]
    inactive = users_list(operator, cpas, "inactive")
    assert inactive[MICHEL]["name"] == "Michel RENARD"
    assert inactive[MICHEL]["profiles"] == []
    assert MICHEL not in users_list(operator, cpas, "active")
    body = decide(operator, cpas, MICHEL, "forms.list")
    assert body["allowed"] is False and body["explanation"]["reason"] == "user_inactive"


def test_missing_prerequisite_then_granted_by_profile_update(operator, demo) -> None:
    cpas, ids = demo["cpas"], demo["profiles"]
    pid = ids["admin_medewerkster"]
    for code in ("help_request.list", "help_request.print"):
        body = decide(operator, cpas, ANNELIES, code)
        assert body["allowed"] is False, code
        assert body["explanation"]["reason"] == "missing_prerequisite", body
        assert body["explanation"]["missing_prerequisites"] == ["dossier.search"], body
    assert allowed(operator, cpas, ANNELIES, "forms.list") is True
    mine = ok(operator.get(f"/cpas/{cpas}/users/{ANNELIES}/functions"))
    assert not [c for c in mine["functions"] if c.startswith("help_request.")]

    profile = get_profile(operator, cpas, pid)
    ok(operator.put(f"/cpas/{cpas}/profiles/{pid}", {
        "version": profile["version"], "description_fr": profile["description_fr"],
        "description_nl": profile["description_nl"], "functions": [*profile["functions"], "dossier.search"]}))
    for code in ("help_request.list", "help_request.print"):
        body = decide(operator, cpas, ANNELIES, code)
        assert body["allowed"] is True, code
        assert body["explanation"]["reason"] == "granted"
        assert body["explanation"]["granted_by"] == [pid]
        assert body["explanation"]["missing_prerequisites"] == []
    mine = ok(operator.get(f"/cpas/{cpas}/users/{ANNELIES}/functions"))
    assert {"help_request.list", "help_request.print", "dossier.search"} <= set(mine["functions"])


def test_missing_prerequisite_then_granted_by_an_extra_profile(operator, demo) -> None:
    cpas, ids = demo["cpas"], demo["profiles"]
    search = create(operator, cpas, "Recherche d'un dossier", "Opzoeken van een dossier", ["dossier.search"])
    assign(operator, cpas, ANNELIES, [ids["admin_medewerkster"], search["id"]])
    body = decide(operator, cpas, ANNELIES, "help_request.list")
    assert body["allowed"] is True
    assert body["explanation"]["reason"] == "granted"
    assert body["explanation"]["granted_by"] == [ids["admin_medewerkster"]]
    assert decide(operator, cpas, ANNELIES, "dossier.search")["explanation"]["granted_by"] == [search["id"]]
    mine = ok(operator.get(f"/cpas/{cpas}/users/{ANNELIES}/functions"))
    granted = set(demo_profile(demo, "admin_medewerkster")["functions"]) | {"dossier.search"}
    assert mine["functions"] == sorted(effective(granted))


def test_covering_function_grants_the_covered_actions(operator, demo) -> None:
    cpas = demo["cpas"]
    covering = {c: f["covers"] for c, f in functions().items() if f.get("covers")}
    assert "recovery.dossier.create" in covering
    assert {"recovery.dossier.update", "recovery.dossier.close"} <= set(covering["recovery.dossier.create"])
    for n, (code, covered) in enumerate(sorted(covering.items())):
        needed = {code} | prerequisites(code)
        for action in covered:
            needed |= prerequisites(action)
        user = f"cover-{n}"
        assert seen(operator, cpas, user, f"Agent {n}").status_code == 201
        pid = create(operator, cpas, f"Couvre {code}", None, sorted(needed))["id"]
        assign(operator, cpas, user, [pid])
        for action in covered:
            body = decide(operator, cpas, user, action)
            assert body["allowed"] is True, (code, action, body)
            assert body["explanation"]["reason"] == "granted"
            assert body["explanation"]["granted_by"] == [pid]
            assert allowed(operator, cpas, THOMAS, action) is False  # RMC-1 + clignotants: not covered
        assert allowed(operator, cpas, user, code) is True
        mine = ok(operator.get(f"/cpas/{cpas}/users/{user}/functions"))
        assert set(covered) <= set(mine["functions"])
    # Marie's "Full" holds the covering checkboxes: each covered action is allowed
    assert allowed(operator, cpas, MARIE, "recovery.dossier.update") is True
    assert allowed(operator, cpas, MARIE, "recovery.dossier.close") is True


def test_profile_inclusion(operator, demo) -> None:
    cpas, ids = demo["cpas"], demo["profiles"]
    printed = get_profile(operator, cpas, ids["admin_clignotants"])
    assert printed["includes"] == [ids["clignotants"]]
    assert "notification.alert.view" not in printed["functions"]
    for code in ("notification.alert.view", "notification.alert.reply"):
        body = decide(operator, cpas, NATHALIE, code)
        assert body["allowed"] is True, code
        assert body["explanation"]["reason"] == "granted"
        assert body["explanation"]["granted_by"] == [ids["admin_clignotants"]]
    mine = ok(operator.get(f"/cpas/{cpas}/users/{NATHALIE}/functions"))
    assert [p["id"] for p in mine["profiles"]] == [ids["admin_clignotants"]]
    assert mine["functions"] == sorted(effective(demo_granted(demo, NATHALIE)))
    assert {"notification.alert.view", "notification.alert.reply"} <= set(mine["functions"])
    # a cycle is refused
    cl = get_profile(operator, cpas, ids["clignotants"])
    error(operator.put(f"/cpas/{cpas}/profiles/{ids['clignotants']}", {
        "version": cl["version"], "description_fr": cl["description_fr"], "description_nl": cl["description_nl"],
        "includes": [ids["admin_clignotants"]]}), 400, "invalid_request")
    assert get_profile(operator, cpas, ids["clignotants"])["includes"] == []
    # removing the alerts from "clignotants" removes them from the including profile's users
    ok(operator.put(f"/cpas/{cpas}/profiles/{ids['clignotants']}", {
        "version": cl["version"], "description_fr": cl["description_fr"], "description_nl": cl["description_nl"],
        "functions": ["notification.alert.view"]}))
    assert allowed(operator, cpas, NATHALIE, "notification.alert.view") is True
    assert allowed(operator, cpas, NATHALIE, "notification.alert.reply") is False


def test_builtin_profile(operator, demo) -> None:
    cpas, ids = demo["cpas"], demo["profiles"]
    bid = ids["builtin"]
    error(operator.delete(f"/cpas/{cpas}/profiles/{bid}"), 409, "builtin_profile")
    printed = get_profile(operator, cpas, bid)
    assert printed["builtin"] is True
    assert sorted(printed["functions"]) == sorted(selectable())
    assert sorted(u["user"] for u in printed["users"]) == sorted(
        u for u, e in demo["users"].items() if "builtin" in (e.get("profiles") or []))
    error(operator.put(f"/cpas/{cpas}/profiles/{bid}", {
        "version": printed["version"], "description_fr": "Tous les accès", "description_nl": "Alle toegangen",
        "functions": ["forms.list"]}), 409, "builtin_profile")
    assert sorted(get_profile(operator, cpas, bid)["functions"]) == sorted(selectable())
    renamed = ok(operator.put(f"/cpas/{cpas}/profiles/{bid}", {
        "version": printed["version"], "description_fr": "Tous les accès (CPAS)",
        "description_nl": "Alle toegangen (OCMW)"}))
    assert renamed["description_fr"] == "Tous les accès (CPAS)"
    assert renamed["description_nl"] == "Alle toegangen (OCMW)"
    assert renamed["version"] == printed["version"] + 1
    assert renamed["builtin"] is True
    assert sorted(renamed["functions"]) == sorted(selectable())
    assert profiles_list(operator, cpas)[bid]["description_fr"] == "Tous les accès (CPAS)"
    error(operator.delete(f"/cpas/{cpas}/profiles/{bid}"), 409, "builtin_profile")


def test_builtin_profile_grants_every_catalog_function(operator, demo) -> None:
    cpas, ids = demo["cpas"], demo["profiles"]
    batch = [{"id": code, "cpas": cpas, "user": SOPHIE, "function": code, "explain": True} for code in all_codes()]
    body = ok(operator.post("/enforce/batch", {"requests": batch}))
    for item in body["results"]:
        assert item["allowed"] is True, item
        assert item["explanation"]["granted_by"] == [ids["builtin"]], item
    mine = ok(operator.get(f"/cpas/{cpas}/users/{SOPHIE}/functions"))
    assert mine["functions"] == sorted(all_codes())
    assert [p["id"] for p in mine["profiles"]] == [ids["builtin"]]
    assert mine["profiles"][0]["description"] == "Tous les accès"


def test_new_cpas_gets_the_builtin_profile(operator, demo) -> None:
    new = kbo(4242)
    body = ok(operator.post("/cpas", {"cpas": new[:4] + "." + new[4:7] + "." + new[7:], "name_fr": "CPAS de Test",
                                      "name_nl": "OCMW Test", "region": "brussels"}), 201)
    assert body["cpas"] == new
    listed = list(profiles_list(operator, new).values())
    assert len(listed) == 1
    assert listed[0]["builtin"] is True
    assert (listed[0]["description_fr"], listed[0]["description_nl"]) == ("Tous les accès", "Alle toegangen")
    assert listed[0]["functions_count"] == len(selectable())
    assert listed[0]["users_count"] == 0
    error(operator.post("/cpas", {"cpas": new, "name_fr": "x", "name_nl": "x", "region": "brussels"}),
          409, "conflict")


# == users seen at login =================================================================================
def test_user_seen_at_login(api_for, operator, demo) -> None:
    cpas = demo["cpas"]
    app_key = api_for("users", [cpas])
    first = seen(app_key, cpas, "50010112345", "Nouvel AGENT", "fr")
    body = ok(first, 201)
    version = body.pop("policy_version")
    assert body == {"user": "50010112345", "name": "Nouvel AGENT", "lang": "fr", "active": True, "profiles": []}
    assert first.headers["X-Policy-Version"] == str(version)  # the consistency token of the change
    assert decide(operator, cpas, "50010112345", "forms.list")["policy_version"] == version
    row = users_list(operator, cpas)["50010112345"]
    assert row["profiles"] == []  # "Pas de profil"
    assert row["name"] == "Nouvel AGENT"
    again = ok(seen(app_key, cpas, "50010112345", "Nouvel AGENT", "nl"), 200)
    assert again["lang"] == "nl" and again["active"] is True
    refused = decide(operator, cpas, "50010112345", "forms.list")
    assert refused["allowed"] is False and refused["explanation"]["reason"] == "not_granted"
    # an inactive user stays inactive
    body = ok(seen(app_key, cpas, MICHEL, "Michel RENARD", "fr"), 200)
    assert body["active"] is False and body["profiles"] == []
    assert MICHEL in users_list(operator, cpas, "inactive")
    assert MICHEL not in users_list(operator, cpas, "active")
    # a known user with profiles keeps them
    body = ok(seen(app_key, cpas, CLAIRE, "Claire MARTIN", "fr"), 200)
    assert sorted(p["id"] for p in body["profiles"]) == sorted(
        [demo["profiles"]["director"], demo["profiles"]["clignotants"]])
    # scope and CPAS limits
    error(app_key.post("/enforce", {"cpas": cpas, "user": CLAIRE, "function": "forms.list"}), 403, "forbidden")
    other = kbo(77)
    error(app_key.put(f"/cpas/{other}/users/50010112345", {"name": "x", "lang": "fr"}), 403, "forbidden")
    error(seen(operator, cpas, "bad user!", "x"), 400, "invalid_request")
    error(operator.put(f"/cpas/{kbo(78)}/users/50010112345", {"name": "x", "lang": "fr"}), 404, "unknown_cpas")


# == Mes accès ===========================================================================================
def test_user_functions_mes_acces(operator, demo) -> None:
    cpas, ids = demo["cpas"], demo["profiles"]
    url = f"/cpas/{cpas}/users/{CLAIRE}/functions"
    response = operator.get(url + "?lang=fr")
    body = ok(response)
    assert body["cpas"] == cpas and body["user"] == CLAIRE and body["active"] is True
    assert isinstance(body["policy_version"], int)
    assert body["profiles"] == sorted([
        {"id": ids["director"], "description": "Directeur général / Secrétaire"},
        {"id": ids["clignotants"], "description": "clignotants"},
    ], key=lambda p: p["id"])
    assert body["functions"] == sorted(body["functions"])
    assert body["functions"] == sorted(effective(demo_granted(demo, CLAIRE)))
    # the same set as /enforce gives, function by function
    for code in all_codes():
        assert allowed(operator, cpas, CLAIRE, code) is (code in body["functions"]), code

    nl = ok(operator.get(url + "?lang=nl"))
    assert {p["id"]: p["description"] for p in nl["profiles"]} == {
        ids["director"]: "Algemeen directeur / Secretaris", ids["clignotants"]: "knipperlichten"}
    assert nl["functions"] == body["functions"]

    etag = response.headers.get("ETag")
    assert etag
    cached = operator.get(url + "?lang=fr", headers={"If-None-Match": etag})
    assert cached.status_code == 304
    assert cached.get_data() == b""
    assert operator.get(url + "?lang=fr", headers={"If-None-Match": '"something-else"'}).status_code == 200

    # a change: new ETag, and the old one no longer matches
    assign(operator, cpas, CLAIRE, [ids["director"]])
    changed = operator.get(url + "?lang=fr", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers.get("ETag") and changed.headers["ETag"] != etag
    assert [p["id"] for p in changed.get_json()["profiles"]] == [ids["director"]]
    assert "notification.alert.reply" not in changed.get_json()["functions"]


def test_user_functions_description_falls_back_to_the_other_language(operator, demo) -> None:
    cpas = demo["cpas"]
    only_fr = create(operator, cpas, "Seulement en français", None, ["forms.list"])
    only_nl = create(operator, cpas, None, "Enkel in het Nederlands", ["dossier.list"])
    assign(operator, cpas, LUC, [only_fr["id"], only_nl["id"]])
    for lang in ("fr", "nl"):
        body = ok(operator.get(f"/cpas/{cpas}/users/{LUC}/functions?lang={lang}"))
        assert {p["id"]: p["description"] for p in body["profiles"]} == {
            only_fr["id"]: "Seulement en français", only_nl["id"]: "Enkel in het Nederlands"}, lang
        assert body["functions"] == ["dossier.list", "forms.list"]
    # a user with no profile ("Pas de profil") and an unknown user
    body = ok(operator.get(f"/cpas/{cpas}/users/89013122245/functions"))
    assert body["active"] is True and body["profiles"] == [] and body["functions"] == []
    body = ok(operator.get(f"/cpas/{cpas}/users/{UNKNOWN_USER}/functions"))
    assert body["profiles"] == [] and body["functions"] == []


# == decisions ===========================================================================================
def test_explain_reasons_and_errors(operator, demo) -> None:
    cpas, ids = demo["cpas"], demo["profiles"]
    body = decide(operator, cpas, MARIE, "forms.list")
    assert body["allowed"] is True
    assert body["explanation"] == {"reason": "granted", "granted_by": [ids["full"]], "missing_prerequisites": []}
    assert isinstance(body["policy_version"], int)
    body = decide(operator, cpas, KOEN, "forms.list")
    assert body["explanation"]["granted_by"] == sorted([ids["full"], ids["admin_clignotants"]])
    body = decide(operator, cpas, LUC, "forms.list")
    assert body["allowed"] is False
    assert body["explanation"] == {"reason": "not_granted", "granted_by": [], "missing_prerequisites": []}
    body = decide(operator, cpas, UNKNOWN_USER, "forms.list")
    assert body["allowed"] is False
    assert body["explanation"]["reason"] == "unknown_user"
    assert allowed(operator, cpas, UNKNOWN_USER, "forms.list") is False  # 200, allowed false
    # the dotted form of the CPAS number is accepted
    dotted = f"{cpas[:4]}.{cpas[4:7]}.{cpas[7:]}"
    assert allowed(operator, dotted, MARIE, "forms.list") is True
    error(operator.post("/enforce", {"cpas": cpas, "user": MARIE, "function": "no.such_function"}),
          400, "unknown_function")
    error(operator.post("/enforce", {"cpas": kbo(123), "user": MARIE, "function": "forms.list"}),
          404, "unknown_cpas")
    error(operator.post("/enforce", {"cpas": cpas[:-1] + str((int(cpas[-1]) + 1) % 10), "user": MARIE,
                                     "function": "forms.list"}), 400, "invalid_request")
    error(operator.post("/enforce", {"cpas": cpas, "user": MARIE}), 400, "invalid_request")
    error(operator.post("/enforce", {"cpas": cpas, "user": MARIE, "function": "forms.list", "explain": "yes"}),
          400, "invalid_request")
    # authentication
    anonymous = type(operator)(operator.client, None)
    error(anonymous.post("/enforce", {"cpas": cpas, "user": MARIE, "function": "forms.list"}),
          401, "unauthenticated")
    bogus = type(operator)(operator.client, "azk_000000000000_nope")
    error(bogus.post("/enforce", {"cpas": cpas, "user": MARIE, "function": "forms.list"}), 401, "unauthenticated")


def test_api_key_limited_to_another_cpas_is_forbidden(api_for, demo) -> None:
    cpas = demo["cpas"]
    elsewhere = api_for("enforce,users,admin", [kbo(55)])
    error(elsewhere.post("/enforce", {"cpas": cpas, "user": MARIE, "function": "forms.list"}), 403, "forbidden")
    error(elsewhere.get(f"/cpas/{cpas}/profiles"), 403, "forbidden")
    error(elsewhere.get(f"/cpas/{cpas}/users/{MARIE}/functions"), 403, "forbidden")
    enforce_only = api_for("enforce", [cpas])
    assert allowed(enforce_only, cpas, MARIE, "forms.list") is True
    error(enforce_only.get(f"/cpas/{cpas}/profiles"), 403, "forbidden")
    error(enforce_only.post(f"/cpas/{cpas}/users/{MARIE}/deactivate"), 403, "forbidden")


def test_batch_keeps_order_and_answers_like_single_enforce(operator, demo) -> None:
    cpas = demo["cpas"]
    codes = ["forms.list", "dossier.search", "help_request.list", "help_request.print", "notification.alert.view",
             "notification.alert.reply", "recovery.dossier.update", "mutation.national_register.mark_read",
             "piis.view", "debt_dossier.update"]
    for code in codes:
        assert code in functions(), code
    requests = []
    for user in [*demo["users"], UNKNOWN_USER]:
        for code in codes:
            requests.append({"id": f"{user}/{code}", "cpas": cpas, "user": user, "function": code})
    requests.reverse()  # the answer follows the input order, whatever it is
    body = ok(operator.post("/enforce/batch", {"requests": requests}))
    assert isinstance(body["policy_version"], int)
    assert [r["id"] for r in body["results"]] == [r["id"] for r in requests]
    for request, result in zip(requests, body["results"], strict=True):
        single = ok(operator.post("/enforce", {k: v for k, v in request.items() if k != "id"}))
        assert result["allowed"] is single["allowed"], request
        assert "error" not in result
        expected = request["function"] in effective(demo_granted(demo, request["user"])) \
            if request["user"] in demo["users"] else False
        assert result["allowed"] is expected, request
    # one bad item gets its own error without failing the others
    mixed = ok(operator.post("/enforce/batch", {"requests": [
        {"id": "a", "cpas": cpas, "user": MARIE, "function": "forms.list"},
        {"id": "b", "cpas": cpas, "user": MARIE, "function": "no.such"},
        {"id": "c", "cpas": kbo(123), "user": MARIE, "function": "forms.list"},
        {"id": "d", "cpas": cpas, "user": LUC, "function": "forms.list"},
    ]}))
    results = mixed["results"]
    assert [r["id"] for r in results] == ["a", "b", "c", "d"]
    assert results[0]["allowed"] is True and "error" not in results[0]
    assert results[1]["allowed"] is False and results[1]["error"]["code"] == "unknown_function"
    assert results[2]["allowed"] is False and results[2]["error"]["code"] == "unknown_cpas"
    assert results[3]["allowed"] is False and "error" not in results[3]
    too_many = [{"id": str(i), "cpas": cpas, "user": MARIE, "function": "forms.list"} for i in range(1001)]
    error(operator.post("/enforce/batch", {"requests": too_many}), 413, "payload_too_large")


# == audit ===============================================================================================
def test_audit_records_every_change_newest_first(operator, demo) -> None:
    cpas, ids = demo["cpas"], demo["profiles"]
    actor = "key:test"  # the operator fixture's key is named "test"
    assert seen(operator, cpas, "50020212345", "Agent Audit").status_code == 201
    created = create(operator, cpas, "Audit", "Audit (nl)", ["forms.list"])
    pid = created["id"]
    ok(operator.put(f"/cpas/{cpas}/profiles/{pid}", {"version": 1, "description_fr": "Audit 2",
                                                     "description_nl": "Audit (nl)",
                                                     "functions": ["forms.list", "dossier.list"]}))
    assign(operator, cpas, "50020212345", [pid, ids["clignotants"]])
    error(operator.delete(f"/cpas/{cpas}/profiles/{pid}"), 409, "profile_in_use")  # refused: not recorded
    assign(operator, cpas, "50020212345", [ids["clignotants"]])
    assert operator.delete(f"/cpas/{cpas}/profiles/{pid}").status_code == 204
    ok(operator.post(f"/cpas/{cpas}/users/50020212345/deactivate"))
    ok(operator.post(f"/cpas/{cpas}/users/50020212345/reactivate"))

    body = ok(operator.get(f"/cpas/{cpas}/audit?page=1"))
    items = body["items"]
    assert body["total"] >= 8
    mine = items[:8]
    assert [(i["action"], i["target"]) for i in mine] == [
        ("user.reactivate", "user:50020212345"),
        ("user.deactivate", "user:50020212345"),
        ("profile.delete", f"profile:{pid}"),
        ("user.assign", "user:50020212345"),
        ("user.assign", "user:50020212345"),
        ("profile.update", f"profile:{pid}"),
        ("profile.create", f"profile:{pid}"),
        ("user.first_login", "user:50020212345"),
    ]
    assert all(i["actor"] == actor for i in mine)
    ats = [datetime.fromisoformat(i["at"]) for i in items]
    assert all(a.tzinfo is not None for a in ats)
    assert ats == sorted(ats, reverse=True)
    reactivate, deactivate, delete, unassign, assign_, update, create_, first = mine
    assert first["before"] is None
    assert first["after"]["user"] == "50020212345" and first["after"]["profiles"] == []
    assert first["after"]["active"] is True
    assert create_["before"] is None
    assert create_["after"]["description_fr"] == "Audit" and create_["after"]["functions"] == ["forms.list"]
    assert update["before"]["description_fr"] == "Audit" and update["before"]["version"] == 1
    assert update["after"]["description_fr"] == "Audit 2" and update["after"]["version"] == 2
    assert sorted(update["after"]["functions"]) == ["dossier.list", "forms.list"]
    assert assign_["before"]["profiles"] == [] and sorted(assign_["after"]["profiles"]) == sorted(
        [pid, ids["clignotants"]])
    assert sorted(unassign["before"]["profiles"]) == sorted([pid, ids["clignotants"]])
    assert unassign["after"]["profiles"] == [ids["clignotants"]]
    assert delete["before"]["description_fr"] == "Audit 2" and delete["after"] is None
    assert deactivate["before"]["active"] is True and deactivate["before"]["profiles"] == [ids["clignotants"]]
    assert deactivate["after"]["active"] is False and deactivate["after"]["profiles"] == []
    assert reactivate["before"]["active"] is False and reactivate["after"]["active"] is True
    assert reactivate["after"]["profiles"] == []
    # the seeding is in the log too, by its own actor, and paging works
    last = ok(operator.get(f"/cpas/{cpas}/audit?page={(body['total'] + 49) // 50}"))
    assert last["items"][-1]["action"] == "cpas.create"
    assert last["items"][-1]["actor"] == "cli:seed-demo"
    page2 = ok(operator.get(f"/cpas/{cpas}/audit?page=2&per_page=3"))
    assert [i["action"] for i in page2["items"]] == [i["action"] for i in items[3:6]]


# == Casbin export =======================================================================================
def test_policy_csv_loads_in_stock_pycasbin_and_decides_like_enforce(operator, demo, tmp_path) -> None:
    cpas, ids = demo["cpas"], demo["profiles"]
    # a few changes first, so that the export is not just the seed
    assign(operator, cpas, LUC, [ids["director"], ids["clignotants"]])
    ok(operator.post(f"/cpas/{cpas}/users/{MARIE}/deactivate"))
    response = operator.get(f"/cpas/{cpas}/policy.csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    text = response.get_data(as_text=True)
    assert f"g, user:{CLAIRE}, profile:{ids['director']}, {cpas}" in text
    path = tmp_path / "policy.csv"
    path.write_text(text, encoding="utf-8")
    enforcer = casbin.Enforcer(str(MODEL), str(path))
    users = [*demo["users"], UNKNOWN_USER]
    requests = [{"id": f"{u}|{c}", "cpas": cpas, "user": u, "function": c} for u in users for c in all_codes()]
    answers: dict[str, bool] = {}
    for start in range(0, len(requests), 1000):
        body = ok(operator.post("/enforce/batch", {"requests": requests[start:start + 1000]}))
        answers.update({r["id"]: r["allowed"] for r in body["results"]})
    mismatches = [
        rid for rid in answers
        if enforcer.enforce(f"user:{rid.split('|')[0]}", cpas, rid.split("|")[1]) is not answers[rid]
    ]
    assert mismatches == []
    assert sum(answers.values()) > 0
    # and single /enforce on a sample of users, every code
    for user in (CLAIRE, ANNELIES, NATHALIE, LUC, MARIE):
        for code in all_codes():
            assert enforcer.enforce(f"user:{user}", cpas, code) is allowed(operator, cpas, user, code), (user, code)


# == catalog and templates ===============================================================================
def test_catalog_in_dutch(operator, demo) -> None:
    body = ok(operator.get("/catalog?lang=nl"))
    labels: dict[str, str] = {}

    def walk(nodes: list[dict[str, Any]]) -> None:
        for node in nodes:
            labels[node["code"]] = node["label"]
            walk(node.get("children") or [])

    walk(body["tree"])
    expected = {g["code"]: g["label"]["nl"] for g in catalog_data()["groups"]}
    expected.update({f["code"]: f["label"]["nl"] for f in catalog_data()["functions"]})
    assert labels == expected
    assert labels["mutations"] == "Mutaties"
    fr = ok(operator.get("/catalog?lang=fr"))
    assert fr["tree"] != body["tree"]
    help_list = _find(body["tree"], "help_request.list")
    assert [r["code"] for r in help_list["requires"]] == ["dossier.search"]
    assert set(_find(body["tree"], "recovery.dossier.create")["covers"]) == {
        "recovery.dossier.update", "recovery.dossier.close"}
    error(operator.get("/catalog?lang=xx"), 400, "invalid_request")


def _find(nodes: list[dict[str, Any]], code: str) -> dict[str, Any]:
    for node in nodes:
        if node["code"] == code:
            return node
        found = _find(node.get("children") or [], code) if node.get("children") else None
        if found:
            return found
    return {}


def test_templates_by_region(operator, demo) -> None:
    flanders = ok(operator.get("/catalog/templates?region=flanders&lang=nl"))
    by_code = {t["code"]: t for t in flanders["templates"]}
    assert by_code["director_general"]["names"]["flanders"]["nl"] == "Algemeen directeur"
    assert by_code["financial_director"]["names"]["flanders"]["nl"] == "Financieel directeur"
    assert by_code["social_worker"]["names"]["flanders"]["nl"] == "Maatschappelijk werker"
    assert by_code["administrative_agent"]["names"]["flanders"]["nl"] == "Administratief medewerker"
    assert by_code["director_general"]["name"] == "Algemeen directeur"
    assert by_code["financial_director"]["name"] == "Financieel directeur"
    for tpl in templates_data():
        assert by_code[tpl["code"]]["functions"] == tpl["functions"]
    brussels = ok(operator.get("/catalog/templates?region=brussels&lang=fr"))
    names = {t["code"]: t["name"] for t in brussels["templates"]}
    assert names["director_general"] == "Secrétaire"
    assert names["financial_director"] == "Receveur"
    assert names["administrative_agent"] == "Agent administratif"
    assert names["social_worker"] == "Travailleur social"
    error(operator.get("/catalog/templates?region=mars"), 400, "invalid_request")


# == operations ==========================================================================================
API_ROUTES = [
    ("post", "/enforce"),
    ("post", "/enforce/batch"),
    ("get", "/cpas/{}/users/{}/functions"),
    ("put", "/cpas/{}/users/{}"),
    ("get", "/catalog"),
    ("get", "/catalog/templates"),
    ("post", "/cpas"),
    ("get", "/cpas/{}/profiles"),
    ("post", "/cpas/{}/profiles"),
    ("get", "/cpas/{}/profiles/{}"),
    ("put", "/cpas/{}/profiles/{}"),
    ("delete", "/cpas/{}/profiles/{}"),
    ("get", "/cpas/{}/users"),
    ("put", "/cpas/{}/users/{}/profiles"),
    ("post", "/cpas/{}/users/{}/deactivate"),
    ("post", "/cpas/{}/users/{}/reactivate"),
    ("get", "/cpas/{}/audit"),
]


def test_operations_routes(app, operator, demo) -> None:
    anonymous = app.test_client()
    assert anonymous.get("/healthz").status_code == 200
    assert anonymous.get("/readyz").status_code == 200
    allowed(operator, demo["cpas"], MARIE, "forms.list")
    metrics = anonymous.get("/metrics")
    assert metrics.status_code == 200
    assert "authz_decisions_total" in metrics.get_data(as_text=True)

    spec = anonymous.get("/openapi.json")
    assert spec.status_code == 200
    doc = spec.get_json()
    assert str(doc["openapi"]).startswith("3.")
    paths = {re.sub(r"\{[^}]*\}", "{}", p): ops for p, ops in doc["paths"].items()}
    missing = [(m, p) for m, p in API_ROUTES if p not in paths or m not in paths[p]]
    assert missing == []

    docs = anonymous.get("/docs")
    assert docs.status_code == 200
    assert docs.mimetype == "text/html"
    assert "/openapi.json" in docs.get_data(as_text=True)


@pytest.mark.parametrize("route", ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"])
def test_operations_routes_need_no_key(app, route) -> None:
    assert app.test_client().get(route).status_code == 200
