"""The manual's flows through the forms: each changes the database through the use cases and writes
the audit trail; each error becomes a message on the page, never a 500."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from authz_service.models import AuditEntry
from authz_service.store import Store

from .conftest import OTHER_CPAS, Web, page

MARIE = "85073003328"
LUC = "75081815365"  # no profile
JULIE = "89013122245"  # no profile
MICHEL = "77070619530"  # inactive


def audits(service: Any, cpas: str, action: str) -> list[AuditEntry]:
    def run(store: Store) -> list[AuditEntry]:
        newest_first = store.audit_page(cpas, page=1, per_page=500)[0]
        return [e for e in reversed(newest_first) if e.action == action]  # oldest first

    return service.read(run)


def checked(html: str) -> set[str]:
    """Function codes whose checkbox is ticked in the profile form."""
    found = set()
    for tag in re.findall(r"<input[^>]*name=\"functions\"[^>]*>", html, flags=re.S):
        if re.search(r"\schecked[\s>]", tag):
            found.add(re.search(r'value="([^"]+)"', tag).group(1))  # type: ignore[union-attr]
    return found


def profile_by_description(service: Any, cpas: str, description: str) -> Any:
    return service.read(lambda s: next((p for p in s.profiles(cpas) if description in
                                        (p.description_fr, p.description_nl)), None))


# -- create / manage --------------------------------------------------------------------------------------
def test_create_profile_saves_and_redirects(manager: Web, demo: dict[str, Any], service: Any, lang: str) -> None:
    cpas = demo["cpas"]
    manager.get(f"/ui/cpas/{cpas}/profiles/new")
    response = manager.post(f"/ui/cpas/{cpas}/profiles/new", {
        "description_fr": "  Accueil   social ", "description_nl": "Sociaal onthaal",
        "functions": ["dossier.search", "dossier.list", "help_request.list"], "action": "save", "confirm": "1",
    })
    assert response.status_code == 303 and response.headers["Location"] == f"/ui/cpas/{cpas}/"
    profile = profile_by_description(service, cpas, "Accueil social")
    assert profile is not None and profile.description_nl == "Sociaal onthaal"
    codes = service.read(lambda s: s.profile_functions(cpas, profile.id))
    assert codes == ["dossier.list", "dossier.search", "help_request.list"]
    entry = audits(service, cpas, "profile.create")[-1]
    actor = "gestionnaire" if lang == "fr" else "beheerder"
    assert entry.actor == f"admin:{actor}" and entry.after["functions"] == codes
    home = manager.text(f"/ui/cpas/{cpas}/")
    assert ("Le profil « Accueil social » a été créé." if lang == "fr" else
            "Het profiel „Sociaal onthaal” werd aangemaakt.") in home
    assert service.policy(cpas).description(profile.id, "fr") == "Accueil social"  # the engine knows it


def test_description_is_required(fr_manager: Web, demo: dict[str, Any], service: Any) -> None:
    cpas = demo["cpas"]
    response = fr_manager.post(f"/ui/cpas/{cpas}/profiles/new", {"functions": "dossier.search"})
    assert response.status_code == 400
    html = page(response)
    assert "Donnez une description en français ou en néerlandais (ou les deux)." in html
    assert "dossier.search" in checked(html)  # the choices are kept
    too_long = fr_manager.post(f"/ui/cpas/{cpas}/profiles/new", {"description_fr": "x" * 201})
    assert too_long.status_code == 400 and "ne peut pas dépasser 200 caractères" in page(too_long)


def test_duplicate_description_is_a_message(fr_manager: Web, demo: dict[str, Any]) -> None:
    response = fr_manager.post(f"/ui/cpas/{demo['cpas']}/profiles/new",
                               {"description_fr": "full", "functions": "dossier.search"})
    assert response.status_code == 409
    assert "Un autre profil de ce CPAS porte déjà la description « full »." in page(response)


def test_unknown_function_is_a_message(fr_manager: Web, demo: dict[str, Any]) -> None:
    response = fr_manager.post(f"/ui/cpas/{demo['cpas']}/profiles/new",
                               {"description_fr": "Bizarre", "functions": ["dossier.search", "no.such"]})
    assert response.status_code == 400 and "Fonction(s) inconnue(s) : no.such." in page(response)
    covered = fr_manager.post(f"/ui/cpas/{demo['cpas']}/profiles/new",
                              {"description_fr": "Bizarre", "functions": ["recovery.dossier.update"]})
    assert covered.status_code == 400 and "case à cocher propre" in page(covered)


@pytest.mark.parametrize("template", ["director_general", "administrative_agent", "social_worker",
                                      "financial_director"])
def test_predefined_profile_fills_the_form_without_js(fr_manager: Web, demo: dict[str, Any], service: Any,
                                                      template: str) -> None:
    response = fr_manager.post(f"/ui/cpas/{demo['cpas']}/profiles/new", {
        "description_fr": "Mon profil", "functions": "mutation.mediprima.view", "action": f"template:{template}"})
    assert response.status_code == 200
    html = page(response)
    assert checked(html) == set(service.catalog.template(template).functions)
    assert 'value="Mon profil"' in html
    assert profile_by_description(service, demo["cpas"], "Mon profil") is None  # nothing saved


def test_template_buttons_use_the_regional_names(web: Web, accounts: dict[str, str], demo: dict[str, Any]) -> None:
    web.login("multi")
    flanders = web.text(f"/ui/cpas/{demo['cpas']}/profiles/new")  # Herstappe: region flanders
    wallonia = web.text(f"/ui/cpas/{OTHER_CPAS}/profiles/new")
    assert "Directeur financier" in wallonia
    assert ">Directeur général<" in flanders
    web.post("/ui/lang", {"lang": "nl"})
    assert "Financieel directeur" in web.text(f"/ui/cpas/{OTHER_CPAS}/profiles/new")


def test_select_buttons_without_js(fr_manager: Web, demo: dict[str, Any], service: Any) -> None:
    url = f"/ui/cpas/{demo['cpas']}/profiles/new"
    catalog = service.catalog
    everything = page(fr_manager.post(url, {"description_fr": "T", "action": "all"}))
    assert checked(everything) == set(catalog.selectable)
    nothing = page(fr_manager.post(url, {"functions": list(catalog.selectable), "action": "none"}))
    assert checked(nothing) == set()
    mutations = set(catalog.group_functions("mutations"))
    block = page(fr_manager.post(url, {"functions": "dossier.search", "action": "select:mutations"}))
    assert checked(block) == mutations | {"dossier.search"}
    unblock = page(fr_manager.post(url, {"functions": [*mutations, "dossier.search"], "action": "deselect:mutations"}))
    assert checked(unblock) == {"dossier.search"}
    assert fr_manager.post(url, {"action": "select:nope"}).status_code == 400
    assert fr_manager.post(url, {"action": "explode"}).status_code == 400


def test_block_checkbox_without_js(fr_manager: Web, demo: dict[str, Any], service: Any) -> None:
    """A block checkbox ticked since the page was drawn selects the block; cleared, it empties it;
    unchanged, the function checkboxes decide."""
    url = f"/ui/cpas/{demo['cpas']}/profiles/new"
    catalog = service.catalog
    mutations = list(catalog.group_functions("mutations"))
    ticked = page(fr_manager.post(url, {"groups": "mutations", "action": "add_prerequisites"}))
    assert checked(ticked) == set(mutations)
    assert re.search(r'name="groups_was" value="mutations"', ticked)
    cleared = page(fr_manager.post(url, {"functions": mutations, "groups_was": "mutations",
                                         "action": "add_prerequisites"}))
    assert checked(cleared) == set()
    one_off = page(fr_manager.post(url, {"functions": mutations[1:], "groups": "mutations",
                                         "groups_was": "mutations", "action": "add_prerequisites"}))
    assert checked(one_off) == set(mutations[1:]) | {mutations[0]}  # mark_read needs view: added back


def test_prerequisite_warning_and_one_click_fix(fr_manager: Web, demo: dict[str, Any], service: Any) -> None:
    cpas = demo["cpas"]
    url = f"/ui/cpas/{cpas}/profiles/new"
    form = {"description_fr": "Aide", "functions": ["help_request.list", "dossier.create"], "action": "save"}
    warned = fr_manager.post(url, form)
    assert warned.status_code == 200
    html = page(warned)
    assert "Certaines fonctions sont nécessaires pour avoir accès à d'autres fonctions." in html
    assert "Listing des demandes d'aide" in html and "nécessite Recherche d'un dossier" in html
    assert "Ajouter les fonctions nécessaires et enregistrer" in html
    assert profile_by_description(service, cpas, "Aide") is None
    fixed = fr_manager.post(url, {**form, "action": "fix_and_save", "confirm": "1"})
    assert fixed.status_code == 303
    profile = profile_by_description(service, cpas, "Aide")
    assert set(service.read(lambda s: s.profile_functions(cpas, profile.id))) == {
        "help_request.list", "dossier.create", "dossier.search"}


def test_prerequisite_add_without_saving_and_save_anyway(fr_manager: Web, demo: dict[str, Any], service: Any) -> None:
    cpas = demo["cpas"]
    url = f"/ui/cpas/{cpas}/profiles/new"
    added = page(fr_manager.post(url, {"functions": "help_request.print", "action": "add_prerequisites"}))
    assert checked(added) == {"help_request.print", "dossier.search"}
    anyway = fr_manager.post(url, {"description_fr": "Incomplet", "functions": "help_request.print",
                                   "action": "save_anyway", "confirm": "1"})
    assert anyway.status_code == 303
    profile = profile_by_description(service, cpas, "Incomplet")
    assert service.read(lambda s: s.profile_functions(cpas, profile.id)) == ["help_request.print"]


def test_manage_profile_changes_it(manager: Web, demo: dict[str, Any], service: Any, lang: str) -> None:
    cpas, pid = demo["cpas"], demo["profiles"]["rmc1"]
    html = manager.text(f"/ui/cpas/{cpas}/profiles/{pid}")
    version = re.search(r'name="version" type="hidden" value="(\d+)"', html).group(1)  # type: ignore[union-attr]
    before = set(service.read(lambda s: s.profile_functions(cpas, pid)))
    assert checked(html) == before
    response = manager.post(f"/ui/cpas/{cpas}/profiles/{pid}", {
        "description_fr": "RMC-2", "description_nl": "RMC-2", "version": version,
        "functions": [*before, "dossier.search"], "includes": demo["profiles"]["clignotants"], "action": "save",
        "confirm": "1"})
    assert response.status_code == 303
    assert set(service.read(lambda s: s.profile_functions(cpas, pid))) == before | {"dossier.search"}
    assert service.read(lambda s: s.profile_includes(cpas, pid)) == [demo["profiles"]["clignotants"]]
    entry = audits(service, cpas, "profile.update")[-1]
    assert entry.before["description_fr"] == "RMC-1" and entry.after["description_fr"] == "RMC-2"
    assert "RMC-2" in manager.text(f"/ui/cpas/{cpas}/")


def test_stale_edit_keeps_the_users_choices(fr_manager: Web, demo: dict[str, Any], service: Any) -> None:
    cpas, pid = demo["cpas"], demo["profiles"]["rmc1"]
    html = fr_manager.text(f"/ui/cpas/{cpas}/profiles/{pid}")
    version = int(re.search(r'name="version" type="hidden" value="(\d+)"', html).group(1))  # type: ignore[union-attr]
    with service.admin("someone-else") as admin:  # a colleague saves meanwhile
        admin.update_profile(cpas, pid, version=version, description_fr="RMC (collègue)", description_nl=None,
                             functions=["dossier.list"], includes=None)
    mine = {"description_fr": "RMC (moi)", "description_nl": "RMC mij", "version": str(version),
            "functions": ["dossier.search", "mutation.mediprima.view"], "action": "save"}
    response = fr_manager.post(f"/ui/cpas/{cpas}/profiles/{pid}", mine)
    assert response.status_code == 409
    stale = page(response)
    assert "Quelqu'un d'autre a enregistré ce profil pendant que vous le modifiiez." in stale
    assert 'value="RMC (moi)"' in stale and 'value="RMC mij"' in stale
    assert checked(stale) == {"dossier.search", "mutation.mediprima.view"}
    assert service.read(lambda s: s.get_profile(cpas, pid).description_fr) == "RMC (collègue)"
    new_version = re.search(r'name="version" type="hidden" value="(\d+)"', stale).group(1)  # type: ignore[union-attr]
    assert int(new_version) == version + 1
    again = fr_manager.post(f"/ui/cpas/{cpas}/profiles/{pid}", {**mine, "version": new_version, "confirm": "1"})
    assert again.status_code == 303
    assert service.read(lambda s: s.get_profile(cpas, pid).description_fr) == "RMC (moi)"


def test_builtin_profile_only_descriptions(fr_manager: Web, demo: dict[str, Any], service: Any) -> None:
    cpas, pid = demo["cpas"], demo["profiles"]["builtin"]
    html = fr_manager.text(f"/ui/cpas/{cpas}/profiles/{pid}")
    assert 'name="functions" value="dossier.search" data-function="dossier.search"' in html
    assert html.count("disabled") >= len(service.catalog.selectable)
    version = re.search(r'name="version" type="hidden" value="(\d+)"', html).group(1)  # type: ignore[union-attr]
    response = fr_manager.post(f"/ui/cpas/{cpas}/profiles/{pid}", {
        "description_fr": "Tous les accès (CPAS)", "description_nl": "Alle toegangen", "version": version,
        "functions": "dossier.search", "action": "save", "confirm": "1"})
    assert response.status_code == 303
    assert len(service.read(lambda s: s.profile_functions(cpas, pid))) == len(service.catalog.selectable)
    refused = fr_manager.post(f"/ui/cpas/{cpas}/profiles/{pid}/delete", {"confirm": "1"})
    assert refused.status_code == 303
    assert "ne peut pas être supprimé" in fr_manager.text(f"/ui/cpas/{cpas}/")


def test_inclusion_cycle_is_a_message(fr_manager: Web, demo: dict[str, Any], service: Any) -> None:
    cpas = demo["cpas"]
    admin_cl, cl = demo["profiles"]["admin_clignotants"], demo["profiles"]["clignotants"]
    html = fr_manager.text(f"/ui/cpas/{cpas}/profiles/{cl}")
    version = re.search(r'name="version" type="hidden" value="(\d+)"', html).group(1)  # type: ignore[union-attr]
    includes = service.read(lambda s: s.profile_includes(cpas, admin_cl))
    if cl not in includes:
        with service.admin("test") as admin:
            admin.update_profile(cpas, admin_cl, version=service.read(lambda s: s.get_profile(cpas, admin_cl).version),
                                 description_fr="travailleur administratif + clignotants", description_nl=None,
                                 functions=None, includes=[*includes, cl])
    response = fr_manager.post(f"/ui/cpas/{cpas}/profiles/{cl}", {
        "description_fr": "clignotants", "version": version, "functions": checked(html), "includes": admin_cl})
    assert response.status_code == 400
    assert "Un profil ne peut pas s'inclure lui-même" in page(response)


# -- delete ------------------------------------------------------------------------------------------------
def test_delete_assigned_profile_is_refused_with_the_manuals_message(manager: Web, demo: dict[str, Any],
                                                                      service: Any, lang: str) -> None:
    cpas, pid = demo["cpas"], demo["profiles"]["full"]
    confirm = manager.text(f"/ui/cpas/{cpas}/profiles/{pid}/delete")
    assert ("Voulez-vous vraiment supprimer ce profil?" if lang == "fr" else
            "Wilt u dit profiel echt verwijderen?") in confirm
    response = manager.post(f"/ui/cpas/{cpas}/profiles/{pid}/delete", {"confirm": "1"})
    assert response.status_code == 303
    home = manager.text(response.headers["Location"])
    assert ("Le profil que vous voulez supprimer est affecté à un ou plusieurs utilisateurs. "
            "Veuillez d'abord le désaffecter." if lang == "fr" else
            "Het profiel dat u wilt verwijderen is aan een of meer gebruikers toegekend. "
            "Gelieve het eerst in te trekken.") in home
    assert service.read(lambda s: s.get_profile(cpas, pid)) is not None
    assert not audits(service, cpas, "profile.delete")


def test_delete_unassigned_profile(fr_manager: Web, demo: dict[str, Any], service: Any) -> None:
    cpas = demo["cpas"]
    with service.admin("test") as admin:
        pid = admin.create_profile(cpas, description_fr="Jetable", description_nl=None, functions=["dossier.list"]).id
    fr_manager.text(f"/ui/cpas/{cpas}/profiles/{pid}/delete")
    response = fr_manager.post(f"/ui/cpas/{cpas}/profiles/{pid}/delete", {"confirm": "1"})
    assert response.status_code == 303
    assert "Le profil « Jetable » a été supprimé." in fr_manager.text(f"/ui/cpas/{cpas}/")
    assert service.read(lambda s: s.get_profile(cpas, pid)) is None
    assert audits(service, cpas, "profile.delete")[-1].before["description_fr"] == "Jetable"


# -- users -------------------------------------------------------------------------------------------------
def test_assign_profiles(manager: Web, demo: dict[str, Any], service: Any, lang: str) -> None:
    cpas = demo["cpas"]
    ids = [demo["profiles"]["clignotants"], demo["profiles"]["director"]]
    back = f"/ui/cpas/{cpas}/?page=1&q=luc"
    manager.text(f"/ui/cpas/{cpas}/users/{LUC}/profiles?back={back}")
    response = manager.post(f"/ui/cpas/{cpas}/users/{LUC}/profiles", {"profiles": ids, "back": back, "confirm": "1"})
    assert response.status_code == 303 and response.headers["Location"] == back
    assert service.read(lambda s: s.user_profiles(cpas, LUC)) == sorted(ids)
    assert service.policy(cpas).view(LUC).profiles == tuple(sorted(ids))
    entry = audits(service, cpas, "user.assign")[-1]
    assert entry.before["profiles"] == [] and entry.after["profiles"] == sorted(ids)
    html = manager.text(back)
    assert "Luc LAMBERT" in html and ("clignotants" if lang == "fr" else "knipperlichten") in html
    assert manager.post(f"/ui/cpas/{cpas}/users/{LUC}/profiles", {"profiles": "abc"}).status_code == 400
    evil = manager.post(f"/ui/cpas/{cpas}/users/{LUC}/profiles", {"profiles": ids, "back": "https://evil.example/",
                                                                  "confirm": "1"})
    assert evil.headers["Location"] == f"/ui/cpas/{cpas}/"


def test_assign_a_profile_of_another_cpas_is_a_message(fr_manager: Web, demo: dict[str, Any], service: Any) -> None:
    cpas = demo["cpas"]
    other = service.read(lambda s: s.builtin_profile(OTHER_CPAS).id)
    fr_manager.text(f"/ui/cpas/{cpas}/users/{LUC}/profiles")
    response = fr_manager.post(f"/ui/cpas/{cpas}/users/{LUC}/profiles", {"profiles": other})
    assert response.status_code == 303
    assert "Un profil choisi n'existe pas (ou plus) dans ce CPAS." in fr_manager.text(f"/ui/cpas/{cpas}/")
    assert service.read(lambda s: s.user_profiles(cpas, LUC)) == []


def test_deactivate_and_reactivate(manager: Web, demo: dict[str, Any], service: Any, lang: str) -> None:
    cpas = demo["cpas"]
    confirm = manager.text(f"/ui/cpas/{cpas}/users/{MARIE}/deactivate")
    assert ("Voulez-vous continuer ?" if lang == "fr" else "Wilt u doorgaan?") in confirm
    response = manager.post(f"/ui/cpas/{cpas}/users/{MARIE}/deactivate", {"confirm": "1"})
    assert response.status_code == 303
    user = service.read(lambda s: s.get_user(cpas, MARIE))
    assert not user.active and service.read(lambda s: s.user_profiles(cpas, MARIE)) == []
    assert not service.policy(cpas).decide(MARIE, "dossier.search").allowed
    home = manager.text(f"/ui/cpas/{cpas}/")
    assert "Marie LEBLANC" in home  # in the flash message ...
    assert f"/users/{MARIE}/profiles" not in home  # ... but not in the list any more
    inactive = manager.text(f"/ui/cpas/{cpas}/users/inactive")
    assert "Marie LEBLANC" in inactive
    assert audits(service, cpas, "user.deactivate")[-1].before["profiles"] == [demo["profiles"]["full"]]
    reactivated = manager.post(f"/ui/cpas/{cpas}/users/{MARIE}/reactivate")
    assert reactivated.status_code == 303  # on to choosing the profiles of the user, who has none
    assert reactivated.headers["Location"].startswith(f"/ui/cpas/{cpas}/users/{MARIE}/profiles?back=")
    assign = manager.text(reactivated.headers["Location"])
    assert ("choisissez maintenant ses profils" if lang == "fr" else "kies nu de profielen") in assign
    assert service.read(lambda s: s.get_user(cpas, MARIE).active)
    assert service.read(lambda s: s.user_profiles(cpas, MARIE)) == []
    assert audits(service, cpas, "user.reactivate")
    html = manager.text(f"/ui/cpas/{cpas}/?q=leblanc")
    assert ("Pas de profil" if lang == "fr" else "Geen profiel") in html


def test_assigning_an_inactive_user_is_a_message(fr_manager: Web, demo: dict[str, Any], service: Any) -> None:
    cpas = demo["cpas"]
    fr_manager.text(f"/ui/cpas/{cpas}/")
    response = fr_manager.post(f"/ui/cpas/{cpas}/users/{MICHEL}/profiles", {"profiles": demo["profiles"]["full"]})
    assert response.status_code == 303
    assert "réactivez-le avant de lui affecter des profils" in fr_manager.text(f"/ui/cpas/{cpas}/")


# -- print views, "Mes accès" -------------------------------------------------------------------------------
def test_profile_print(manager: Web, demo: dict[str, Any], lang: str) -> None:
    html = manager.text(f"/ui/cpas/{demo['cpas']}/profiles/{demo['profiles']['clignotants']}/print")
    assert ("Utilisateurs affectés au profil" if lang == "fr" else "Gebruikers aan wie het profiel") in html
    for name in ("Claire MARTIN", "Els MAES", "Thomas GOOSSENS"):
        assert name in html
    assert "data-print" in html
    assert ("Consultation des alertes" if lang == "fr" else "Raadpleging van de knipperlichten") in html
    assert "Marie LEBLANC" not in html


def test_user_print(manager: Web, demo: dict[str, Any], lang: str) -> None:
    html = manager.text(f"/ui/cpas/{demo['cpas']}/users/91012704692/print")  # Claire: director + clignotants
    title = {"fr": "Profils et fonctions de Claire MARTIN", "nl": "Profielen en functies van Claire MARTIN"}[lang]
    assert title in html
    assert html.count('class="profile-section"') == 2


def test_my_access_for_a_local_account(fr_manager: Web, demo: dict[str, Any]) -> None:
    html = fr_manager.text(f"/ui/cpas/{demo['cpas']}/me")
    assert "Profils et fonctions de gestionnaire" in html
    assert "Pas de profil" in html


@pytest.mark.web_settings(trusted_proxies="10.0.0.0/8")
def test_my_access_via_trusted_proxy(app: Any, demo: dict[str, Any], service: Any) -> None:
    client = Web(app.test_client())
    headers = {"X-Remote-User": "91012704692", "X-Remote-Name": "Claire MARTIN", "X-Remote-Cpas": demo["cpas"],
               "X-Remote-Roles": "Agent social", "X-Remote-Lang": "nl"}
    html = client.text(f"/ui/cpas/{demo['cpas']}/me", headers=headers, environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert "Profielen en functies van Claire MARTIN" in html and "Mijn toegangen" in html
    assert html.count('class="profile-section"') == 2
    # an agent without the manager role may not manage
    refused = client.get(f"/ui/cpas/{demo['cpas']}/", headers=headers, environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert refused.status_code == 403
    assert client.get("/ui/", headers=headers, environ_base={"REMOTE_ADDR": "10.1.2.3"}).headers["Location"] == \
        f"/ui/cpas/{demo['cpas']}/me"
    # the same headers from anywhere else are ignored
    spoofed = client.get(f"/ui/cpas/{demo['cpas']}/me", headers=headers, environ_base={"REMOTE_ADDR": "192.0.2.9"})
    assert spoofed.status_code == 303 and spoofed.headers["Location"].startswith("/ui/login")
    # a manager role from the proxy manages its CPAS, and its changes are audited under its name
    boss = {**headers, "X-Remote-User": "79021412462", "X-Remote-Roles": "Agent social, Configuration CPAS"}
    env = {"REMOTE_ADDR": "10.1.2.3"}
    client.text(f"/ui/cpas/{demo['cpas']}/", headers=boss, environ_base=env)
    response = client.post(f"/ui/cpas/{demo['cpas']}/users/{LUC}/deactivate", {"confirm": "1"}, headers=boss,
                           environ_base=env)
    assert response.status_code == 303
    assert audits(service, demo["cpas"], "user.deactivate")[-1].actor == "sso:79021412462"
    assert client.get(f"/ui/cpas/{OTHER_CPAS}/", headers=boss, environ_base=env).status_code == 403


# -- Admin-Logs ----------------------------------------------------------------------------------------------
def test_audit_page_filters_and_csv(manager: Web, demo: dict[str, Any], service: Any, lang: str) -> None:
    cpas = demo["cpas"]
    manager.text(f"/ui/cpas/{cpas}/")
    manager.post(f"/ui/cpas/{cpas}/users/{JULIE}/profiles", {"profiles": demo["profiles"]["rmc1"], "confirm": "1"})
    html = manager.text(f"/ui/cpas/{cpas}/audit")
    assert ("Profils affectés" if lang == "fr" else "Profielen toegekend") in html
    assert 'title="cli:seed-demo"' in html
    me = "gestionnaire" if lang == "fr" else "beheerder"
    # who, in words; what changed, with the profile's name; the raw data behind a toggle
    assert (f"{me} (compte d'administration)" if lang == "fr" else f"{me} (beheerdersaccount)") in html
    assert ("Profils attribués : RMC-1" if lang == "fr" else "Profielen toegekend: RMC-1") in html
    assert ("Données brutes (avant et après)" if lang == "fr" else "Ruwe gegevens (voor en na)") in html
    mine = manager.text(f"/ui/cpas/{cpas}/audit?actor=admin:{me}")
    assert f"user:{JULIE}" in mine and 'title="cli:seed-demo"' not in mine
    # the actor is matched exactly: a part of it finds nothing
    assert 'title="cli:seed-demo"' not in manager.text(f"/ui/cpas/{cpas}/audit?actor=demo")
    by_action = manager.text(f"/ui/cpas/{cpas}/audit?action=user.deactivate")
    assert "user:77070619530" in by_action and f"user:{JULIE}" not in by_action
    future = manager.text(f"/ui/cpas/{cpas}/audit?date_from=2999-01-01")
    assert ("Aucune entrée ne correspond à ces filtres." if lang == "fr" else "Geen enkele vermelding") in future
    today = manager.text(f"/ui/cpas/{cpas}/audit?date_to=2999-01-01&date_from=2000-01-01&actor=admin:{me}")
    assert f"user:{JULIE}" in today
    bad = manager.text(f"/ui/cpas/{cpas}/audit?date_from=yesterday")
    assert ("Date non valide." if lang == "fr" else "Geen geldige datum.") in bad
    response = manager.get(f"/ui/cpas/{cpas}/audit.csv?actor=admin:{me}")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    # for a spreadsheet in Belgium: UTF-8 with a byte-order mark, semicolons, Brussels time, headers in words
    data = response.get_data()
    assert data.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig")), delimiter=";"))
    code, author, after, when = (("Code de l'action", "Auteur (tel qu'enregistré)", "Après", "Quand") if lang == "fr"
                                 else ("Actiecode", "Auteur (zoals geregistreerd)", "Na", "Wanneer"))
    assert [r[code] for r in rows] == ["user.assign"]
    assert rows[0][author] == f"admin:{me}" and '"profiles"' in rows[0][after]
    recorded = audits(service, cpas, "user.assign")[-1].at
    local = (recorded if recorded.tzinfo else recorded.replace(tzinfo=UTC)).astimezone(ZoneInfo("Europe/Brussels"))
    assert rows[0][when] == local.strftime("%d/%m/%Y %H:%M:%S")
    all_rows = list(csv.reader(io.StringIO(manager.get(f"/ui/cpas/{cpas}/audit.csv").get_data().decode("utf-8-sig")),
                               delimiter=";"))
    assert len(all_rows) - 1 == service.read(lambda s: s.audit_page(cpas, page=1, per_page=1)[1])


def test_audit_csv_defuses_formulas(fr_manager: Web, demo: dict[str, Any], service: Any) -> None:
    cpas = demo["cpas"]
    with service.admin("=cmd|' /C calc'!A0") as admin:
        admin.create_profile(cpas, description_fr="=1+1", description_nl=None, functions=["dossier.list"])
    text = fr_manager.get(f"/ui/cpas/{cpas}/audit.csv").get_data().decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text), delimiter=";"))
    assert rows[1][1].startswith("'=") and rows[1][3] == "'=1+1" and rows[1][8].startswith("'=")


def test_the_admin_logs_say_what_changed_in_words(manager: Web, demo: dict[str, Any], service: Any,
                                                  lang: str) -> None:
    cpas = demo["cpas"]
    with service.admin("admin:gestionnaire") as admin:
        created = admin.create_profile(cpas, description_fr="Recherche seule", description_nl="Alleen zoeken",
                                       functions=["dossier.search"])
        admin.update_profile(cpas, created.id, version=1, description_fr="Recherche seule", description_nl="Zoeken",
                             functions=["dossier.list"], includes=[demo["profiles"]["rmc1"]])
    html = manager.text(f"/ui/cpas/{cpas}/audit")
    if lang == "fr":
        assert "Fonctions ajoutées : Recherche d'un dossier" in html  # the creation
        assert "Fonctions retirées : Recherche d'un dossier" in html and "Profils inclus ajoutés : RMC-1" in html
        assert "Description néerlandais : « Alleen zoeken » → « Zoeken »" in html
    else:
        assert "Functies toegevoegd: Opzoeken van een dossier" in html
        assert "Functies verwijderd: Opzoeken van een dossier" in html
        assert "Opgenomen profielen toegevoegd: RMC-1" in html
        assert "Nederlandse beschrijving: « Alleen zoeken » → « Zoeken »" in html


def test_user_search_finds_the_words_in_any_order(fr_manager: Web, demo: dict[str, Any]) -> None:
    cpas = demo["cpas"]
    for q in ("Marie LEBLANC", "leblanc marie", "LEBL  mar", MARIE):
        assert "Marie LEBLANC" in fr_manager.text(f"/ui/cpas/{cpas}/?q={q}"), q
    for q in ("leblanc julie", "%25", "_"):  # every word must match; the reader's % and _ are plain characters
        assert "Marie LEBLANC" not in fr_manager.text(f"/ui/cpas/{cpas}/?q={q}"), q


def test_saving_an_unchanged_assignment_writes_no_entry(fr_manager: Web, demo: dict[str, Any], service: Any) -> None:
    cpas = demo["cpas"]
    held = service.read(lambda s: s.user_profiles(cpas, MARIE))
    entries = service.read(lambda s: s.audit_page(cpas, page=1, per_page=1)[1])
    fr_manager.text(f"/ui/cpas/{cpas}/users/{MARIE}/profiles")
    assert fr_manager.post(f"/ui/cpas/{cpas}/users/{MARIE}/profiles", {"profiles": held, "confirm": "1"}
                           ).status_code == 303
    assert service.read(lambda s: s.audit_page(cpas, page=1, per_page=1)[1]) == entries
    assert service.read(lambda s: s.user_profiles(cpas, MARIE)) == held


# -- the preview step ("Aperçu des changements") ------------------------------------------------------------
def hidden(html: str) -> list[tuple[str, str]]:
    """The hidden inputs of the preview's form (the CSRF token aside), in order."""
    form = html[html.index('class="card preview-actions"'):]
    return [(n, v) for n, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form)
            if n != "csrf_token"]


def test_each_change_shows_what_it_would_do_before_it_is_made(fr_manager: Web, demo: dict[str, Any],
                                                              service: Any) -> None:
    """Without JavaScript: the profile form's "Enregistrer" shows the preview, whose hidden fields bring the
    form back as it was ("Revenir au formulaire") or make the change ("Confirmer"); the same for an
    assignment; the delete and deactivate confirmations show it on the page."""
    cpas, rmc = demo["cpas"], demo["profiles"]["rmc1"]
    url = f"/ui/cpas/{cpas}/profiles/{rmc}"
    html = fr_manager.text(url)
    version = re.search(r'name="version" type="hidden" value="(\d+)"', html).group(1)  # type: ignore[union-attr]
    holders = service.read(lambda s: [u.name for u in s.profile_users(cpas, rmc)])  # Thomas GOOSSENS
    held = checked(html)
    assert "forms.list" in held and "dossier.search" not in held
    kept = held - {"forms.list"} | {"dossier.search"}
    label = {c: service.catalog.functions[c].label.fr for c in ("forms.list", "dossier.search")}
    entries = len(audits(service, cpas, "profile.update"))
    shown = fr_manager.post(url, {"description_fr": "RMC-1", "description_nl": "RMC-1", "version": version,
                                  "functions": sorted(kept), "action": "save"})
    preview = page(shown)
    assert shown.status_code == 200 and "Aperçu des changements" in preview and "Confirmer" in preview
    assert "Ne pourra plus utiliser" in preview and label["forms.list"] in preview
    assert "Pourra utiliser" in preview and label["dossier.search"] in preview
    assert holders and all(name in preview for name in holders)
    fields = hidden(preview)
    assert ("version", version) in fields and {v for n, v in fields if n == "functions"} == kept
    assert service.read(lambda s: set(s.profile_functions(cpas, rmc))) == held  # not yet
    back = fr_manager.post(url, [*fields, ("action", "edit")])
    assert back.status_code == 200 and checked(page(back)) == kept and 'value="RMC-1"' in page(back)
    assert len(audits(service, cpas, "profile.update")) == entries
    done = fr_manager.post(url, [*fields, ("confirm", "1")])
    assert done.status_code == 303 and service.read(lambda s: set(s.profile_functions(cpas, rmc))) == kept

    # an assignment: its preview, back with the profiles ticked, then confirmed
    assign = f"/ui/cpas/{cpas}/users/{LUC}/profiles"
    fr_manager.text(assign)
    preview = page(fr_manager.post(assign, {"profiles": rmc, "back": f"/ui/cpas/{cpas}/?q=luc"}))
    assert "Aperçu des changements" in preview and "Luc LAMBERT" in preview and "Pourra utiliser" in preview
    fields = hidden(preview)
    assert fields == [("profiles", str(rmc)), ("back", f"/ui/cpas/{cpas}/?q=luc")]
    again = page(fr_manager.post(assign, [*fields, ("action", "edit")]))
    assert re.search(rf'value="{rmc}" checked', again) and "data-unsaved" in again
    assert service.read(lambda s: s.user_profiles(cpas, LUC)) == []
    done = fr_manager.post(assign, [*fields, ("confirm", "1")])
    assert done.headers["Location"] == f"/ui/cpas/{cpas}/?q=luc"
    assert service.read(lambda s: s.user_profiles(cpas, LUC)) == [rmc]

    # the confirmations: what a deactivation takes away; a deletion concerns nobody
    deactivate = fr_manager.text(f"/ui/cpas/{cpas}/users/{LUC}/deactivate")
    assert "Aperçu des changements" in deactivate and "Ne pourra plus utiliser" in deactivate
    assert service.read(lambda s: s.get_user(cpas, LUC).active)
    with service.admin("test") as admin:
        pid = admin.create_profile(cpas, description_fr="Jetable", description_nl=None, functions=["dossier.list"]).id
    assert "L'accès d'aucun utilisateur ne change." in fr_manager.text(f"/ui/cpas/{cpas}/profiles/{pid}/delete")
