"""The access review pages ("Revues d'accès" / "Toegangsreviews") through the Flask test client: every page
in French and Dutch, a review started, decided (keep, keep until, revoke through its preview) and signed off,
the refusals told in the reader's language, a closed review read-only, the operators' overview, CSRF and
access per CPAS."""

from __future__ import annotations

import re
import time
from datetime import date, timedelta
from typing import Any

from authz_service.admin import Admin

from .conftest import OTHER_CPAS, Web, page

MARIE, ANNELIES, LUC = "85073003328", "96031220418", "75081815365"
DAY = 86400


def today(service: Any) -> date:
    from authz_service.reads import local_zone

    return service.now().astimezone(local_zone()).date()


def start(service: Any, cpas: str, days: int = 14) -> int:
    """A review started by someone else, due in ``days`` days: its id."""
    return int(service.change("admin:someone", Admin.start_review, cpas, today(service) + timedelta(days=days))
               .value.summary.id)


def decide_all(service: Any, cpas: str, review_id: int, decision: str = "keep") -> None:
    from authz_service import reads

    items = service.read(lambda s: reads.review_detail(s, cpas, review_id).items)
    for item in items:
        if item.decision is None:
            service.change("admin:someone", Admin.decide_review_item, cpas, review_id, item.user, decision, None, None)


def later(service: Any, days: int) -> None:
    """Move the service's wall clock (the use cases' "today") ``days`` days on."""
    service.engine.wall = lambda: time.time() + days * DAY


def detail(service: Any, cpas: str, review_id: int) -> Any:
    from authz_service import reads

    return service.read(lambda s: reads.review_detail(s, cpas, review_id))


TEXT = {
    "fr": {"reviews": "Revues d'accès", "start": "Démarrer une revue", "due": "Échéance", "keep": "Conserver",
           "revoke": "Retirer", "until": "Conserver jusqu'à une date", "record": "Enregistrer la décision",
           "close": "Clôturer et signer", "ask": "Voulez-vous vraiment clôturer cette revue ?",
           "report": "Rapport de revue d'accès", "provisional": "ce rapport est provisoire",
           "overview": "Revues d'accès de tous les CPAS", "progress": "Une revue d'accès est en cours jusqu'au",
           "overdue": "en retard", "preview": "Aperçu des changements", "signed": "Signée par",
           "closed_notice": "Cette revue est clôturée et signée", "none_yet": "Aucune revue d'accès pour l'instant."},
    "nl": {"reviews": "Toegangsreviews", "start": "Een review starten", "due": "Uiterste datum", "keep": "Behouden",
           "revoke": "Intrekken", "until": "Behouden tot een datum", "record": "De beslissing registreren",
           "close": "Afsluiten en ondertekenen", "ask": "Wilt u deze review echt afsluiten?",
           "report": "Verslag van de toegangsreview", "provisional": "dit verslag is voorlopig",
           "overview": "Toegangsreviews van alle OCMW's", "progress": "Er loopt een toegangsreview tot",
           "overdue": "achterstallig", "preview": "Overzicht van de wijzigingen", "signed": "Ondertekend door",
           "closed_notice": "Deze review is afgesloten en ondertekend", "none_yet": "Nog geen toegangsreview."},
}


# -- every page, both languages ---------------------------------------------------------------------------------
def test_every_review_page_renders_in_both_languages(manager: Web, demo: dict[str, Any], service: Any,
                                                      lang: str) -> None:
    t, other = TEXT[lang], TEXT["nl" if lang == "fr" else "fr"]
    cpas = demo["cpas"]
    html = manager.text(f"/ui/cpas/{cpas}/reviews")
    assert t["start"] in html and t["none_yet"] in html and 'type="date"' in html
    assert f'<html lang="{lang}">' in html and other["start"] not in html
    home = manager.text(f"/ui/cpas/{cpas}/")
    assert f'href="/ui/cpas/{cpas}/reviews"' in home and t["reviews"] in home  # the menu entry
    assert t["progress"] not in home  # no review yet: nothing to flag

    review_id = start(service, cpas)
    listing = manager.text(f"/ui/cpas/{cpas}/reviews")
    assert t["start"] not in listing and f"/reviews/{review_id}" in listing
    shown = manager.text(f"/ui/cpas/{cpas}/reviews/{review_id}")
    for word in (t["keep"], t["revoke"], t["until"], t["record"], "Marie LEBLANC", "Full"):
        assert word in shown, word
    assert "Michel RENARD" not in shown  # inactive when the review started
    assert t["close"] not in shown  # nobody decided yet: no sign-off button
    assert other["record"] not in shown
    assert t["progress"] in manager.text(f"/ui/cpas/{cpas}/")  # the home page shows the open review
    printed = manager.text(f"/ui/cpas/{cpas}/reviews/{review_id}/print")
    assert t["report"] in printed and t["provisional"] in printed and "page-print" in printed
    refused = manager.text(f"/ui/cpas/{cpas}/reviews/{review_id}/close")
    assert t["ask"] not in refused and ("décision manque" if lang == "fr" else "ontbreekt nog") in refused

    decide_all(service, cpas, review_id)
    ready = manager.text(f"/ui/cpas/{cpas}/reviews/{review_id}")
    assert t["close"] in ready and t["record"] not in ready
    assert t["ask"] in manager.text(f"/ui/cpas/{cpas}/reviews/{review_id}/close")


def test_operator_overview_in_both_languages(web: Web, demo: dict[str, Any], service: Any, lang: str) -> None:
    web.login("operateur")
    web.post("/ui/lang", {"lang": lang, "next": "/ui/cpas"})
    chooser = web.text("/ui/cpas")
    assert TEXT[lang]["overview"] in chooser and 'href="/ui/reviews"' in chooser
    html = web.text("/ui/reviews")
    assert TEXT[lang]["overview"] in html and demo["cpas"] in html and OTHER_CPAS in html
    assert ("À jour" if lang == "fr" else "In orde") in html


# -- the lifecycle ---------------------------------------------------------------------------------------------------
def test_start_decide_revoke_close_then_read_only(fr_manager: Web, demo: dict[str, Any], service: Any) -> None:
    web, cpas = fr_manager, demo["cpas"]
    due = today(service) + timedelta(days=30)
    started = web.post(f"/ui/cpas/{cpas}/reviews", {"due": due.isoformat()})
    assert started.status_code == 303
    match = re.search(r"/reviews/(\d+)$", started.headers["Location"])
    assert match
    review_id = int(match.group(1))
    base = f"/ui/cpas/{cpas}/reviews/{review_id}"
    html = web.text(base)
    assert "La revue d'accès a été démarrée" in html and due.strftime("%d/%m/%Y") in html
    summary = detail(service, cpas, review_id).summary
    assert summary.started_by == "admin:gestionnaire" and summary.decided == 0 and summary.total > 3

    # keep, with a comment: recorded at once, shown read-only with who and when
    kept = web.post(f"{base}/items/{ANNELIES}", {"decision": "keep", "comment": "Toujours au service social"})
    assert kept.status_code == 303 and kept.headers["Location"].endswith(f"#u-{ANNELIES}")
    html = web.text(base)
    assert "La décision a été enregistrée." in html and "Toujours au service social" in html
    assert "Décidé par admin:gestionnaire le" in html
    assert html.count('name="decision" value="keep"') == summary.total - 1  # one form fewer
    to_decide = web.text(f"{base}?show=open")  # the users still to decide, only
    assert "Annelies WILLEMS" not in to_decide and "Marie LEBLANC" in to_decide

    # keep until a date
    until = today(service) + timedelta(days=60)
    response = web.post(f"{base}/items/{LUC}", {"decision": "keep_until", "until": until.isoformat()})
    assert response.status_code == 303
    assert f"Conserver jusqu'au {until.strftime('%d/%m/%Y')}" in web.text(base)

    # revoke: first what it would do, nothing changed; back keeps the choices; confirmed, the profiles go
    before = service.read(lambda s: s.user_profiles(cpas, MARIE))
    assert before
    shown = web.post(f"{base}/items/{MARIE}", {"decision": "revoke", "comment": "A quitté le CPAS"})
    assert shown.status_code == 200
    html = page(shown)
    assert "Aperçu des changements" in html and "Retirer les accès revus de Marie LEBLANC" in html
    assert "Marie LEBLANC" in html and 'value="A quitté le CPAS"' in html
    assert service.read(lambda s: s.user_profiles(cpas, MARIE)) == before
    back = web.post(f"{base}/items/{MARIE}", {"decision": "revoke", "comment": "A quitté le CPAS", "action": "edit"})
    back_html = page(back)
    assert back.status_code == 200 and 'value="A quitté le CPAS"' in back_html
    assert re.search(r'value="revoke"\s+checked', back_html)
    done = web.post(f"{base}/items/{MARIE}", {"decision": "revoke", "comment": "A quitté le CPAS", "confirm": "1"})
    assert done.status_code == 303
    assert service.read(lambda s: s.user_profiles(cpas, MARIE)) == []
    assert "A quitté le CPAS" in web.text(base)

    # the rest kept; sign-off asks first, then closes in the signed-in manager's name
    decide_all(service, cpas, review_id)
    assert "Voulez-vous vraiment clôturer cette revue ?" in web.text(f"{base}/close")
    closed = web.post(f"{base}/close", {"confirm": "1"})
    assert closed.status_code == 303
    html = web.text(base)
    assert "La revue d'accès a été clôturée et signée." in html
    assert "Cette revue est clôturée et signée" in html and "Signée par" in html
    assert 'name="decision"' not in html and "Clôturer et signer" not in html  # read-only
    summary = detail(service, cpas, review_id).summary
    assert summary.closed_by == "admin:gestionnaire" and summary.closed_at is not None
    printed = web.text(f"{base}/print")
    assert "Signée par admin:gestionnaire le" in printed and "provisoire" not in printed
    assert "A quitté le CPAS" in printed and "Retirer" in printed
    # a closed review's confirmation page leads back to the review
    assert web.get(f"{base}/close").status_code == 303

    # a decision posted to the closed review is refused in words, and changes nothing
    refused = web.post(f"{base}/items/{ANNELIES}", {"decision": "revoke", "confirm": "1"})
    assert refused.status_code == 409
    assert "Cette revue d'accès est clôturée : elle ne peut plus être modifiée." in page(refused)
    # a new review may start now
    assert web.post(f"/ui/cpas/{cpas}/reviews", {"due": due.isoformat()}).status_code == 303
    # and the Admin-Logs name the review actions in words
    logs = web.text(f"/ui/cpas/{cpas}/audit")
    assert "Revue d'accès démarrée" in logs and "Revue d'accès clôturée et signée" in logs


def test_the_dutch_lifecycle(web: Web, demo: dict[str, Any], service: Any) -> None:
    manager, cpas = web, demo["cpas"]
    manager.login("beheerder")
    review_id = start(service, cpas)
    base = f"/ui/cpas/{cpas}/reviews/{review_id}"
    assert manager.post(f"{base}/items/{LUC}", {"decision": "keep", "comment": "ok"}).status_code == 303
    assert "De beslissing werd geregistreerd." in manager.text(base)
    shown = page(manager.post(f"{base}/items/{MARIE}", {"decision": "revoke"}))
    assert "Overzicht van de wijzigingen" in shown and "De gereviewde toegangen van Marie LEBLANC intrekken" in shown
    decide_all(service, cpas, review_id)
    assert manager.post(f"{base}/close", {"confirm": "1"}).status_code == 303
    html = manager.text(base)
    assert "De toegangsreview werd afgesloten en ondertekend." in html and "Ondertekend door" in html


# -- refusals --------------------------------------------------------------------------------------------------
REFUSED = {
    "fr": {"past": "L'échéance ne peut pas être dans le passé.",
           "open": "Une revue d'accès de ce CPAS est déjà en cours",
           "no_until": "Indiquez la date jusqu'à laquelle l'accès est conservé.",
           "until_past": "Indiquez une date postérieure à aujourd'hui",
           "decided": "Une décision a déjà été enregistrée pour cet utilisateur.",
           "undecided": "La revue ne peut pas être clôturée : une décision manque encore pour certains utilisateurs.",
           "unknown": "Cette revue d'accès n'existe pas (ou plus) dans ce CPAS.",
           "not_in": "Cet utilisateur ne fait pas partie de cette revue d'accès.", "choose": "Choisissez une décision.",
           "required": "Ce champ est obligatoire."},
    "nl": {"past": "De uiterste datum kan niet in het verleden liggen.", "open": "Er loopt al een toegangsreview",
           "no_until": "Geef de datum tot wanneer de toegang behouden blijft.",
           "until_past": "Geef een datum na vandaag",
           "decided": "Voor deze gebruiker werd al een beslissing geregistreerd.",
           "undecided": "De review kan niet worden afgesloten: voor sommige gebruikers ontbreekt nog een beslissing.",
           "unknown": "Deze toegangsreview bestaat niet (meer) in dit OCMW.",
           "not_in": "Deze gebruiker maakt geen deel uit van deze toegangsreview.", "choose": "Kies een beslissing.",
           "required": "Dit veld is verplicht."},
}


def test_refusals_are_told_in_the_readers_language(manager: Web, demo: dict[str, Any], service: Any,
                                                    lang: str) -> None:
    t, cpas = REFUSED[lang], demo["cpas"]
    reviews = f"/ui/cpas/{cpas}/reviews"
    past = manager.post(reviews, {"due": (today(service) - timedelta(days=1)).isoformat()})
    assert past.status_code == 400 and t["past"] in page(past)
    empty = manager.post(reviews, {"due": ""})
    assert empty.status_code == 400 and t["required"] in page(empty)
    garbled = manager.post(reviews, {"due": "31/02/2027"})
    assert garbled.status_code == 400 and "Not a valid" not in page(garbled)

    review_id = start(service, cpas)
    again = manager.post(reviews, {"due": (today(service) + timedelta(days=3)).isoformat()})
    assert again.status_code == 409 and t["open"] in page(again)
    base = f"{reviews}/{review_id}"

    for form, expected, status in (
        ({"decision": "keep_until"}, t["no_until"], 400),
        ({"decision": "keep_until", "until": today(service).isoformat()}, t["until_past"], 400),
        ({"decision": "maybe"}, t["choose"], 400),
        ({}, t["choose"], 400),
    ):
        response = manager.post(f"{base}/items/{LUC}", form)
        html = page(response)
        assert response.status_code == status and expected in html, (form, html[:3000])
        assert "Not a valid" not in html
    assert manager.post(f"{base}/items/{LUC}", {"decision": "keep"}).status_code == 303
    twice = manager.post(f"{base}/items/{LUC}", {"decision": "keep"})
    assert twice.status_code == 409 and t["decided"] in page(twice)
    outsider = manager.post(f"{base}/items/00000000097", {"decision": "keep"})
    assert outsider.status_code == 404 and t["not_in"] in page(outsider)

    early = manager.post(f"{base}/close", {"confirm": "1"})
    assert early.status_code == 303 and t["undecided"] in manager.text(base)
    assert detail(service, cpas, review_id).summary.closed_at is None

    missing = manager.get(f"{reviews}/99999")
    assert missing.status_code == 404 and t["unknown"] in page(missing)
    assert manager.get(f"{reviews}/99999/print").status_code == 404


# -- overdue, the home page, the overview ---------------------------------------------------------------------------
def test_overdue_is_flagged_on_home_and_in_the_overview(web: Web, demo: dict[str, Any], service: Any) -> None:
    cpas = demo["cpas"]
    review_id = start(service, cpas, days=5)
    later(service, 10)  # the due date has passed
    web.login("gestionnaire")
    home = web.text(f"/ui/cpas/{cpas}/")
    assert "La revue d'accès de ce CPAS est en retard" in home and f"/reviews/{review_id}" in home
    assert "En retard" in web.text(f"/ui/cpas/{cpas}/reviews/{review_id}")
    mine = web.text("/ui/reviews")  # a manager sees the overview of the CPAS they manage
    assert cpas in mine and OTHER_CPAS not in mine

    other = Web(web.client.application.test_client())
    other.login("operateur")
    html = other.text("/ui/reviews")
    assert cpas in html and OTHER_CPAS in html
    row = html.split(cpas, 1)[1].split("</tr>", 1)[0]
    assert "En retard" in row and "0 / " in row
    assert "1 en retard" in html

    # closed: up to date, with when it was closed, until the interval runs out
    decide_all(service, cpas, review_id)
    service.change("admin:someone", Admin.close_review, cpas, review_id)
    html = other.text("/ui/reviews")
    row = html.split(cpas, 1)[1].split("</tr>", 1)[0]
    assert "À jour" in row and "Jamais" not in row
    assert "en retard" not in web.text(f"/ui/cpas/{cpas}/")
    later(service, 10 + 400)
    html = other.text("/ui/reviews")
    assert "En retard" in html.split(cpas, 1)[1].split("</tr>", 1)[0]
    assert "Une revue d'accès de ce CPAS est en retard." in web.text(f"/ui/cpas/{cpas}/")


# -- access and CSRF ---------------------------------------------------------------------------------------------
def test_only_the_cpas_managers_and_operators_see_its_reviews(web: Web, demo: dict[str, Any], service: Any) -> None:
    cpas = demo["cpas"]
    review_id = start(service, cpas)
    web.login("autre")  # manages another CPAS
    for url in (f"/ui/cpas/{cpas}/reviews", f"/ui/cpas/{cpas}/reviews/{review_id}",
                f"/ui/cpas/{cpas}/reviews/{review_id}/print", f"/ui/cpas/{cpas}/reviews/{review_id}/close"):
        assert web.get(url).status_code == 403, url
    web.get("/ui/cpas")
    assert web.post(f"/ui/cpas/{cpas}/reviews/{review_id}/items/{LUC}", {"decision": "keep"}).status_code == 403
    assert web.post(f"/ui/cpas/{cpas}/reviews/{review_id}/close", {"confirm": "1"}).status_code == 403
    assert "Accès refusé" in page(web.get(f"/ui/cpas/{cpas}/reviews"))
    assert detail(service, cpas, review_id).summary.decided == 0

    operator = Web(web.client.application.test_client())
    operator.login("operateur")
    assert operator.get(f"/ui/cpas/{cpas}/reviews/{review_id}").status_code == 200


def test_every_review_form_needs_its_csrf_token(fr_manager: Web, demo: dict[str, Any], service: Any) -> None:
    cpas = demo["cpas"]
    due = (today(service) + timedelta(days=3)).isoformat()
    refused = fr_manager.post(f"/ui/cpas/{cpas}/reviews", {"due": due}, csrf=False)
    assert refused.status_code == 400 and "Formulaire expiré" in page(refused)
    assert service.read(lambda s: s.open_review(cpas)) is None
    review_id = start(service, cpas)
    base = f"/ui/cpas/{cpas}/reviews/{review_id}"
    for url, form in ((f"{base}/items/{LUC}", {"decision": "keep"}), (f"{base}/close", {"confirm": "1"})):
        response = fr_manager.post(url, form, csrf=False)
        assert response.status_code == 400, url
    assert detail(service, cpas, review_id).summary.decided == 0
