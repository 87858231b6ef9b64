"""The function catalog: the real policies/ files, the loader's validation on broken catalogs, and
the demo seed's consistency with the catalog."""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from authz_service.catalog import (
    LANGS,
    REGIONS,
    Catalog,
    CatalogError,
    Function,
    Group,
    Label,
    default_policies_dir,
    load_catalog,
)

REPO = Path(__file__).resolve().parent.parent
POLICIES = REPO / "policies"
SEED = REPO / "seed" / "demo.yaml"
FUNCTION_CODE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)*")


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(POLICIES)


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((POLICIES / "catalog.yaml").read_text(encoding="utf-8"))
    return data


def _walk(nodes: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for node in nodes:
        yield node
        if node["type"] == "group":
            yield from _walk(node["children"])


# -- the real catalog ---------------------------------------------------------------------------


def test_real_catalog_loads_with_expected_size(catalog: Catalog) -> None:
    assert catalog.version
    assert 150 <= len(catalog.functions) <= 250
    assert len(catalog.selectable) == sum(f.selectable for f in catalog.functions.values())
    assert len(catalog.templates) == 4


def test_codes_are_unique_in_the_files(raw: dict[str, Any]) -> None:
    group_codes = [g["code"] for g in raw["groups"]]
    function_codes = [f["code"] for f in raw["functions"]]
    assert len(group_codes) == len(set(group_codes))
    assert len(function_codes) == len(set(function_codes))
    assert all(FUNCTION_CODE.fullmatch(c) for c in function_codes)


def test_every_label_has_french_and_dutch(catalog: Catalog) -> None:
    items: list[Group | Function] = [*catalog.groups.values(), *catalog.functions.values()]
    for item in items:
        assert item.label.fr.strip(), item.code
        assert item.label.nl.strip(), item.code
        assert item.label.fr != item.label.nl or item.label.fr in {"Dossiers", "Etats mensuels"}, item.code


def test_manual_blocks_and_top_level_functions_are_present(catalog: Catalog) -> None:
    labels = {g.label.fr for g in catalog.groups.values()}
    for block in [
        "Mutations",
        "Notifications SPP IS",
        "Alertes",
        "Blocages de formulaires",
        "Dossiers",
        "Dossiers de dette",
        "Enquête",
        "Ménage",
        "Flux d'enquête",
        "Dossiers de récupération",
        "Demandes d'aide",
        "Données générales",
        "Intégrations",
        "Enquête sociale",
        "Ménage / liste des débiteurs alimentaires",
        "Informations générales",
        "Adresses",
        "Ressources",
        "Dépenses",
        "Dossier d'intégration",
        "Section de réouverture",
        "Décisions DIS",
        "Rapports Sociaux Electroniques",
        "Gestion des documents",
        "Collecte de statistiques",
        "Consultation des données de la Direction Générale Personnes Handicapées",
    ]:
        assert block in labels, block
    top = [f.code for f in catalog.functions.values() if f.group is None]
    assert top == ["forms.list", "heating_allowance.export", "forms.pending_search"]
    assert catalog.functions["dossier.search"].label.fr == "Recherche d'un dossier"
    # collapsed blocks are marked as implied and explained
    for code in ["rse", "documents", "statistics", "dis_decisions", "help_request_general_data", "si_resources"]:
        assert catalog.groups[code].implied, code
        assert catalog.groups[code].note, code
    assert not catalog.groups["mutations"].implied


def test_covered_actions_of_the_manual(catalog: Catalog) -> None:
    assert set(catalog.functions["recovery.dossier.create"].covers) == {
        "recovery.dossier.update",
        "recovery.dossier.close",
    }
    assert set(catalog.functions["recovery.claim.create"].covers) == {"recovery.claim.update", "recovery.claim.delete"}
    assert catalog.functions["debt_dossier.create"].covers == ("debt_dossier.update",)
    assert catalog.coverers("debt_dossier.household.remove_member") == ("debt_dossier.household.add_member",)
    assert set(catalog.functions["help_request.print"].covers) == {
        "help_request.add",
        "help_request.update",
        "help_request.submit_to_council",
        "help_request.complete",
        "help_request.duplicate",
        "help_request.close",
        "help_request.revise",
    }
    # in the Enquête sociale the removal has its own checkbox
    assert catalog.functions["social_inquiry.household.remove_member"].selectable


def test_covering_rules_hold(catalog: Catalog) -> None:
    for fn in catalog.functions.values():
        for covered in fn.covers:
            assert covered in catalog
            assert not catalog.functions[covered].selectable
        if fn.selectable:
            assert catalog.coverers(fn.code) == ()
        else:
            assert catalog.coverers(fn.code), fn.code
            assert all(catalog.functions[c].selectable for c in catalog.coverers(fn.code))


def test_every_prerequisite_exists_and_is_selectable(catalog: Catalog) -> None:
    count = 0
    for fn in catalog.functions.values():
        for pre in fn.requires:
            count += 1
            assert pre.code in catalog, (fn.code, pre.code)
            assert catalog.functions[pre.code].selectable, (fn.code, pre.code)
            assert pre.code != fn.code
            assert pre.reason.strip()
    assert count > 100


def test_no_prerequisite_cycles(catalog: Catalog) -> None:
    for code in catalog.functions:
        assert code not in catalog.prerequisites(code)


def test_every_help_request_function_requires_dossier_search(catalog: Catalog) -> None:
    help_codes = [c for c in catalog.functions if c.startswith("help_request.")]
    assert len(help_codes) >= 15
    for code in help_codes:
        assert catalog.functions[code].requires, code  # covered actions included
        assert "dossier.search" in catalog.prerequisites(code), code
    # every function of the Demandes d'aide block and its sub-blocks too
    for code, fn in catalog.functions.items():
        group = fn.group
        while group is not None and group != "help_requests":
            group = catalog.groups[group].parent
        if group == "help_requests":
            assert "dossier.search" in catalog.prerequisites(code), code


def test_other_prerequisites_from_the_manual(catalog: Catalog) -> None:
    assert "notification.alert.view" in catalog.prerequisites("notification.alert.reply")
    for code in catalog.functions:
        if code.endswith(".mark_read"):
            assert code.replace(".mark_read", ".view") in catalog.prerequisites(code), code
    assert "dossier.forms.view" in catalog.prerequisites("dossier.installation_premium.send")
    assert "dossier.search" in catalog.prerequisites("recovery.claim.create")
    assert "dossier.search" in catalog.prerequisites("social_inquiry.flow.national_register")
    assert catalog.prerequisites("dossier.search") == frozenset()
    assert catalog.prerequisites("mutation.national_register.view") == frozenset()


def test_tree_contains_every_function_once_in_display_order(catalog: Catalog) -> None:
    for lang in LANGS:
        nodes = list(_walk(catalog.tree(lang)))
        functions = [n["code"] for n in nodes if n["type"] == "function"]
        groups = [n["code"] for n in nodes if n["type"] == "group"]
        assert functions == list(catalog.functions)
        assert groups == list(catalog.groups)
    tree = catalog.tree("nl")
    assert [n["code"] for n in tree[:3]] == ["forms.list", "heating_allowance.export", "forms.pending_search"]
    assert [n["code"] for n in tree if n["type"] == "group"] == [
        "mutations",
        "notifications",
        "dossiers",
        "rse",
        "documents",
        "statistics",
        "piis",
    ]
    by_code = {n["code"]: n for n in _walk(tree)}
    assert by_code["dossier.search"]["label"] == "Opzoeken van een dossier"
    assert by_code["help_request.add"]["selectable"] is False
    assert by_code["help_request.list"]["requires"][0]["code"] == "dossier.search"
    assert set(by_code["dossiers"]) == {"type", "code", "label", "implied", "children"}
    assert set(by_code["help_request.print"]) == {"type", "code", "label", "selectable", "covers", "requires"}


def test_group_functions(catalog: Catalog) -> None:
    mutations = catalog.group_functions("mutations", recursive=False)
    assert len(mutations) == 14
    assert mutations[0] == "mutation.national_register.view"
    assert "cpas_online.request.view" in catalog.group_functions("mutations")
    dossiers = catalog.group_functions("dossiers")
    assert "social_inquiry.flow.income" in dossiers
    assert "help_request.add" not in dossiers  # selectable only
    assert catalog.group_functions("dossiers", recursive=False)[:2] == ("dossier.list", "dossier.search")
    with pytest.raises(KeyError):
        catalog.group_functions("nope")


def test_missing_prerequisites(catalog: Catalog) -> None:
    assert catalog.missing_prerequisites(["dossier.search", "help_request.list"]) == {}
    assert catalog.missing_prerequisites(["help_request.list"]) == {"help_request.list": ("dossier.search",)}
    missing = catalog.missing_prerequisites(["help_request.print", "notification.alert.reply"])
    assert missing == {
        "notification.alert.reply": ("notification.alert.view",),
        "help_request.print": ("dossier.search", "help_request.list"),
    }
    assert list(missing) == ["notification.alert.reply", "help_request.print"]  # display order
    # transitive, and including what the covered actions need
    assert catalog.missing_prerequisites(["decision.dis.encode", "dossier.search"]) == {
        "decision.dis.encode": ("decision.dis.view", "help_request.list")
    }
    assert catalog.missing_prerequisites([]) == {}
    assert catalog.missing_prerequisites(catalog.selectable) == {}
    with pytest.raises(KeyError):
        catalog.missing_prerequisites(["no.such.function"])


def test_label_fallback_and_lookup_errors(catalog: Catalog) -> None:
    label = Label(fr="Recherche", nl="Opzoeken")
    assert label.get("fr") == "Recherche"
    assert label.get("nl") == "Opzoeken"
    assert label.get("de") == "Recherche"
    assert Label(fr="a", nl="b", de="c").get("de") == "c"
    with pytest.raises(ValueError):
        label.get("en")
    with pytest.raises(ValueError):
        catalog.tree("en")
    with pytest.raises(KeyError):
        catalog.coverers("no.such.function")
    with pytest.raises(KeyError):
        catalog.prerequisites("no.such.function")
    assert "dossier.search" in catalog
    assert "help_request.add" in catalog
    assert "mutations" not in catalog


def test_catalog_is_immutable(catalog: Catalog) -> None:
    with pytest.raises(AttributeError):
        catalog.version = "x"
    with pytest.raises(TypeError):
        catalog.functions["x"] = catalog.functions["dossier.search"]  # type: ignore[index]
    with pytest.raises(AttributeError):
        catalog.functions["dossier.search"].selectable = False  # type: ignore[misc]


def test_digest_is_sha256_of_both_files(catalog: Catalog) -> None:
    expected = hashlib.sha256(
        (POLICIES / "catalog.yaml").read_bytes() + (POLICIES / "templates.yaml").read_bytes()
    ).hexdigest()
    assert catalog.digest == expected


def test_default_policies_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("AUTHZ_POLICIES_DIR", raising=False)
    assert default_policies_dir() == POLICIES
    monkeypatch.setenv("AUTHZ_POLICIES_DIR", str(tmp_path))
    assert default_policies_dir() == tmp_path


# -- templates ----------------------------------------------------------------------------------


def test_templates_are_valid_for_every_region(catalog: Catalog) -> None:
    assert [t.code for t in catalog.templates] == [
        "director_general",
        "administrative_agent",
        "social_worker",
        "financial_director",
    ]
    for tpl in catalog.templates:
        for region in REGIONS:
            name = tpl.name(region)
            assert name.fr.strip() and name.nl.strip(), (tpl.code, region)
        assert tpl.functions
        assert all(catalog.functions[c].selectable for c in tpl.functions)
        assert catalog.missing_prerequisites(tpl.functions) == {}, tpl.code
        with pytest.raises(ValueError):
            tpl.name("luxembourg")
    names = {t.code: t for t in catalog.templates}
    assert names["director_general"].name("wallonia").fr == "Directeur général"
    assert names["director_general"].name("brussels").fr == "Secrétaire"
    assert names["financial_director"].name("brussels").fr == "Receveur"
    assert names["financial_director"].name("flanders").nl == "Financieel directeur"
    assert names["administrative_agent"].name("flanders").nl == "Administratief medewerker"
    assert names["social_worker"].name("flanders").nl == "Maatschappelijk werker"
    assert names["social_worker"].name("german_community").de == "Sozialarbeiter"
    assert names["financial_director"].name("german_community").de == "Finanzdirektor"
    assert catalog.template("social_worker") is names["social_worker"]
    social = set(names["social_worker"].functions)
    assert {"dossier.search", "help_request.list", "piis.manage", "rse.create"} <= social
    financial = set(names["financial_director"].functions)
    assert {"recovery.claim.create", "debt_dossier.create", "heating_allowance.export"} <= financial
    with pytest.raises(KeyError):
        catalog.template("nope")


# -- the loader on broken catalogs --------------------------------------------------------------


def _label(text: str) -> dict[str, str]:
    return {"fr": f"{text} fr", "nl": f"{text} nl"}


def _names() -> dict[str, Any]:
    return {region: _label(region) for region in REGIONS}


def _base() -> tuple[dict[str, Any], dict[str, Any]]:
    catalog: dict[str, Any] = {
        "version": "t.1",
        "groups": [
            {"code": "files", "parent": None, "order": 10, "label": _label("Dossiers"), "implied": False, "note": None},
            {"code": "requests", "parent": "files", "order": 100, "label": _label("Demandes")},
        ],
        "functions": [
            {
                "code": "top.list",
                "group": None,
                "order": 5,
                "label": _label("Listing"),
                "selectable": True,
                "covers": [],
                "requires": [],
            },
            {"code": "dossier.search", "group": "files", "order": 10, "label": _label("Recherche")},
            {
                "code": "help_request.list",
                "group": "requests",
                "order": 10,
                "label": _label("Liste"),
                "requires": [{"code": "dossier.search", "reason": "through the dossier"}],
            },
            {
                "code": "help_request.print",
                "group": "requests",
                "order": 20,
                "label": _label("Impression"),
                "covers": ["help_request.add"],
                "requires": [{"code": "help_request.list", "reason": "from the list"}],
            },
            {
                "code": "help_request.add",
                "group": "requests",
                "order": 30,
                "label": _label("Ajout"),
                "selectable": False,
                "requires": [{"code": "dossier.search", "reason": "through the dossier"}],
            },
        ],
    }
    templates: dict[str, Any] = {
        "templates": [
            {
                "code": "worker",
                "order": 10,
                "names": _names(),
                "functions": ["dossier.search", "help_request.list", "help_request.print"],
            },
        ]
    }
    return catalog, templates


Mutator = Callable[[dict[str, Any], dict[str, Any]], None]


def _write(directory: Path, catalog: dict[str, Any], templates: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "catalog.yaml").write_text(yaml.safe_dump(catalog, allow_unicode=True), encoding="utf-8")
    (directory / "templates.yaml").write_text(yaml.safe_dump(templates, allow_unicode=True), encoding="utf-8")
    return directory


def _fn(catalog: dict[str, Any], code: str) -> dict[str, Any]:
    found: dict[str, Any] = next(f for f in catalog["functions"] if f["code"] == code)
    return found


def test_base_test_catalog_is_valid(tmp_path: Path) -> None:
    cat = load_catalog(_write(tmp_path, *_base()))
    assert list(cat.functions) == [
        "top.list",
        "dossier.search",
        "help_request.list",
        "help_request.print",
        "help_request.add",
    ]
    assert cat.selectable == ("top.list", "dossier.search", "help_request.list", "help_request.print")
    assert cat.coverers("help_request.add") == ("help_request.print",)
    assert cat.prerequisites("help_request.print") == {"help_request.list", "dossier.search"}
    assert cat.missing_prerequisites(["help_request.print"]) == {
        "help_request.print": ("dossier.search", "help_request.list")
    }
    assert cat.groups["requests"].implied is False and cat.groups["requests"].note is None


def _dup_function(c: dict[str, Any], t: dict[str, Any]) -> None:
    c["functions"].append(copy.deepcopy(_fn(c, "help_request.list")))


def _dup_group(c: dict[str, Any], t: dict[str, Any]) -> None:
    c["groups"].append({"code": "requests", "parent": None, "order": 1, "label": _label("x")})


def _missing_nl(c: dict[str, Any], t: dict[str, Any]) -> None:
    del _fn(c, "help_request.list")["label"]["nl"]


def _empty_fr(c: dict[str, Any], t: dict[str, Any]) -> None:
    _fn(c, "help_request.list")["label"]["fr"] = "  "


def _group_missing_nl(c: dict[str, Any], t: dict[str, Any]) -> None:
    del c["groups"][1]["label"]["nl"]


def _unknown_prerequisite(c: dict[str, Any], t: dict[str, Any]) -> None:
    _fn(c, "help_request.list")["requires"].append({"code": "dossier.serch", "reason": "typo"})


def _prerequisite_cycle(c: dict[str, Any], t: dict[str, Any]) -> None:
    _fn(c, "dossier.search")["requires"] = [{"code": "help_request.print", "reason": "loop"}]


def _self_prerequisite(c: dict[str, Any], t: dict[str, Any]) -> None:
    _fn(c, "dossier.search")["requires"] = [{"code": "dossier.search", "reason": "self"}]


def _prerequisite_not_selectable(c: dict[str, Any], t: dict[str, Any]) -> None:
    _fn(c, "top.list")["requires"] = [{"code": "help_request.add", "reason": "covered action"}]


def _prerequisite_without_reason(c: dict[str, Any], t: dict[str, Any]) -> None:
    _fn(c, "top.list")["requires"] = [{"code": "dossier.search"}]


def _covers_selectable(c: dict[str, Any], t: dict[str, Any]) -> None:
    _fn(c, "help_request.print")["covers"].append("help_request.list")


def _covers_unknown(c: dict[str, Any], t: dict[str, Any]) -> None:
    _fn(c, "help_request.print")["covers"].append("help_request.ghost")


def _uncovered_action(c: dict[str, Any], t: dict[str, Any]) -> None:
    _fn(c, "help_request.print")["covers"] = []


def _unknown_parent(c: dict[str, Any], t: dict[str, Any]) -> None:
    c["groups"][1]["parent"] = "folders"


def _parent_cycle(c: dict[str, Any], t: dict[str, Any]) -> None:
    c["groups"][0]["parent"] = "requests"


def _unknown_function_group(c: dict[str, Any], t: dict[str, Any]) -> None:
    _fn(c, "top.list")["group"] = "nowhere"


def _bad_function_code(c: dict[str, Any], t: dict[str, Any]) -> None:
    _fn(c, "top.list")["code"] = "Top.List"


def _bad_group_code(c: dict[str, Any], t: dict[str, Any]) -> None:
    c["groups"].append({"code": "bad.group", "parent": None, "order": 1, "label": _label("x")})


def _order_not_integer(c: dict[str, Any], t: dict[str, Any]) -> None:
    _fn(c, "top.list")["order"] = "first"


def _unknown_key(c: dict[str, Any], t: dict[str, Any]) -> None:
    _fn(c, "top.list")["require"] = []


def _template_unknown_code(c: dict[str, Any], t: dict[str, Any]) -> None:
    t["templates"][0]["functions"].append("dossier.delete")


def _template_missing_prerequisite(c: dict[str, Any], t: dict[str, Any]) -> None:
    t["templates"][0]["functions"].remove("dossier.search")


def _template_covered_action(c: dict[str, Any], t: dict[str, Any]) -> None:
    t["templates"][0]["functions"].append("help_request.add")


def _template_missing_region(c: dict[str, Any], t: dict[str, Any]) -> None:
    del t["templates"][0]["names"]["german_community"]


def _template_name_without_nl(c: dict[str, Any], t: dict[str, Any]) -> None:
    del t["templates"][0]["names"]["brussels"]["nl"]


def _template_duplicate(c: dict[str, Any], t: dict[str, Any]) -> None:
    t["templates"].append(copy.deepcopy(t["templates"][0]))


BROKEN: list[tuple[str, Mutator, list[str]]] = [
    ("duplicate function code", _dup_function, ["help_request.list", "duplicate"]),
    ("duplicate group code", _dup_group, ["requests", "duplicate"]),
    ("function label without nl", _missing_nl, ["help_request.list", "'nl'"]),
    ("function label with blank fr", _empty_fr, ["help_request.list", "'fr'"]),
    ("group label without nl", _group_missing_nl, ["requests", "'nl'"]),
    ("unknown prerequisite", _unknown_prerequisite, ["help_request.list", "dossier.serch"]),
    ("prerequisite cycle", _prerequisite_cycle, ["cycle", "dossier.search", "help_request.print"]),
    ("prerequisite on itself", _self_prerequisite, ["dossier.search", "itself"]),
    ("prerequisite not selectable", _prerequisite_not_selectable, ["top.list", "help_request.add"]),
    ("prerequisite without reason", _prerequisite_without_reason, ["top.list", "reason"]),
    ("covered action that is selectable", _covers_selectable, ["help_request.print", "help_request.list"]),
    ("covered action unknown", _covers_unknown, ["help_request.print", "help_request.ghost"]),
    ("action covered by nothing", _uncovered_action, ["help_request.add", "covers"]),
    ("unknown group parent", _unknown_parent, ["requests", "folders"]),
    ("group parent cycle", _parent_cycle, ["files", "requests", "cycle"]),
    ("unknown function group", _unknown_function_group, ["top.list", "nowhere"]),
    ("bad function code", _bad_function_code, ["Top.List"]),
    ("bad group code", _bad_group_code, ["bad.group"]),
    ("order not an integer", _order_not_integer, ["top.list", "order"]),
    ("unknown key", _unknown_key, ["top.list", "require"]),
    ("template with unknown code", _template_unknown_code, ["worker", "dossier.delete"]),
    (
        "template missing a prerequisite",
        _template_missing_prerequisite,
        ["worker", "help_request.list", "dossier.search"],
    ),
    ("template with a covered action", _template_covered_action, ["worker", "help_request.add"]),
    ("template without a region", _template_missing_region, ["worker", "german_community"]),
    ("template name without nl", _template_name_without_nl, ["worker", "brussels", "'nl'"]),
    ("duplicate template", _template_duplicate, ["worker", "duplicate"]),
]


@pytest.mark.parametrize(("case", "mutate", "needles"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_catalog_is_refused(tmp_path: Path, case: str, mutate: Mutator, needles: list[str]) -> None:
    catalog, templates = _base()
    mutate(catalog, templates)
    with pytest.raises(CatalogError) as info:
        load_catalog(_write(tmp_path, catalog, templates))
    message = str(info.value)
    for needle in needles:
        assert needle in message, (case, message)
    which = "templates.yaml" if case.startswith(("template", "duplicate template")) else "catalog.yaml"
    assert which in message, message


@pytest.mark.parametrize(
    ("catalog_text", "needle"),
    [
        ("version: '1'\ngroups: [\n", "invalid YAML"),
        ("- just\n- a list\n", "mapping"),
        ("version: 2026.1\ngroups: []\nfunctions: []\n", "version"),
        ("version: '1'\ngroups: []\n", "'functions'"),
    ],
)
def test_malformed_files_are_refused(tmp_path: Path, catalog_text: str, needle: str) -> None:
    (tmp_path / "catalog.yaml").write_text(catalog_text, encoding="utf-8")
    (tmp_path / "templates.yaml").write_text("templates: []\n", encoding="utf-8")
    with pytest.raises(CatalogError, match=re.escape(needle)):
        load_catalog(tmp_path)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    catalog, _ = _base()
    (tmp_path / "catalog.yaml").write_text(yaml.safe_dump(catalog), encoding="utf-8")
    with pytest.raises(CatalogError, match=re.escape("templates.yaml")):
        load_catalog(tmp_path)


# -- the demo seed ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(SEED.read_text(encoding="utf-8"))
    return data


def _kbo_valid(number: str) -> bool:
    return len(number) == 10 and number.isdigit() and number[0] in "01" and int(number[8:]) == 97 - int(number[:8]) % 97


def test_demo_cpas(demo: dict[str, Any]) -> None:
    cpas = demo["cpas"]
    assert _kbo_valid(cpas["cpas"])
    assert cpas["name_fr"] == "CPAS de Herstappe" and cpas["name_nl"] == "OCMW Herstappe"
    assert cpas["region"] in REGIONS


def _effective(profiles: dict[str, dict[str, Any]], key: str, seen: tuple[str, ...] = ()) -> set[str]:
    assert key not in seen, f"inclusion cycle {seen}"
    profile = profiles[key]
    out = set(profile["functions"])
    for inc in profile.get("includes") or []:
        out |= _effective(profiles, inc, (*seen, key))
    return out


def test_demo_profiles(demo: dict[str, Any], catalog: Catalog) -> None:
    profiles = {p["key"]: p for p in demo["profiles"]}
    assert len(profiles) == len(demo["profiles"])
    assert "builtin" not in profiles
    descriptions = {p["description_fr"] for p in profiles.values()}
    assert {
        "Full",
        "RMC-1",
        "clignotants",
        "travailleur administratif + clignotants",
        "administratif medewerkster",
        "Directeur général / Secrétaire",
    } <= descriptions
    for key, profile in profiles.items():
        assert profile["description_fr"] or profile["description_nl"], key
        assert len(set(profile["functions"])) == len(profile["functions"]), key
        for code in profile["functions"]:
            assert code in catalog and catalog.functions[code].selectable, (key, code)
        for inc in profile.get("includes") or []:
            assert inc in profiles, (key, inc)
        missing = catalog.missing_prerequisites(_effective(profiles, key))
        if profile["description_fr"] == "administratif medewerkster":
            assert missing, "this profile demonstrates the missing-prerequisite deny"
            assert {pre for pres in missing.values() for pre in pres} == {"dossier.search"}
            assert profile["description_nl"] == "administratief medewerkster"
            assert any(c.startswith("help_request.") for c in profile["functions"])
        else:
            assert missing == {}, (key, missing)
    by_desc = {p["description_fr"]: p for p in profiles.values()}
    assert set(by_desc["RMC-1"]["functions"]) == {
        "forms.list",
        "mutation.national_register.view",
        "mutation.national_register.mark_read",
    }
    assert set(by_desc["clignotants"]["functions"]) == {"notification.alert.view", "notification.alert.reply"}
    combined = by_desc["travailleur administratif + clignotants"]
    assert by_desc["clignotants"]["key"] in combined["includes"]
    assert len(by_desc["Full"]["functions"]) >= 0.9 * len(catalog.selectable)


def test_demo_users(demo: dict[str, Any]) -> None:
    users = demo["users"]
    keys = {p["key"] for p in demo["profiles"]} | {"builtin"}
    assert 12 <= len(users) <= 14
    ids = [u["user"] for u in users]
    assert len(ids) == len(set(ids))
    assert all(isinstance(i, str) and len(i) == 11 and i.isdigit() for i in ids)
    assert all(u["lang"] in ("fr", "nl") for u in users)
    assert {u["lang"] for u in users} == {"fr", "nl"}
    for user in users:
        assert set(user["profiles"]) <= keys, user
    inactive = [u for u in users if not u["active"]]
    assert len(inactive) == 1 and inactive[0]["profiles"] == []
    assert sum(1 for u in users if u["active"] and not u["profiles"]) >= 2
    assert any(len(u["profiles"]) > 1 for u in users)
    assert any("builtin" in u["profiles"] for u in users)
    marie = next(u for u in users if u["name"] == "Marie LEBLANC")
    assert marie["user"] == "85073003328" and marie["profiles"] == ["full"]
