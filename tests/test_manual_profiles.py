"""The profiles the manual describes can be used: built by "Sélectionner tout" on each block, as the
manual advises, from its example profiles and its predefined profiles, none of their functions is
denied for a missing prerequisite, except in the manual's own case (the functions of "Demandes d'aide"
without "Recherche d'un dossier").

Decided through the real engine: the catalog's rule rows as `authz-service init-db` writes them, one
``CpasPolicy`` over the profiles' links; and by stock pycasbin on model.conf over the same lines, as
tests/test_engine.py and tests/test_differential.py do. Expected values come from the manual (through
policies/catalog.yaml's blocks, seed/demo.yaml's profiles and policies/templates.yaml), never from the
engine's answers."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import casbin
import pytest
import yaml

from authz_service.catalog import Catalog, load_catalog
from authz_service.cli import init_db
from authz_service.config import load_settings
from authz_service.db import Database
from authz_service.engine import CpasPolicy, Decision, Rules, function_role, profile_role, user_subject
from authz_service.store import Store, policy_csv

ROOT = Path(__file__).resolve().parent.parent
CPAS = "0207196354"
SEARCH = "dossier.search"  # "Recherche d'un dossier"
HELP_REQUESTS = "help_requests"  # "Demandes d'aide"


@dataclass(frozen=True)
class Profile:
    """A profile as a configuration manager builds it: its ticked functions and included profiles."""

    name: str
    functions: frozenset[str]
    includes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rows:
    """The catalog's global rule rows, as init-db writes them and every engine reads them."""

    rules: Rules
    lines: list[tuple[str, ...]]


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(ROOT / "policies")


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rows]:
    folder = tmp_path_factory.mktemp("manual-profiles")
    settings = load_settings({"database_url": f"sqlite:///{folder / 'authz.sqlite3'}", "poll_interval": 0,
                              "policies_dir": ROOT / "policies"})
    init_db(settings)
    database = Database(settings.database_url)
    try:
        with database.transaction() as session:
            store = Store(session)
            yield Rows(store.rules(), store.policy_lines(CPAS))  # a CPAS without links: the p lines only
    finally:
        database.dispose()


def decide(catalog: Catalog, rows: Rows, profiles: Iterable[Profile], tmp_path: Path) -> dict[str, dict[str, Decision]]:
    """Each profile given to a user of its own; every function of the catalog decided for each, by the
    engine (explained) and, for the same answer, by stock pycasbin. Returns profile -> code -> decision."""
    profiles = list(profiles)
    ids = {p.name: n for n, p in enumerate(profiles, start=1)}
    links: list[tuple[str, str]] = []
    for p in profiles:
        links.append((user_subject(f"u{ids[p.name]}"), profile_role(ids[p.name])))
        links += [(profile_role(ids[p.name]), function_role(code)) for code in sorted(p.functions)]
        links += [(profile_role(ids[p.name]), profile_role(ids[inc])) for inc in p.includes]
    policy = CpasPolicy(CPAS, 1, rows.rules, links, {f"u{n}": True for n in ids.values()})
    csv = tmp_path / "policy.csv"
    csv.write_text(policy_csv([*rows.lines, *(("g", child, parent, CPAS) for child, parent in links)]))
    enforcer = casbin.Enforcer(str(ROOT / "model.conf"), str(csv))
    out: dict[str, dict[str, Decision]] = {}
    for p in profiles:
        user = f"u{ids[p.name]}"
        out[p.name] = {}
        for code in catalog.functions:
            decision = policy.decide(user, code, explain=True)
            assert enforcer.enforce(user_subject(user), CPAS, code) is decision.allowed, (p.name, code)
            out[p.name][code] = decision
    return out


def held(catalog: Catalog, profiles: dict[str, Profile], name: str) -> set[str]:
    """Every function the profile's checkboxes grant (covered actions and included profiles too)."""
    profile = profiles[name]
    out = set(profile.functions)
    for inc in profile.includes:
        out |= held(catalog, profiles, inc)
    return out | {c for code in out for c in catalog.functions[code].covers}


def in_help_requests(catalog: Catalog, group: str | None) -> bool:
    """Whether ``group`` is Demandes d'aide or one of its sub-blocks."""
    while group is not None and group != HELP_REQUESTS:
        group = catalog.groups[group].parent
    return group == HELP_REQUESTS


def under_help_requests(catalog: Catalog, code: str) -> bool:
    return in_help_requests(catalog, catalog.functions[code].group)


def assert_usable(catalog: Catalog, rows: Rows, tmp_path: Path, profiles: list[Profile],
                  *, manual_case: bool = True) -> dict[str, dict[str, Decision]]:
    """Every function each profile holds is allowed, except (with ``manual_case``) a function of
    Demandes d'aide in a profile without Recherche d'un dossier, denied for that reason alone."""
    by_name = {p.name: p for p in profiles}
    decisions = decide(catalog, rows, profiles, tmp_path)
    for p in profiles:
        mine = held(catalog, by_name, p.name)
        assert mine, p.name
        for code, decision in decisions[p.name].items():
            if code not in mine:
                assert not decision.allowed and decision.reason == "not_granted", (p.name, code, decision)
            elif not decision.allowed:
                assert decision.reason == "missing_prerequisite", (p.name, code, decision)
                assert manual_case and SEARCH not in mine, (p.name, code, decision)
                assert decision.missing_prerequisites == (SEARCH,), (p.name, code, decision)
                assert under_help_requests(catalog, code), (p.name, code)
    return decisions


def denied(decisions: dict[str, Decision]) -> set[str]:
    return {code for code, d in decisions.items() if d.reason == "missing_prerequisite"}


# -- "Sélectionner tout" ------------------------------------------------------------------------------


def test_select_all_on_every_block(catalog: Catalog, rows: Rows, tmp_path: Path) -> None:
    """Each block and sub-block's "Sélectionner tout", alone: usable, but for the manual's own case."""
    profiles = [Profile(code, frozenset(catalog.group_functions(code))) for code in catalog.groups
                if catalog.group_functions(code)]
    assert len(profiles) == len(catalog.groups)  # no empty block
    decisions = assert_usable(catalog, rows, tmp_path, profiles)
    for p in profiles:
        if in_help_requests(catalog, p.name):
            # the manual's warning: without Recherche d'un dossier, no help request can be reached
            assert denied(decisions[p.name]) == held(catalog, {p.name: p}, p.name), p.name
        else:
            assert denied(decisions[p.name]) == set(), p.name


def test_select_all_on_every_block_with_dossier_search(catalog: Catalog, rows: Rows, tmp_path: Path) -> None:
    """As the manual advises: with "Recherche d'un dossier", every block is entirely usable."""
    profiles = [Profile(code, frozenset({*catalog.group_functions(code), SEARCH})) for code in catalog.groups]
    assert_usable(catalog, rows, tmp_path, profiles, manual_case=False)


def test_the_manuals_advice_for_help_requests(catalog: Catalog, rows: Rows, tmp_path: Path) -> None:
    """"Recherche d'un dossier" + "Sélectionner tout" on Demandes d'aide: all 72 actions allowed (3 of
    them were denied for the forms consultation before issue 10)."""
    advice = Profile("advice", frozenset({SEARCH, *catalog.group_functions(HELP_REQUESTS)}))
    decisions = assert_usable(catalog, rows, tmp_path, [advice], manual_case=False)
    allowed = {code for code, d in decisions["advice"].items() if d.allowed}
    assert len(allowed) == 72
    assert {"decision.dis.form.send", "decision.dis.exemption_form.send", "heating_allowance.form.send"} <= allowed


def test_debt_and_recovery_dossiers_stand_alone(catalog: Catalog, rows: Rows, tmp_path: Path) -> None:
    """"Sélectionner tout" on Dossiers de dette and Dossiers de récupération, without the social
    dossier's search: all 40 actions allowed (the manual: debts not tied to an active social dossier)."""
    both = Profile("debt+recovery", frozenset({*catalog.group_functions("debt_dossiers"),
                                               *catalog.group_functions("recovery_dossiers")}))
    decisions = assert_usable(catalog, rows, tmp_path, [both], manual_case=False)
    assert SEARCH not in both.functions
    assert sum(d.allowed for d in decisions["debt+recovery"].values()) == 40


def test_select_all_overall(catalog: Catalog, rows: Rows, tmp_path: Path) -> None:
    everything = Profile("Tous les accès", frozenset(catalog.selectable))
    decisions = assert_usable(catalog, rows, tmp_path, [everything], manual_case=False)
    assert all(d.allowed for d in decisions["Tous les accès"].values())


# -- the home page's entries, one at a time -----------------------------------------------------------

HOME_PAGE = {
    "Nouveau dossier": {"dossier.create"},
    "Rechercher un dossier": {SEARCH},
    "Dossiers du C.P.A.S.": {"dossier.list"},
    "Chercher les dossiers pour lesquels il reste des formulaires à envoyer": {"forms.pending_search"},
    "Lister les formulaires": {"forms.list"},
    "Exportation des allocations de chauffage pour une période": {"heating_allowance.export"},
    "Gérer les Rapports Sociaux Electroniques": {"rse.list"},
    "Ajouter un document": {"document.add"},
    "Gérer les documents": {"document.manage"},
    "Clignotants": {"notification.alert.view"},
    "Blocages des formulaires": {"notification.form_block.view"},
    "Changements de statuts": {"notification.status_change.view"},
    "Consulter les mutations": {"mutation.national_register.view", "mutation.mediprima.view"},
    "Consulter les demandes CPAS Online": {"cpas_online.request.view"},
    "Projets Individualisés d'Intégration Sociale": {"statistics.piis.view"},
}


def test_each_home_page_entry_alone(catalog: Catalog, rows: Rows, tmp_path: Path) -> None:
    profiles = [Profile(name, frozenset(codes)) for name, codes in HOME_PAGE.items()]
    decisions = assert_usable(catalog, rows, tmp_path, profiles, manual_case=False)
    for name, codes in HOME_PAGE.items():
        assert all(decisions[name][c].allowed for c in codes), name


def test_checkboxes_without_a_screen_of_another(catalog: Catalog, rows: Rows, tmp_path: Path) -> None:
    """Sending a form needs no forms consultation, sending an RSE no writing, opening a debt or recovery
    dossier no dossier search, documents and PIIS no dossier search."""
    profiles = [
        Profile("forms", frozenset({"dossier.installation_premium.send", "dossier.a036.send", SEARCH,
                                    "decision.dis.view", "decision.dis.form.send", "decision.dis.exemption_form.send",
                                    "heating_allowance.form.send"})),
        Profile("rse", frozenset({"rse.send"})),
        Profile("debt", frozenset({"debt_dossier.view", "debt_dossier.close_reopen", "debt_dossier.repayment.manage"})),
        Profile("recovery", frozenset({"recovery.dossier.view", "recovery.claim.view", "recovery.form_a.view"})),
        Profile("documents", frozenset({"document.add", "document.manage", "document.ebox.send"})),
        Profile("piis", frozenset({"piis.manage"})),
    ]
    decisions = assert_usable(catalog, rows, tmp_path, profiles, manual_case=False)
    for p in profiles:
        assert all(decisions[p.name][c].allowed for c in p.functions), p.name
    assert decisions["forms"]["dossier.forms.view"].reason == "not_granted"


# -- the manual's example profiles and predefined profiles -------------------------------------------


def demo_profiles() -> list[Profile]:
    """The profiles of the manual's "Gestion des accès" screens, as seed/demo.yaml builds them."""
    data: dict[str, Any] = yaml.safe_load((ROOT / "seed" / "demo.yaml").read_text(encoding="utf-8"))
    return [Profile(p["key"], frozenset(p["functions"]), tuple(p.get("includes") or ())) for p in data["profiles"]]


def test_the_manuals_example_profiles(catalog: Catalog, rows: Rows, tmp_path: Path) -> None:
    profiles = demo_profiles()
    names = {p.name for p in profiles}
    assert {"full", "rmc1", "clignotants", "admin_clignotants", "admin_medewerkster", "director"} <= names
    decisions = assert_usable(catalog, rows, tmp_path, profiles)
    by_name = {p.name: p for p in profiles}
    for p in profiles:
        if p.name == "admin_medewerkster":
            # "administratif medewerkster": the manual's warning in a profile, help requests without
            # Recherche d'un dossier; nothing else of it is denied
            assert denied(decisions[p.name]) == {c for c in held(catalog, by_name, p.name)
                                                 if under_help_requests(catalog, c)} != set()
            assert decisions[p.name]["forms.list"].allowed
        else:
            assert denied(decisions[p.name]) == set(), p.name
    # RMC-1 as the manual's screens show it: the forms listing only
    assert by_name["rmc1"].functions == {"forms.list"}
    assert {c for c, d in decisions["rmc1"].items() if d.allowed} == {"forms.list"}
    # "travailleur administratif + clignotants" holds the alerts through the included profile
    assert decisions["admin_clignotants"]["notification.alert.reply"].allowed


def test_the_predefined_profiles(catalog: Catalog, rows: Rows, tmp_path: Path) -> None:
    profiles = [Profile(t.code, frozenset(t.functions)) for t in catalog.templates]
    assert len(profiles) == 4
    decisions = assert_usable(catalog, rows, tmp_path, profiles, manual_case=False)
    for p in profiles:
        assert all(decisions[p.name][c].allowed for c in p.functions), p.name


# -- what the manager is told --------------------------------------------------------------------------


def test_the_warning_says_why_in_the_readers_language(catalog: Catalog) -> None:
    """The profile form's prerequisite warning names what is missing and why, in French or Dutch, and
    the tree marks what the manual does not show."""
    from authz_service.web.tree import build_tree, missing_prerequisites, prerequisite_reasons

    search = catalog.prerequisite_reason("help_request.list", SEARCH)
    reply = catalog.prerequisite_reason("notification.alert.reply", "notification.alert.view")
    for lang in ("fr", "nl"):
        warning = missing_prerequisites(catalog, lang, ["help_request.print", "notification.alert.reply"])
        assert [(m.code, [(n.code, n.reason) for n in m.needs]) for m in warning] == [
            ("notification.alert.reply", [("notification.alert.view", reply.get(lang))]),
            ("help_request.print", [(SEARCH, search.get(lang))]),
        ]
        assert warning[1].needs[0].label == catalog.functions[SEARCH].label.get(lang)
        assert prerequisite_reasons(catalog, lang)["help_request.print"] == {SEARCH: search.get(lang)}
    assert missing_prerequisites(catalog, "fr", ["dossier.create", "document.add", "debt_dossier.view"]) == []
    nodes = {n.code: n for n in _nodes(build_tree(catalog, "nl", {"help_request.list"}))}
    assert nodes["help_request.list"].requires_why == [search.nl]
    assert nodes["dossiers"].in_manual and not nodes["cpas_online"].in_manual
    assert nodes["dossier.search"].in_manual and not nodes["rse.send"].in_manual


def _nodes(nodes: list[Any]) -> Iterator[Any]:
    for node in nodes:
        yield node
        if node.kind == "group":
            yield from _nodes(node.children)
