"""Time-bound assignments in the admin UI (issue 14), in French and Dutch, through the Flask test client, with
the service's clock injected (``engine.wall``: the instant the engine decides at and the pages show as now):
an end date set on "Affecter les profils" (previewed, then confirmed), shown pre-filled, in the users list,
the print views and the preview, cleared; the dates refused (past end, end before start, not a date); an
ended assignment shown as ended; the list of assignments ending within 30 days."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from authz_service.admin import Admin
from authz_service.terms import Assignment, Term, brussels_day, end_of, start_of

from ..clock import Clock
from .conftest import Web, page

LUC = "75081815365"  # no profile
JULIE = "89013122245"  # no profile
MARIE = "85073003328"  # "Full"

WORDS = {
    "fr": {"until": "jusqu'au {} inclus", "ended": "terminée le {}", "span": "du {} au {} inclus",
           "label": "jusqu'au (inclus)", "past": "Cette date de fin est passée",
           "before": "La date de fin précède la date de début.", "bad": "Cette date n'est pas valable",
           "preview": "Aperçu des changements", "after": "Profils après la modification",
           "ending": "Affectations qui se terminent dans les 30 jours", "none": "Aucune affectation ne se termine",
           "dormant": "Profils affectés qui ne donnent pas accès en ce moment",
           "assigned": "Affecté jusqu'au {} inclus"},
    "nl": {"until": "tot en met {}", "ended": "beëindigd op {}", "span": "van {} tot en met {}",
           "label": "tot en met", "past": "Deze einddatum ligt in het verleden",
           "before": "De einddatum ligt vóór de begindatum.", "bad": "Deze datum is ongeldig",
           "preview": "Overzicht van de wijzigingen", "after": "Profielen na de wijziging",
           "ending": "Toekenningen die binnen 30 dagen aflopen", "none": "Geen enkele toekenning loopt",
           "dormant": "Toegekende profielen die nu geen toegang geven", "assigned": "Toegekend tot en met {}"},
}


@pytest.fixture
def clock(service: Any) -> Clock:
    # noon in Brussels today: the days ahead and behind are whole days whatever the hour the tests run
    today = brussels_day(datetime.now(UTC))
    return Clock(start_of(today) + timedelta(hours=12)).attach(service)


def shown(day: date) -> str:
    return day.strftime("%d/%m/%Y")


def assign_url(cpas: str, user: str) -> str:
    return f"/ui/cpas/{cpas}/users/{user}/profiles"


def audits(service: Any, cpas: str, action: str = "user.assign") -> int:
    return len([e for e in service.read(lambda s: s.audit_page(cpas, page=1, per_page=500)[0]) if e.action == action])


def terms_of(service: Any, cpas: str, user: str) -> dict[int, Term]:
    return dict(service.read(lambda s: s.user_terms(cpas, user)))


def hidden(html: str) -> list[tuple[str, str]]:
    form = html[html.index('class="card preview-actions"'):]
    return [(n, v) for n, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form)
            if n != "csrf_token"]


def test_an_end_date_is_previewed_saved_shown_and_cleared(manager: Web, demo: dict[str, Any], service: Any,
                                                          lang: str, clock: Clock) -> None:
    cpas, full = demo["cpas"], demo["profiles"]["full"]
    words = WORDS[lang]
    last = clock.today + timedelta(days=20)
    form = manager.text(assign_url(cpas, LUC))
    assert words["label"] in form and f'name="until-{full}"' in form and 'type="date"' in form

    # the preview: what changes now, and the profiles after the change with their end
    preview = manager.post(assign_url(cpas, LUC), {"profiles": full, f"until-{full}": last.isoformat(),
                                                   "back": f"/ui/cpas/{cpas}/?q=luc"})
    text = page(preview)
    assert preview.status_code == 200 and words["preview"] in text and words["after"] in text
    assert words["until"].format(shown(last)) in text
    fields = hidden(text)
    assert fields == [("profiles", str(full)), (f"until-{full}", last.isoformat()), ("back", f"/ui/cpas/{cpas}/?q=luc")]
    assert service.read(lambda s: s.user_profiles(cpas, LUC)) == []  # not yet
    # back to the form: the date kept
    again = page(manager.post(assign_url(cpas, LUC), [*fields, ("action", "edit")]))
    assert f'value="{last.isoformat()}"' in again and "data-unsaved" in again
    # confirmed: the term ends at midnight after the last day, Brussels time
    done = manager.post(assign_url(cpas, LUC), [*fields, ("confirm", "1")])
    assert done.status_code == 303 and done.headers["Location"] == f"/ui/cpas/{cpas}/?q=luc"
    assert terms_of(service, cpas, LUC) == {full: Term.of(None, end_of(last))}
    assert service.policy(cpas).allows(LUC, "dossier.search")

    # shown: the users list, the form pre-filled, the user's print view, the profile's print view
    assert words["until"].format(shown(last)) in manager.text(f"/ui/cpas/{cpas}/?q=luc")
    form = manager.text(assign_url(cpas, LUC))
    assert re.search(rf'name="until-{full}" value="{last.isoformat()}"', form)
    assert words["until"].format(shown(last)) in form
    assert words["assigned"].format(shown(last)) in manager.text(f"/ui/cpas/{cpas}/users/{LUC}/print")
    assert words["until"].format(shown(last)) in manager.text(f"/ui/cpas/{cpas}/profiles/{full}/print")

    # saved again unchanged (as the form comes pre-filled): nothing written
    entries = audits(service, cpas)
    saved = manager.post(assign_url(cpas, LUC), {"profiles": full, f"from-{full}": "",
                                                 f"until-{full}": last.isoformat(), "confirm": "1"})
    assert saved.status_code == 303 and audits(service, cpas) == entries

    # cleared: no bound any more
    manager.post(assign_url(cpas, LUC), {"profiles": full, f"until-{full}": "", "confirm": "1"})
    assert terms_of(service, cpas, LUC) == {}
    assert service.read(lambda s: s.user_profiles(cpas, LUC)) == [full]
    assert audits(service, cpas) == entries + 1
    assert words["until"].format(shown(last)) not in manager.text(f"/ui/cpas/{cpas}/?q=luc")


def test_a_start_date_and_the_dates_refused(manager: Web, demo: dict[str, Any], service: Any, lang: str,
                                           clock: Clock) -> None:
    cpas, full, rmc = demo["cpas"], demo["profiles"]["full"], demo["profiles"]["rmc1"]
    words = WORDS[lang]
    manager.text(assign_url(cpas, LUC))
    yesterday = (clock.today - timedelta(days=1)).isoformat()
    for dates, message in (({f"until-{full}": yesterday}, words["past"]),
                           ({f"from-{full}": (clock.today + timedelta(days=9)).isoformat(),
                             f"until-{full}": (clock.today + timedelta(days=5)).isoformat()}, words["before"]),
                           ({f"until-{full}": "2027-02-30"}, words["bad"]),
                           ({f"until-{full}": "demain"}, words["bad"])):
        for confirm in ({}, {"confirm": "1"}):
            refused = manager.post(assign_url(cpas, LUC), {"profiles": [full, rmc], **dates, **confirm})
            text = page(refused)
            assert refused.status_code == 400 and message in text, (dates, confirm)
            assert 'aria-invalid="true"' in text and re.search(rf'value="{rmc}" checked', text)
            assert all(f'value="{v}"' in text for v in dates.values())  # what was typed, kept
    assert service.read(lambda s: s.user_profiles(cpas, LUC)) == []
    # the dates of a profile left unticked are ignored; today is a valid last day
    manager.post(assign_url(cpas, LUC), {"profiles": rmc, f"until-{full}": yesterday,
                                         f"until-{rmc}": clock.today.isoformat(), "confirm": "1"})
    assert terms_of(service, cpas, LUC) == {rmc: Term.of(None, end_of(clock.today))}

    # a start later: shown with both days, and nothing granted before it
    start, last = clock.today + timedelta(days=3), clock.today + timedelta(days=40)
    manager.post(assign_url(cpas, LUC), {"profiles": full, f"from-{full}": start.isoformat(),
                                         f"until-{full}": last.isoformat(), "confirm": "1"})
    assert terms_of(service, cpas, LUC) == {full: Term.of(start_of(start), end_of(last))}
    assert words["span"].format(shown(start), shown(last)) in manager.text(f"/ui/cpas/{cpas}/?q=luc")
    assert not service.policy(cpas).allows(LUC, "dossier.search")
    clock.advance(days=3)
    assert service.policy(cpas).allows(LUC, "dossier.search")
    assert words["until"].format(shown(last)) in manager.text(f"/ui/cpas/{cpas}/?q=luc")


def test_the_use_case_refusal_is_a_message(fr_manager: Web, demo: dict[str, Any], service: Any,
                                           clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    """Were the form to let an end before the start through, the use case's refusal (invalid_term) is told in
    the page's language, never a 500."""
    from authz_service.web import views

    cpas, full = demo["cpas"], demo["profiles"]["full"]
    bad = Assignment(full, end_of(clock.today), start_of(clock.today))

    def lenient(*args: Any) -> tuple[dict[int, Any], list[Any], bool]:
        return {}, [bad], True

    monkeypatch.setattr(views, "assignment_terms", lenient)
    fr_manager.text(assign_url(cpas, LUC))
    for confirm in ({}, {"confirm": "1"}):
        response = fr_manager.post(assign_url(cpas, LUC), {"profiles": full, **confirm})
        assert response.status_code == 303
        assert "La date de fin précède la date de début." in fr_manager.text(response.headers["Location"])
    assert service.read(lambda s: s.user_profiles(cpas, LUC)) == []


def test_an_ended_assignment_is_shown_as_ended(manager: Web, demo: dict[str, Any], service: Any, lang: str,
                                               clock: Clock) -> None:
    cpas, full, rmc = demo["cpas"], demo["profiles"]["full"], demo["profiles"]["rmc1"]
    words = WORDS[lang]
    last = clock.today + timedelta(days=1)
    service.change("test", Admin.set_user_profiles, cpas, LUC, [Assignment(full, None, end_of(last)), rmc])
    assert words["until"].format(shown(last)) in manager.text(f"/ui/cpas/{cpas}/?q=luc")
    clock.advance(days=2)  # the day after the last day: the assignment stays, it grants nothing
    assert service.policy(cpas).view(LUC).profiles == (rmc,)
    ended = words["ended"].format(shown(last))
    assert ended in manager.text(f"/ui/cpas/{cpas}/?q=luc")
    printed = manager.text(f"/ui/cpas/{cpas}/users/{LUC}/print")
    assert words["dormant"] in printed and ended in printed
    assert printed.count('class="profile-section"') == 1  # only the profile in force has its functions
    assert ended in manager.text(f"/ui/cpas/{cpas}/profiles/{full}/print")
    form = manager.text(assign_url(cpas, LUC))
    assert ended in form and re.search(rf'name="until-{full}" value="{last.isoformat()}"', form)
    # the page saved as it comes (the past end date unchanged) is accepted and writes nothing
    entries = audits(service, cpas)
    saved = manager.post(assign_url(cpas, LUC), {"profiles": [full, rmc], f"until-{full}": last.isoformat(),
                                                 "confirm": "1"})
    assert saved.status_code == 303 and audits(service, cpas) == entries
    # another past day is refused
    other = manager.post(assign_url(cpas, LUC), {"profiles": [full, rmc],
                                                 f"until-{full}": (last - timedelta(days=1)).isoformat()})
    assert other.status_code == 400 and words["past"] in page(other)


def test_the_assignments_ending_within_30_days(manager: Web, demo: dict[str, Any], service: Any, lang: str,
                                               clock: Clock) -> None:
    cpas, full, rmc = demo["cpas"], demo["profiles"]["full"], demo["profiles"]["rmc1"]
    words = WORDS[lang]
    empty = manager.text(f"/ui/cpas/{cpas}/assignments/ending")
    assert words["ending"] in empty and words["none"] in empty
    soon, later, far = (clock.today + timedelta(days=d) for d in (3, 20, 40))
    service.change("test", Admin.set_user_profiles, cpas, LUC, [Assignment(full, None, end_of(later))])
    service.change("test", Admin.set_user_profiles, cpas, JULIE, [Assignment(rmc, None, end_of(soon)),
                                                                  Assignment(full, None, end_of(far))])
    home = manager.text(f"/ui/cpas/{cpas}/")
    assert f'href="/ui/cpas/{cpas}/assignments/ending"' in home and f"{words['ending']} (2)" in home
    listed = manager.text(f"/ui/cpas/{cpas}/assignments/ending")
    assert listed.index(shown(soon)) < listed.index(shown(later))  # soonest first
    assert "Julie" in listed and "Luc LAMBERT" in listed and shown(far) not in listed
    assert f'href="/ui/cpas/{cpas}/users/{LUC}/profiles?back=/ui/cpas/{cpas}/assignments/ending"' in listed
    # 25 days on: the first two have ended, the third is within 30 days
    clock.advance(days=25)
    listed = manager.text(f"/ui/cpas/{cpas}/assignments/ending")
    assert shown(far) in listed and shown(soon) not in listed and shown(later) not in listed
    assert "Luc LAMBERT" not in listed
    # another CPAS's manager may not see it
    assert manager.get("/ui/cpas/0212345668/assignments/ending").status_code == 403


@pytest.mark.web_settings(trusted_proxies="10.0.0.0/8")
def test_my_access_shows_the_end_and_what_ended(app: Any, demo: dict[str, Any], service: Any, clock: Clock) -> None:
    """"Mes accès" of an agent signed in through the SSO proxy (Claire: director and clignotants)."""
    cpas, director, blink = demo["cpas"], demo["profiles"]["director"], demo["profiles"]["clignotants"]
    claire = "91012704692"
    soon, last = clock.today + timedelta(days=1), clock.today + timedelta(days=60)
    service.change("test", Admin.set_user_profiles, cpas, claire,
                   [Assignment(director, None, end_of(last)), Assignment(blink, None, end_of(soon))])
    client = Web(app.test_client())
    headers = {"X-Remote-User": claire, "X-Remote-Name": "Claire MARTIN", "X-Remote-Cpas": cpas,
               "X-Remote-Roles": "Agent social", "X-Remote-Lang": "nl"}
    env = {"REMOTE_ADDR": "10.1.2.3"}
    html = client.text(f"/ui/cpas/{cpas}/me", headers=headers, environ_base=env)
    assert WORDS["nl"]["assigned"].format(shown(last)) in html and html.count('class="profile-section"') == 2
    clock.advance(days=2)
    html = client.text(f"/ui/cpas/{cpas}/me", headers=headers, environ_base=env)
    assert html.count('class="profile-section"') == 1
    assert WORDS["nl"]["dormant"] in html and WORDS["nl"]["ended"].format(shown(soon)) in html
