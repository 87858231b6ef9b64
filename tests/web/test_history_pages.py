"""The two pages of issue 13 without a browser: "Qui peut utiliser cette fonction ?" and "Qui avait accès ?"
(with its CSV), in both languages, scoped to the account's CPAS."""

from __future__ import annotations

from typing import Any

from .conftest import Web, page

TEXT = {"fr": ("Qui peut utiliser cette fonction ?", "Qui avait accès ?", "L'historique ne remonte pas",
               "Fonction;Moment;Nom;Identifiant de l'utilisateur;Accordée par les profils"),
        "nl": ("Wie mag deze functie gebruiken?", "Wie had toegang?", "De geschiedenis gaat niet zo ver terug",
               "Functie;Moment;Naam;Gebruikers-ID;Toegekend door de profielen")}
MARIE = "85073003328"


def test_who_can_and_who_had_access(manager: Web, demo: dict[str, Any], lang: str) -> None:
    cpas = demo["cpas"]
    who_can, who_had, too_early, csv_header = TEXT[lang]
    form = manager.text(f"/ui/cpas/{cpas}/profiles/{demo['profiles']['full']}")
    assert f"/ui/cpas/{cpas}/functions/dossier.search/users" in form and who_can in form
    now = manager.text(f"/ui/cpas/{cpas}/functions/dossier.search/users")
    assert who_can in now and MARIE in now
    assert who_had in manager.text(f"/ui/cpas/{cpas}/audit")
    asked = "function=dossier.search&day=2100-01-01&moment=10:00"
    then = manager.text(f"/ui/cpas/{cpas}/access-at?{asked}")
    assert MARIE in then and "01/01/2100 10:00:00" in then
    assert too_early in manager.text(f"/ui/cpas/{cpas}/access-at?function=dossier.search&day=2000-01-01")
    exported = manager.get(f"/ui/cpas/{cpas}/access-at.csv?{asked}")
    assert exported.status_code == 200 and exported.mimetype == "text/csv"
    text = exported.get_data().decode("utf-8")
    assert text.startswith("\ufeff" + csv_header + "\r\n")
    assert MARIE in text and "01/01/2100 10:00:00" in text


def test_refusals(web: Web, demo: dict[str, Any], accounts: dict[str, str]) -> None:
    cpas = demo["cpas"]
    assert web.login("gestionnaire").status_code == 303
    assert web.get(f"/ui/cpas/{cpas}/functions/no.such/users").status_code == 404
    assert web.get(f"/ui/cpas/{cpas}/access-at.csv").status_code == 400
    assert "Choisissez une fonction." in page(web.get(f"/ui/cpas/{cpas}/access-at?function=no.such&day=2025-01-01"))
    other = Web(web.client.application.test_client())
    assert other.login("autre").status_code == 303
    for path in ("functions/dossier.search/users", "access-at", "access-at.csv?function=dossier.search&day=2100-01-01"):
        assert other.get(f"/ui/cpas/{cpas}/{path}").status_code == 403
