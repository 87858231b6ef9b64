"""Every page renders in French and in Dutch; login, logout, the language switch, the session cookie,
CSRF, access control and the JSON API left as it was."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import LANG_ACCOUNT, OTHER_CPAS, PASSWORD, Web, page

MARIE = "85073003328"  # Marie LEBLANC, profile "Full"

# a phrase of each page in each language: proves the page is there and translated
PAGES: list[tuple[str, str, str, int]] = [
    ("/ui/cpas/{cpas}/", "Gestion des accès", "Toegangsbeheer", 200),
    ("/ui/cpas/{cpas}/users/inactive", "Utilisateurs inactifs", "Inactieve gebruikers", 200),
    ("/ui/cpas/{cpas}/profiles/new", "Création d'un profil", "Aanmaak van een profiel", 200),
    ("/ui/cpas/{cpas}/profiles/{full}", "Gestion du profil Full", "Beheer van het profiel Full", 200),
    ("/ui/cpas/{cpas}/profiles/{builtin}", "Seules ses descriptions", "Alleen de beschrijvingen", 200),
    ("/ui/cpas/{cpas}/profiles/{full}/print", "Fonctions associées au profil", "Functies van het profiel", 200),
    ("/ui/cpas/{cpas}/profiles/{full}/delete", "Voulez-vous vraiment supprimer ce profil?",
     "Wilt u dit profiel echt verwijderen?", 200),
    ("/ui/cpas/{cpas}/profiles/{builtin}/delete", "ne peut pas être supprimé", "kan niet worden verwijderd", 409),
    ("/ui/cpas/{cpas}/users/{marie}/profiles", "Affectation des profils à Marie LEBLANC",
     "Toekenning van profielen aan Marie LEBLANC", 200),
    ("/ui/cpas/{cpas}/users/{marie}/print", "Profils et fonctions de Marie LEBLANC",
     "Profielen en functies van Marie LEBLANC", 200),
    ("/ui/cpas/{cpas}/users/{marie}/deactivate",
     "Désactiver cet utilisateur aura pour effet de lui désaffecter tous les profils. Voulez-vous continuer ?",
     "Als u deze gebruiker deactiveert, worden al zijn profielen ingetrokken. Wilt u doorgaan?", 200),
    ("/ui/cpas/{cpas}/me", "Mes accès", "Mijn toegangen", 200),
    ("/ui/cpas/{cpas}/audit", "Admin-Logs", "Admin-Logs", 200),
    ("/ui/cpas", "Choisir un CPAS", "Een OCMW kiezen", 200),
]


def fill(url: str, demo: dict[str, Any]) -> str:
    return url.format(cpas=demo["cpas"], full=demo["profiles"]["full"], builtin=demo["profiles"]["builtin"],
                      marie=MARIE)


@pytest.mark.parametrize(("url", "fr", "nl", "status"), PAGES, ids=[p[0] for p in PAGES])
def test_every_page_renders_in_both_languages(manager: Web, demo: dict[str, Any], lang: str, url: str, fr: str,
                                               nl: str, status: int) -> None:
    html = manager.text(fill(url, demo), status)
    assert (fr if lang == "fr" else nl) in html
    assert f'<html lang="{lang}">' in html
    other = nl if lang == "fr" else fr
    if other != (fr if lang == "fr" else nl):
        assert other not in html


def test_home_lists_profiles_and_users_like_the_manual(manager: Web, demo: dict[str, Any], lang: str) -> None:
    html = manager.text(f"/ui/cpas/{demo['cpas']}/")
    words = {"fr": ("Gérer", "Supprimer", "Imprimer", "Créer un profil", "Affecter les profils", "Désactiver",
                    "Pas de profil", "Utilisateurs inactifs"),
             "nl": ("Beheren", "Verwijderen", "Afdrukken", "Profiel aanmaken", "Profielen toekennen", "Deactiveren",
                    "Geen profiel", "Inactieve gebruikers")}[lang]
    for word in words:
        assert word in html
    builtin = "Tous les accès" if lang == "fr" else "Alle toegangen"
    assert builtin in html
    # no "Supprimer" for the built-in profile: its row has Gérer and Imprimer only
    row = html.split(builtin, 1)[1].split("</tr>", 1)[0]
    assert f"/profiles/{demo['profiles']['builtin']}/delete" not in row
    assert f"/profiles/{demo['profiles']['builtin']}/print" in row
    assert "Marie LEBLANC" in html and "Michel RENARD" not in html  # Michel is inactive


@pytest.mark.web_settings(per_page=5)
def test_users_are_paginated_and_searchable(app: Any, manager: Web, demo: dict[str, Any]) -> None:
    first = manager.text(f"/ui/cpas/{demo['cpas']}/")
    assert first.count("/print\">") >= 0
    assert 'aria-current="page" class="current">1</a>' in first
    assert "page=3" in first and "page=4" not in first  # 13 active users, 5 per page
    third = manager.text(f"/ui/cpas/{demo['cpas']}/?page=3")
    assert third.count("/deactivate?") == 3
    found = manager.text(f"/ui/cpas/{demo['cpas']}/?q=leblanc")
    assert "Marie LEBLANC" in found and "Jan PEETERS" not in found
    nothing = manager.text(f"/ui/cpas/{demo['cpas']}/?q=zzzz")
    assert "zzzz" in nothing
    assert manager.get(f"/ui/cpas/{demo['cpas']}/?page=-4").status_code == 200


def test_inactive_list_shows_deactivated_users(fr_manager: Web, demo: dict[str, Any]) -> None:
    html = fr_manager.text(f"/ui/cpas/{demo['cpas']}/users/inactive")
    assert "Michel RENARD" in html and "Réactiver" in html and "Marie LEBLANC" not in html


# -- login, logout, session ------------------------------------------------------------------------------
def test_anonymous_is_sent_to_login(web: Web, demo: dict[str, Any]) -> None:
    response = web.get(f"/ui/cpas/{demo['cpas']}/")
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/ui/login?next=")
    assert web.get("/").headers["Location"].endswith("/ui/")


@pytest.mark.parametrize(("accept", "phrase"), [("fr-BE,fr;q=0.9", "Se connecter"), ("nl-BE,nl;q=0.9", "Aanmelden"),
                                                 ("de-DE", "Se connecter")])
def test_login_page_follows_accept_language(web: Web, accept: str, phrase: str) -> None:
    html = web.text("/ui/login", headers={"Accept-Language": accept})
    assert phrase in html


def test_login_wrong_password_is_refused(web: Web, accounts: dict[str, str]) -> None:
    response = web.login("gestionnaire", "not the password")
    assert response.status_code == 401
    assert "Nom d'utilisateur ou mot de passe incorrect." in page(response)
    unknown = web.login("nobody", PASSWORD)
    assert unknown.status_code == 401


def test_login_then_logout(web: Web, accounts: dict[str, str], demo: dict[str, Any]) -> None:
    response = web.login("gestionnaire")
    assert response.status_code == 303 and response.headers["Location"] == "/ui/"
    home = web.get("/ui/")
    assert home.headers["Location"] == f"/ui/cpas/{demo['cpas']}/"
    web.get(home.headers["Location"])
    assert web.post("/ui/logout").status_code == 303
    assert web.get(f"/ui/cpas/{demo['cpas']}/").status_code == 303
    assert "Vous êtes déconnecté." in web.text("/ui/login")


def test_login_goes_back_to_the_page_asked_for(web: Web, accounts: dict[str, str], demo: dict[str, Any]) -> None:
    target = f"/ui/cpas/{demo['cpas']}/audit"
    login_page = web.get(target).headers["Location"]
    web.get(login_page)
    response = web.post("/ui/login", {"username": "gestionnaire", "password": PASSWORD, "next": target})
    assert response.headers["Location"] == target
    web.post("/ui/logout")
    evil = web.post("/ui/login", {"username": "gestionnaire", "password": PASSWORD, "next": "//evil.example/"})
    assert evil.headers["Location"] == "/ui/"


def test_inactive_account_cannot_sign_in(web: Web, accounts: dict[str, str], service: Any) -> None:
    from authz_service.store import Store

    assert web.login("gestionnaire").status_code == 303
    with service.db.transaction() as session:
        account = Store(session).admin_by_username("gestionnaire")
        account.active = False
    assert web.get("/ui/").status_code == 303  # the live session ends at once
    assert web.login("gestionnaire").status_code == 401


def test_session_cookie_flags(web: Web, accounts: dict[str, str], app: Any) -> None:
    web.login("gestionnaire")
    cookie = web.client.get_cookie("authz_session")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Lax" and not cookie.secure
    secure = Web(app.test_client())
    secure.get("/ui/login", base_url="https://localhost")
    response = secure.client.post("/ui/login", base_url="https://localhost", headers={"Referer": "https://localhost/"},
                                  data={"username": "gestionnaire", "password": PASSWORD, "csrf_token": secure.token})
    assert response.status_code == 303
    header = response.headers["Set-Cookie"]
    assert "Secure" in header and "HttpOnly" in header and "SameSite=Lax" in header


def test_language_switch_and_account_setting(web: Web, accounts: dict[str, str], demo: dict[str, Any],
                                             service: Any) -> None:
    web.login("gestionnaire")
    assert "Gestion des accès" in web.text(f"/ui/cpas/{demo['cpas']}/")
    response = web.post("/ui/lang", {"lang": "nl", "next": f"/ui/cpas/{demo['cpas']}/"})
    assert response.status_code == 303
    assert "Toegangsbeheer" in web.text(f"/ui/cpas/{demo['cpas']}/")
    stored = service.read(lambda store: store.admin_by_username("gestionnaire").lang)
    assert stored == "nl"
    # a new session of the same account starts in Dutch (account setting beats Accept-Language)
    again = Web(web.client.application.test_client())
    again.login("gestionnaire")
    assert "Toegangsbeheer" in again.text(f"/ui/cpas/{demo['cpas']}/", headers={"Accept-Language": "fr"})
    assert web.post("/ui/lang", {"lang": "de"}).status_code == 400


# -- CSRF -------------------------------------------------------------------------------------------------
def test_csrf_token_is_required_on_every_form(manager: Web, demo: dict[str, Any], service: Any, lang: str) -> None:
    cpas = demo["cpas"]
    before = service.read(lambda store: len(store.profiles(cpas)))
    posts = [
        (f"/ui/cpas/{cpas}/profiles/new", {"description_fr": "Sans jeton", "functions": "dossier.search"}),
        (f"/ui/cpas/{cpas}/profiles/{demo['profiles']['rmc1']}/delete", {}),
        (f"/ui/cpas/{cpas}/users/{MARIE}/profiles", {"profiles": demo["profiles"]["rmc1"]}),
        (f"/ui/cpas/{cpas}/users/{MARIE}/deactivate", {}),
        (f"/ui/cpas/{cpas}/users/77070619530/reactivate", {}),
        ("/ui/lang", {"lang": "nl"}),
        ("/ui/logout", {}),
        ("/ui/login", {"username": "gestionnaire", "password": PASSWORD}),
    ]
    for url, data in posts:
        response = manager.post(url, data, csrf=False)
        assert response.status_code == 400, url
        assert ("Formulaire expiré" if lang == "fr" else "Formulier verlopen") in page(response)
    bad = manager.post(f"/ui/cpas/{cpas}/users/{MARIE}/deactivate", {"csrf_token": "forged"}, csrf=False)
    assert bad.status_code == 400
    assert service.read(lambda store: len(store.profiles(cpas))) == before
    assert service.read(lambda store: store.get_user(cpas, MARIE).active)
    assert service.read(lambda store: store.get_user(cpas, "77070619530").active) is False


# -- per-CPAS isolation -------------------------------------------------------------------------------------
def test_another_cpas_is_refused(web: Web, accounts: dict[str, str], demo: dict[str, Any], service: Any) -> None:
    web.login("autre")
    cpas = demo["cpas"]
    full = demo["profiles"]["full"]
    for url in [f"/ui/cpas/{cpas}/", f"/ui/cpas/{cpas}/profiles/new", f"/ui/cpas/{cpas}/profiles/{full}",
                f"/ui/cpas/{cpas}/users/{MARIE}/print", f"/ui/cpas/{cpas}/audit", f"/ui/cpas/{cpas}/audit.csv",
                f"/ui/cpas/{cpas}/me", f"/ui/cpas/{cpas}/users/inactive"]:
        response = web.get(url)
        assert response.status_code == 403, url
        assert "Accès refusé" in page(response)
    web.get(f"/ui/cpas/{OTHER_CPAS}/")  # a page of its own, for a token
    for url in [f"/ui/cpas/{cpas}/profiles/{demo['profiles']['rmc1']}/delete",
                f"/ui/cpas/{cpas}/users/{MARIE}/deactivate", f"/ui/cpas/{cpas}/users/{MARIE}/profiles"]:
        assert web.post(url, {"profiles": demo["profiles"]["rmc1"]}).status_code == 403, url
    assert service.read(lambda store: store.get_user(cpas, MARIE).active)
    assert service.read(lambda store: store.get_profile(cpas, demo["profiles"]["rmc1"])) is not None
    # its own CPAS works, but a profile of the demo CPAS does not exist there
    assert web.get(f"/ui/cpas/{OTHER_CPAS}/").status_code == 200
    assert web.get(f"/ui/cpas/{OTHER_CPAS}/profiles/{demo['profiles']['full']}").status_code == 404
    assert web.get(f"/ui/cpas/{OTHER_CPAS}/profiles/{demo['profiles']['full']}/print").status_code == 404
    assert web.get(f"/ui/cpas/{OTHER_CPAS}/users/{MARIE}/print").status_code == 404


def test_manager_of_several_cpas_chooses_one(web: Web, accounts: dict[str, str], demo: dict[str, Any]) -> None:
    web.login("multi")
    assert web.get("/ui/").headers["Location"] == "/ui/cpas"
    html = web.text("/ui/cpas")
    assert "CPAS de Herstappe" in html and "CPAS de Test" in html
    assert web.get(f"/ui/cpas/{OTHER_CPAS}/").status_code == 200
    assert web.get("/ui/").headers["Location"] == f"/ui/cpas/{OTHER_CPAS}/"  # remembered
    assert "Changer de CPAS" in web.text(f"/ui/cpas/{demo['cpas']}/")


def test_operator_sees_every_cpas(web: Web, accounts: dict[str, str], demo: dict[str, Any]) -> None:
    web.login("operateur")
    html = web.text("/ui/cpas")
    assert "CPAS de Herstappe" in html and "CPAS de Test" in html
    assert "CPAS de Test" not in web.text("/ui/cpas?q=herst")
    assert web.get(f"/ui/cpas/{demo['cpas']}/").status_code == 200
    assert web.get(f"/ui/cpas/{OTHER_CPAS}/").status_code == 200
    assert web.get("/ui/cpas/0000000097/").status_code == 404


def test_unknown_things_are_html_not_found(fr_manager: Web, demo: dict[str, Any]) -> None:
    cpas = demo["cpas"]
    for url in [f"/ui/cpas/{cpas}/profiles/999999", f"/ui/cpas/{cpas}/users/nobody/profiles",
                f"/ui/cpas/{cpas}/users/nobody/print"]:
        response = fr_manager.get(url)
        assert response.status_code == 404 and response.mimetype == "text/html", url


def test_unknown_ui_address_is_an_html_page(fr_manager: Web) -> None:
    response = fr_manager.get("/ui/no/such/page")
    assert response.status_code == 404 and response.mimetype == "text/html"
    assert "Page introuvable" in page(response)


def test_store_outage_is_a_page_not_a_500(fr_manager: Web, demo: dict[str, Any], service: Any,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from authz_service.errors import Unavailable

    fr_manager.text(f"/ui/cpas/{demo['cpas']}/")

    def down(*_args: Any, **_kwargs: Any) -> Any:
        raise Unavailable("the policy store is unavailable")

    monkeypatch.setattr(service, "admin", down)
    response = fr_manager.post(f"/ui/cpas/{demo['cpas']}/users/{MARIE}/deactivate", {"confirm": "1"})
    assert response.status_code == 303
    assert "Le service est momentanément indisponible ; rien n'a été modifié." in fr_manager.text(
        f"/ui/cpas/{demo['cpas']}/")
    monkeypatch.setattr(service, "read", down)
    outage = fr_manager.get(f"/ui/cpas/{demo['cpas']}/")
    assert outage.status_code == 503 and outage.mimetype == "text/html"


def test_json_api_keeps_its_envelopes(app: Any, demo: dict[str, Any]) -> None:
    client = app.test_client()
    response = client.get(f"/cpas/{demo['cpas']}/profiles")
    assert response.status_code == 401 and response.json["error"]["code"] == "unauthenticated"
    missing = client.get("/no/such/route")
    assert missing.status_code == 404 and missing.json["error"]["code"] == "not_found"
    # a JSON POST needs no CSRF token: the API authenticates with bearer keys
    posted = client.post("/enforce", json={"cpas": demo["cpas"], "user": MARIE, "function": "dossier.search"})
    assert posted.status_code == 401 and posted.json["error"]["code"] == "unauthenticated"


def test_security_headers(fr_manager: Web, demo: dict[str, Any]) -> None:
    response = fr_manager.get(f"/ui/cpas/{demo['cpas']}/")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    html = response.get_data(as_text=True)
    assert "<script>" not in html and "http://" not in html and "https://" not in html  # no CDN, no inline JS
    assert fr_manager.get("/ui/static/app.css").status_code == 200
    assert fr_manager.get("/ui/static/app.js").status_code == 200


def test_accounts_by_language(accounts: dict[str, str]) -> None:
    assert set(LANG_ACCOUNT.values()) <= set(accounts)
