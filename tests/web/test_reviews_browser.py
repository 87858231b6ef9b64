"""An access review clicked through in headless Chromium, in French and in Dutch: started from the menu with
a date picker, users decided (keep with a comment, keep until a date, revoke through "Aperçu des
changements"), signed off after its confirmation, printed on A4; then the operators' overview with an
overdue CPAS. Each page fits 375 and 1280 px and passes axe-core (``test_screens.check_screens``).

With AUTHZ_SCREENSHOTS=1 the screenshots go to docs/screenshots/ (``test_browser.shots``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from authz_service import reads
from authz_service.admin import Admin

from .conftest import LANG_ACCOUNT, OTHER_CPAS
from .test_browser import (  # noqa: F401  (fixtures)
    IN_CI,
    body,
    browser,
    browser_factory,
    click,
    click_and_load,
    css,
    live,
    login,
    shots,
)
from .test_screens import AXE_JS, BOTH, check_screens, pdf_pages

pytestmark = pytest.mark.slow

MARIE, ANNELIES, LUC = "85073003328", "96031220418", "75081815365"
DAY = 86400
WORDS = {
    "fr": {"menu": "Revues d'accès", "started": "La revue d'accès a été démarrée", "recorded":
           "La décision a été enregistrée.", "preview": "Aperçu des changements", "close": "Clôturer et signer",
           "closed": "La revue d'accès a été clôturée et signée.", "signed": "Signée par",
           "report": "Rapport de revue d'accès", "overview": "Revues d'accès de tous les CPAS",
           "overdue": "En retard", "keep_until": "Conserver jusqu'au"},
    "nl": {"menu": "Toegangsreviews", "started": "De toegangsreview werd gestart", "recorded":
           "De beslissing werd geregistreerd.", "preview": "Overzicht van de wijzigingen",
           "close": "Afsluiten en ondertekenen", "closed": "De toegangsreview werd afgesloten en ondertekend.",
           "signed": "Ondertekend door", "report": "Verslag van de toegangsreview",
           "overview": "Toegangsreviews van alle OCMW's", "overdue": "Achterstallig", "keep_until": "Behouden tot"},
}


def today(service: Any) -> Any:
    return service.now().astimezone(reads.local_zone()).date()


def item(driver: Any, user: str, selector: str) -> Any:
    return css(driver, f"li#u-{user} {selector}")


def decide(driver: Any, user: str, decision: str, *, comment: str = "", until: str = "") -> None:
    click(driver, item(driver, user, f"label[for$='-{decision}']"))
    if until:
        driver.execute_script("arguments[0].value = arguments[1]", item(driver, user, "input[type=date]"), until)
    if comment:
        item(driver, user, "input[name=comment]").send_keys(comment)
    click_and_load(driver, item(driver, user, "button[type=submit]"))


@pytest.mark.parametrize("lang", ["fr", "nl"])
def test_an_access_review_from_start_to_sign_off(browser: Any, live: str, demo: dict[str, Any], service: Any,  # noqa: F811
                                                 shots: Callable[[Any, str], None], lang: str) -> None:  # noqa: F811
    if not AXE_JS.is_file():
        if IN_CI:
            pytest.fail(f"axe-core is not installed ({AXE_JS})")
        pytest.skip(f"axe-core is not installed ({AXE_JS}): run `make test`")
    driver, t, cpas = browser, WORDS[lang], demo["cpas"]
    login(driver, live, LANG_ACCOUNT[lang])

    # from the menu to the reviews, a date picked, the review started
    click_and_load(driver, css(driver, "nav.mainnav a[href$='/reviews']"))
    assert css(driver, "h1").text == t["menu"]
    check_screens(driver, lang, "reviews, none yet", axe=BOTH)
    due = today(service) + timedelta(days=30)
    driver.execute_script("document.querySelector('#due').value = arguments[0]", due.isoformat())
    click_and_load(driver, css(driver, "form.start-review button[type=submit]"))
    assert t["started"] in body(driver)
    review_id = int(driver.current_url.rstrip("/").rsplit("/", 1)[1])
    assert driver.execute_script("return document.querySelector('#review-progress').value") == 0

    # keep with a comment, keep until a date, revoke after its preview
    decide(driver, ANNELIES, "keep", comment="Service social")
    assert t["recorded"] in body(driver) and driver.current_url.endswith(f"#u-{ANNELIES}")
    until = today(service) + timedelta(days=90)
    decide(driver, LUC, "keep_until", until=until.isoformat())
    assert f"{t['keep_until']} {until.strftime('%d/%m/%Y')}" in item(driver, LUC, ".decision").text
    held = service.read(lambda s: s.user_profiles(cpas, MARIE))
    decide(driver, MARIE, "revoke", comment="Départ")
    assert t["preview"] in body(driver) and "Marie LEBLANC" in body(driver)
    check_screens(driver, lang, "preview of a revoke")
    shots(driver, f"review-revoke-preview-{lang}")
    assert service.read(lambda s: s.user_profiles(cpas, MARIE)) == held
    click_and_load(driver, css(driver, "button[name=confirm]"))
    assert service.read(lambda s: s.user_profiles(cpas, MARIE)) == []
    assert "Départ" in item(driver, MARIE, ".comment").text
    check_screens(driver, lang, "a review being decided", axe=BOTH)
    shots(driver, f"review-{lang}")

    # the others kept; the sign-off asks first
    detail = service.read(lambda s: reads.review_detail(s, cpas, review_id))
    for row in detail.items:
        if row.decision is None:
            service.change("admin:someone", Admin.decide_review_item, cpas, review_id, row.user, "keep", None, None)
    driver.refresh()
    click_and_load(driver, css(driver, f"a[href$='/reviews/{review_id}/close']"))
    check_screens(driver, lang, "sign-off confirmation")
    click_and_load(driver, css(driver, ".confirm form button[type=submit]"))
    text = body(driver)
    assert t["closed"] in text and t["signed"] in text
    assert not driver.find_elements("css selector", "form.decide")
    check_screens(driver, lang, "a closed review")
    shots(driver, f"review-closed-{lang}")

    # the report, on A4
    click_and_load(driver, css(driver, f"a[href$='/reviews/{review_id}/print']"))
    assert css(driver, "h1").text == t["report"] and "Départ" in body(driver)
    check_screens(driver, lang, "review report")
    assert pdf_pages(driver) >= 1
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 717, "height": 1045, "deviceScaleFactor": 1, "mobile": False})
    try:
        wide = driver.execute_script("var e = document.documentElement; return [e.scrollWidth, e.clientWidth]")
        hidden = driver.execute_script("return getComputedStyle(document.querySelector('.topbar')).display")
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
    assert wide[0] <= wide[1], wide  # the report fits an A4 page's width
    assert hidden == "none"
    shots(driver, f"review-print-{lang}")

    # the operators' overview: another CPAS with a review past its due date
    service.change("admin:someone", Admin.start_review, OTHER_CPAS, today(service) + timedelta(days=1))
    service.engine.wall = lambda: time.time() + 3 * DAY
    driver.delete_all_cookies()
    login(driver, live, "operateur")
    if lang != "fr":
        click_and_load(driver, css(driver, f".lang-switch button[value='{lang}']"))
    driver.get(f"{live}/ui/cpas")
    click_and_load(driver, css(driver, "a[href$='/ui/reviews']"))
    assert css(driver, "h1").text == t["overview"]
    row = css(driver, "table.overview tr.overdue")
    assert OTHER_CPAS in row.text and t["overdue"] in row.text
    check_screens(driver, lang, "reviews overview", axe=BOTH)
    shots(driver, f"reviews-overview-{lang}")
