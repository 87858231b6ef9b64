"""The function catalog: the real policies/ files (blocks, lines and labels as the manual shows them,
the prerequisites it keeps and why, in French and Dutch), the loader's validation on broken catalogs,
and the demo seed's consistency with the catalog. What the manual's profiles may use is decided
through the engine in tests/test_manual_profiles.py."""

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
    top = [f.code for f in catalog.functions.values() if f.group is None and f.selectable]
    # the three lines above the blocks, and the PIIS checkbox after them (no block of its own)
    assert top == ["forms.list", "heating_allowance.export", "forms.pending_search", "piis.manage"]
    assert catalog.coverers("piis.view") == ("piis.manage",)
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


# The manual's profile screens, line for line: the open blocks with their lines (the annexes, the
# profile screen and the print of "Profil Full"), then the blocks it only shows collapsed. "&" is the
# annex's broken "…".
D, DD, HR = "Dossiers", ("Dossiers", "Dossiers de dette"), ("Dossiers", "Demandes d'aide")
MANUAL_LINES: dict[tuple[str, ...], list[str]] = {
    (): [
        "Listing des formulaires DIS, formulaires d'exonération, formulaires primes d'installation, "
        "formulaires loi 65 du CPAS",
        "Exportation des allocations de chauffage pour une période",
        "Recherche des dossiers pour lesquels il reste des formulaires à envoyer",
        "Projets individualisés d'intégration sociale",
    ],
    ("Mutations",): [
        "Consultation des mutations Registre National",
        "Marquage d'une mutation Registre National comme lue",
        "Consultation mutations Fichier Personnel",
        "Marquage d'une mutation Fichier Personnel comme lue",
        "Consultation des mutations Registre Attente",
        "Marquage d'une mutation Registre Attente comme lue",
        "Consultation des mutations Activités Indépendants",
        "Marquage d'une mutation Activités Indépendants comme lue",
        "Consultation des mutations Permis Séjour",
        "Marquage d'une mutation Permis Séjour comme lue",
        "Consultation des mutations MediPrima",
        "Marquage d'une mutation MediPrima comme lue",
        "Consultation des mutations du Cadastre des Pensions",
        "Marquage d'une mutation du Cadastre des Pensions comme lue",
    ],
    ("Notifications SPP IS",): ["Etats mensuels"],
    ("Notifications SPP IS", "Alertes"): ["Consultation des alertes", "Réponse aux alertes"],
    ("Notifications SPP IS", "Blocages de formulaires"): ["Consultation des blocages de formulaires"],
    (D,): [
        "Listing des dossiers du CPAS",
        "Recherche d'un dossier",
        "Création d'un dossier",
        "Consultation des formulaires DIS, formulaires d'exonération, formulaires primes d'installation, "
        "formulaires loi 65",
        "Envoi d'un formulaire de prime d'installation",
        "Consultation des attestations A036 envoyées",
        "Envoi d'une attestation A036",
        "Création d'une lettre de notification pour une audition",
    ],
    DD: [
        "Listing des dossiers de dette",
        "Consultation d'un dossier de dette",
        "Création d'un dossier de dette",
        "Modification d'un dossier de dette",
        "Ajout/modification/suppression d'un remboursement",
        "Clôture/réouverture d'un dossier de dette",
    ],
    (*DD, "Enquête"): [],
    (*DD, "Enquête", "Ménage"): [
        "Mise-à-jour de la composition du ménage officielle et des données légales des membres du ménage de fait",
        "Visualisation de la composition du ménage officielle",
        "Ajout de membres au ménage de fait",
        "Suppression de membres du ménage de fait",
        "Visualisation de la composition du ménage de fait",
    ],
    (*DD, "Enquête", "Informations générales"): [
        "Visualisation des informations générales d'une personne",
        "Modification de la relation d'une personne avec le bénéficiaire",
    ],
    (*DD, "Enquête", "Adresses"): [
        "Visualisation des adresses officielles d'une personne",
        "Modification de l'adresse effective du bénéficiaire",
        "Visualisation de l'adresse effective d'une personne",
    ],
    (*DD, "Enquête", "Flux d'enquête"): [
        "Consultation des contrats d'emploi",
        "Consultation du cadastre des pensions",
        "Consultation des activités d'indépendant",
    ],
    (*DD, "Enquête", "Consultation des données de la Direction Générale Personnes Handicapées"): [
        "Consultation des données hors paiements",
        "Consultation des paiements",
        "Consultation des données TaxiAS (revenus)",
        "Consultation des biens immobiliers",
    ],
    (*DD, "Intégrations"): [
        "Consultation des Intégrations",
        "Intégration/désintégration d'une personne en code 31",
    ],
    (D, "Dossiers de récupération"): [
        "Listing des dossiers de récupération",
        "Ajout d'un dossier de récupération",
        "Modification d'un dossier de récupération",
        "Clôture d'un dossier de récupération",
        "Visualisation d'un dossier de récupération",
        "Modification du formulaire A",
        "Visualisation du formulaire A",
        "Visualisation de la composition de ménage",
        "Ajout d'une récupération (formulaire D/F)",
        "Modification d'une récupération (formulaire F)",
        "Suppression d'une récupération (formulaire D)",
        "Visualisation d'une récupération (formulaire D/F)",
        "Création d'une lettre de notification",
    ],
    HR: [
        "Listing des demandes d'aide",
        "Impression d'une demande d'aide",
        "Ajout d'une demande d'aide",
        "Modification d'une demande d'aide",
        "Soumission au conseil d'une demande d'aide",
        "Complétude d'une demande d'aide",
        "Duplication d'une demande d'aide",
        "Clôture d'une demande d'aide",
        "Révision d'une demande d'aide",
    ],
    (*HR, "Enquête sociale"): [],
    (*HR, "Enquête sociale", "Ménage / liste des débiteurs alimentaires"): [
        "Mise-à-jour de la composition du ménage officielle et des données légales des membres du ménage de fait",
        "Visualisation de la composition du ménage officielle",
        "Ajout de membres / débiteurs au ménage de fait / liste des débiteurs",
        "Suppression de membres / débiteurs du ménage effectif / liste des débiteurs",
        "Visualisation de la composition du ménage de fait / liste des débiteurs alimentaires",
    ],
    (*HR, "Enquête sociale", "Informations générales"): [
        "Visualisation des informations générales d'une personne (données légales, relation avec le bénéficiaire)",
        "Modification de la relation d'une personne avec le bénéficiaire",
        "Visualisation des informations du bénéficiaire (catégorie, situation,&) ou du partenaire "
        "(nombre d'enfants à charge,&)",
        "Modification des informations du bénéficiaire (catégorie, situation,&) ou du partenaire "
        "(nombre d'enfants à charge,&)",
    ],
}
MANUAL_COLLAPSED: set[tuple[str, ...]] = {
    (*DD, "Section de réouverture"),
    (*HR, "Données générales"),
    (*HR, "Intégrations"),
    (*HR, "Enquête sociale", "Adresses"),
    (*HR, "Enquête sociale", "Ressources"),
    (*HR, "Enquête sociale", "Dépenses"),
    (*HR, "Enquête sociale", "Dossier d'intégration"),
    (*HR, "Enquête sociale", "Flux d'enquête"),
    (*HR, "Décisions DIS"),
    ("Rapports Sociaux Electroniques",),
    ("Gestion des documents",),
    ("Collecte de statistiques",),
}


def _path(catalog: Catalog, group: str | None) -> tuple[str, ...]:
    path: list[str] = []
    while group is not None:
        path.insert(0, catalog.groups[group].label.fr)
        group = catalog.groups[group].parent
    return tuple(path)


def test_blocks_and_lines_are_the_manuals(catalog: Catalog) -> None:
    """What is marked as in the manual is exactly what its profile screens show, with its wording."""
    shown = {(path, line.replace("&", "…")) for path, lines in MANUAL_LINES.items() for line in lines}
    in_manual = {(_path(catalog, f.group), f.label.fr) for f in catalog.functions.values() if f.in_manual}
    assert in_manual == shown
    blocks = {_path(catalog, code): g for code, g in catalog.groups.items() if g.in_manual}
    assert set(blocks) == (set(MANUAL_LINES) - {()}) | MANUAL_COLLAPSED
    assert {path for path, g in blocks.items() if g.implied} == MANUAL_COLLAPSED
    # every entry the manual does not show says where it comes from
    for code, group in catalog.groups.items():
        if not group.in_manual or group.implied:
            assert group.note, code
    # its blocks never sit under a block the manual does not have
    for code, group in catalog.groups.items():
        if group.in_manual and group.parent is not None:
            assert catalog.groups[group.parent].in_manual, code


def test_labels_are_unambiguous_and_current(catalog: Catalog) -> None:
    # one French label per line within a block and its sub-blocks (the manual repeats the debt
    # dossier's lines in the Enquête sociale, never inside one block)
    for top in ["help_requests", "debt_dossiers", "recovery_dossiers", "mutations", "notifications"]:
        labels = [catalog.functions[c].label.fr for c in catalog.functions if _under(catalog, c, top)]
        assert len(labels) == len(set(labels)), top
    assert catalog.functions["social_inquiry.flow.income"].label.fr == "Consultation des revenus"
    assert catalog.functions["heating_allowance.income.view"].label.fr == "Consultation revenu"
    assert catalog.functions["social_inquiry.flow.foreign_activities"].label.fr == (
        "Consultation des activités d'indépendant")
    texts = [t for item in [*catalog.groups.values(), *catalog.functions.values()]
             for t in (item.label.fr, item.label.nl, item.label.de or "")]
    texts += [t for fn in catalog.functions.values() for pre in fn.requires
              for t in (pre.reason.fr, pre.reason.nl, pre.reason.de or "")]
    for outdated in ["RVV", "aarschuwing", "buiten betalingen", "Heropeningssectie", "Kostenbeteiligung",
                     "étranger", "Vreemdeling"]:
        assert not [t for t in texts if outdated.lower() in t.lower()], outdated
    bim = catalog.functions["heating_allowance.bim_status.view"].label
    assert "verhoogde tegemoetkoming" in bim.nl and bim.de and "erhöhten Kostenerstattung" in bim.de
    assert catalog.groups["notification_alerts"].label.nl == "Knipperlichten"


def test_every_prerequisite_exists_and_is_selectable(catalog: Catalog) -> None:
    count = 0
    for fn in catalog.functions.values():
        for pre in fn.requires:
            count += 1
            assert pre.code in catalog, (fn.code, pre.code)
            assert catalog.functions[pre.code].selectable, (fn.code, pre.code)
            assert pre.code != fn.code
            assert pre.reason.fr.strip() and pre.reason.nl.strip(), (fn.code, pre.code)
            assert pre.reason.fr != pre.reason.nl, (fn.code, pre.code)
    assert 100 < count < 191  # 191 before issue 10, most of them not from the manual


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


def _under(catalog: Catalog, code: str, group: str) -> bool:
    parent = catalog.functions[code].group
    while parent is not None and parent != group:
        parent = catalog.groups[parent].parent
    return parent == group


def test_only_two_kinds_of_prerequisites(catalog: Catalog) -> None:
    """Kept: the manual's rule (every function under Demandes d'aide needs Recherche d'un dossier) and,
    inside one (sub-)block, an action done on the screen a consultation opens. Nothing else."""
    for fn in catalog.functions.values():
        for pre in fn.requires:
            if pre.code == "dossier.search":
                assert _under(catalog, fn.code, "help_requests"), fn.code
            else:
                target = catalog.functions[pre.code]
                # a sub-block never needs a function of its parent block (or of another block), so
                # that "Sélectionner tout" on any block gives a usable profile
                assert target.group == fn.group, (fn.code, pre.code)
                assert target.code.rsplit(".", 1)[-1] in {"view", "view_official", "view_actual"}, (fn.code, pre.code)


def test_prerequisites_kept_and_removed(catalog: Catalog) -> None:
    # the manual's rule, covered actions and sub-blocks included
    assert "dossier.search" in catalog.prerequisites("social_inquiry.flow.national_register")
    assert "dossier.search" in catalog.prerequisites("help_request.close")
    # the same screen: marking as read, replying, modifying what is displayed
    assert "notification.alert.view" in catalog.prerequisites("notification.alert.reply")
    for code in catalog.functions:
        if code.endswith(".mark_read"):
            assert code.replace(".mark_read", ".view") in catalog.prerequisites(code), code
    assert catalog.prerequisites("recovery.claim.update") == {"recovery.claim.view"}
    assert catalog.prerequisites("social_inquiry.address.update_actual") == {
        "social_inquiry.address.view_actual", "dossier.search"}
    # removed: what the home page or an own listing reaches directly, sending forms, parent blocks
    for code in [
        "dossier.create", "dossier.forms.view", "dossier.a036.view", "dossier.a036.send",
        "dossier.hearing_letter.create", "dossier.installation_premium.send",
        "document.add", "document.manage", "document.ebox.send",
        "debt_dossier.view", "debt_dossier.create", "debt_dossier.close_reopen", "debt_dossier.repayment.manage",
        "debt_dossier.household.view_official", "debt_dossier.flow.pension_register",
        "recovery.dossier.view", "recovery.dossier.create", "recovery.claim.create", "recovery.form_a.view",
        "rse.view", "rse.create", "rse.send", "rse.request", "piis.manage", "piis.view",
        "dossier.search", "mutation.national_register.view",
    ]:
        assert catalog.prerequisites(code) == frozenset(), code
    # under Demandes d'aide, nothing but the manual's rule where the screens are separate menu entries
    for code in ["care_decision.manage", "heating_allowance.cancel", "heating_allowance.form.send"]:
        assert catalog.prerequisites(code) == {"dossier.search"}, code
    for code in ["decision.dis.form.send", "decision.dis.exemption_form.send", "heating_allowance.form.send"]:
        assert "dossier.forms.view" not in catalog.prerequisites(code), code
    for code in catalog.functions:
        assert "help_request.list" not in catalog.prerequisites(code), code
    assert catalog.prerequisites("recovery.dossier.update") == {"recovery.dossier.view"}
    assert catalog.prerequisites("debt_dossier.update") == {"debt_dossier.view"}


def test_prerequisite_reasons_in_each_language(catalog: Catalog) -> None:
    reason = catalog.prerequisite_reason("help_request.list", "dossier.search")
    assert "Recherche d'un dossier" in reason.fr
    assert "Opzoeken van een dossier" in reason.nl
    assert reason.get("de") == reason.de and reason.de and "Suche nach einer Akte" in reason.de
    assert Label(fr="a", nl="b").get("de") == "a"  # a reason without German falls back to French
    # a covered action's reason, and the nearest link of a chain
    assert catalog.prerequisite_reason("help_request.print", "dossier.search") == reason
    assert catalog.prerequisite_reason("social_inquiry.resources.update", "dossier.search") == reason
    edit = catalog.prerequisite_reason("social_inquiry.resources.update", "social_inquiry.resources.view")
    assert edit != reason and "visualisation" in edit.fr and "weergavescherm" in edit.nl
    assert catalog.prerequisite_reason("debt_dossier.create", "debt_dossier.view").fr.startswith(
        "Un dossier de dette se modifie")  # through the covered modification
    with pytest.raises(KeyError):
        catalog.prerequisite_reason("dossier.create", "dossier.search")
    with pytest.raises(KeyError):
        catalog.prerequisite_reason("no.such", "dossier.search")


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
        "cpas_online",
        "notifications",
        "dossiers",
        "rse",
        "documents",
        "statistics",
    ]
    by_code = {n["code"]: n for n in _walk(tree)}
    assert by_code["dossier.search"]["label"] == "Opzoeken van een dossier"
    assert by_code["help_request.add"]["selectable"] is False
    assert by_code["help_request.list"]["requires"] == [{
        "code": "dossier.search",
        "reason": catalog.prerequisite_reason("help_request.list", "dossier.search").nl,
    }]
    assert set(by_code["dossiers"]) == {"type", "code", "label", "implied", "in_manual", "children"}
    assert set(by_code["help_request.print"]) == {
        "type", "code", "label", "selectable", "covers", "requires", "in_manual"}
    assert by_code["dossiers"]["in_manual"] is True and by_code["cpas_online"]["in_manual"] is False
    assert by_code["dossier.search"]["in_manual"] is True
    assert by_code["rse.send"]["in_manual"] is False
    fr = {n["code"]: n for n in _walk(catalog.tree("fr"))}
    de = {n["code"]: n for n in _walk(catalog.tree("de"))}
    reason = catalog.prerequisite_reason("help_request.list", "dossier.search")
    assert fr["help_request.list"]["requires"][0]["reason"] == reason.fr
    assert de["help_request.list"]["requires"][0]["reason"] == reason.de


def test_group_functions(catalog: Catalog) -> None:
    mutations = catalog.group_functions("mutations", recursive=False)
    assert len(mutations) == 14
    assert mutations[0] == "mutation.national_register.view"
    assert "cpas_online.request.view" not in catalog.group_functions("mutations")  # a block of its own
    assert catalog.group_functions("cpas_online") == ("cpas_online.request.view",)
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
        "help_request.print": ("dossier.search",),
    }
    assert list(missing) == ["notification.alert.reply", "help_request.print"]  # display order
    # transitive, and including what the covered actions need
    assert catalog.missing_prerequisites(["decision.dis.encode"]) == {
        "decision.dis.encode": ("decision.dis.view", "dossier.search")
    }
    assert catalog.missing_prerequisites(["recovery.dossier.create"]) == {
        "recovery.dossier.create": ("recovery.dossier.view",)  # its covered modification and closing
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


def _why(text: str) -> dict[str, str]:
    return {"fr": f"parce que {text}", "nl": f"omdat {text}"}


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
                "requires": [{"code": "dossier.search", "reason": _why("through the dossier")}],
            },
            {
                "code": "help_request.print",
                "group": "requests",
                "order": 20,
                "label": _label("Impression"),
                "covers": ["help_request.add"],
                "requires": [{"code": "help_request.list", "reason": {**_why("from the list"), "de": "weil"}}],
                "in_manual": False,
            },
            {
                "code": "help_request.add",
                "group": "requests",
                "order": 30,
                "label": _label("Ajout"),
                "selectable": False,
                "requires": [{"code": "dossier.search", "reason": _why("through the dossier")}],
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
    assert cat.groups["requests"].in_manual is True
    assert cat.functions["help_request.print"].in_manual is False
    assert cat.functions["help_request.list"].in_manual is True
    assert cat.prerequisite_reason("help_request.list", "dossier.search") == Label(
        fr="parce que through the dossier", nl="omdat through the dossier")
    assert cat.prerequisite_reason("help_request.print", "help_request.list").get("de") == "weil"
    # a chain: help_request.print needs dossier.search through help_request.list (and its covered action)
    assert cat.prerequisite_reason("help_request.print", "dossier.search").nl == "omdat through the dossier"
    nodes = {n["code"]: n for n in _walk(cat.tree("nl"))}
    assert nodes["help_request.print"]["requires"] == [{"code": "help_request.list", "reason": "omdat from the list"}]
    assert nodes["help_request.print"]["in_manual"] is False


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
    _fn(c, "help_request.list")["requires"].append({"code": "dossier.serch", "reason": _why("typo")})


def _prerequisite_cycle(c: dict[str, Any], t: dict[str, Any]) -> None:
    _fn(c, "dossier.search")["requires"] = [{"code": "help_request.print", "reason": _why("loop")}]


def _self_prerequisite(c: dict[str, Any], t: dict[str, Any]) -> None:
    _fn(c, "dossier.search")["requires"] = [{"code": "dossier.search", "reason": _why("self")}]


def _prerequisite_not_selectable(c: dict[str, Any], t: dict[str, Any]) -> None:
    _fn(c, "top.list")["requires"] = [{"code": "help_request.add", "reason": _why("covered action")}]


def _prerequisite_without_reason(c: dict[str, Any], t: dict[str, Any]) -> None:
    _fn(c, "top.list")["requires"] = [{"code": "dossier.search"}]


def _reason_as_one_string(c: dict[str, Any], t: dict[str, Any]) -> None:
    _fn(c, "top.list")["requires"] = [{"code": "dossier.search", "reason": "one English sentence"}]


def _reason_without_nl(c: dict[str, Any], t: dict[str, Any]) -> None:
    _fn(c, "top.list")["requires"] = [{"code": "dossier.search", "reason": {"fr": "parce que"}}]


def _reason_with_blank_fr(c: dict[str, Any], t: dict[str, Any]) -> None:
    _fn(c, "top.list")["requires"] = [{"code": "dossier.search", "reason": {"fr": " ", "nl": "omdat"}}]


def _reason_in_english(c: dict[str, Any], t: dict[str, Any]) -> None:
    _fn(c, "top.list")["requires"] = [{"code": "dossier.search", "reason": {**_why("x"), "en": "because"}}]


def _in_manual_not_boolean(c: dict[str, Any], t: dict[str, Any]) -> None:
    _fn(c, "top.list")["in_manual"] = "no"


def _group_implied_and_not_in_manual(c: dict[str, Any], t: dict[str, Any]) -> None:
    c["groups"][1].update({"implied": True, "in_manual": False})


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
    ("reason as one string", _reason_as_one_string, ["top.list", "dossier.search", "reason", "fr", "nl"]),
    ("reason without nl", _reason_without_nl, ["top.list", "dossier.search", "reason", "'nl'"]),
    ("reason with blank fr", _reason_with_blank_fr, ["top.list", "dossier.search", "reason", "'fr'"]),
    ("reason in an unknown language", _reason_in_english, ["top.list", "reason", "'en'"]),
    ("in_manual not a boolean", _in_manual_not_boolean, ["top.list", "in_manual"]),
    ("group implied and not in the manual", _group_implied_and_not_in_manual, ["requests", "implied", "in_manual"]),
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
    # "Gestion du profil RMC-1" and its print: the forms listing only (the mutations are unticked)
    assert by_desc["RMC-1"]["functions"] == ["forms.list"]
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
