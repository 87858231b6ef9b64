"""Pages that work on every screen, in headless Chromium, in French and in Dutch: no page scrolls sideways
at 375 or 1280 px, axe-core finds no serious or critical accessibility problem, the profile form neither
saves on Enter nor lets a changed form be left without asking, the prerequisite warning shows next to the
box just ticked, and the print views list the manual's checklist and flow from page to page.

Time matters (the whole suite has a budget): the module starts one server and one Chromium, each language
signs in once, and each page is loaded once per language and checked at both widths by resizing.
"""

from __future__ import annotations

import base64
import functools
import math
import os
import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from authz_service import create_app
from authz_service.admin import Admin

from .conftest import LANG_ACCOUNT
from .test_browser import IN_CI, REPO, _driver, _problem, click, click_and_load, css, login, wait

pytestmark = pytest.mark.slow

WIDTHS = (1280, 375)
MARIE, LUC = "85073003328", "75081815365"
# a description of 200 characters without a space: it must wrap, not push the actions off the screen
LONG_FR = "Profil" + "sansespace" * 19 + "fini"
LONG_NL = "Profiel" + "zonderspatie" * 16 + "s"
assert len(LONG_FR) == len(LONG_NL) == 200
LONG_FUNCTIONS = ("dossier.search", "help_request.list", "mutation.mediprima.view")
A4_CONTENT = (717, 1045)  # CSS pixels inside the default margins of Page.printToPDF on A4
LEAVE = {"fr": "Vos modifications ne sont pas enregistrées. Quitter cette page sans les enregistrer ?",
         "nl": "Uw wijzigingen zijn niet opgeslagen. Deze pagina verlaten zonder ze op te slaan?"}
# axe-core from the npm registry (`make test` installs it in .venv/node; AUTHZ_TEST_AXE_JS names another copy)
AXE_JS = Path(os.environ.get("AUTHZ_TEST_AXE_JS") or REPO / ".venv/node/node_modules/axe-core/axe.min.js")
AXE_RUN = """const done = arguments[arguments.length - 1];
axe.run(document, {resultTypes: ["violations"]}).then(r => done(r.violations), e => done(String(e)));"""


@dataclass
class Site:
    base: str
    driver: Any
    service: Any
    cpas: str
    ids: dict[str, int]  # builtin, full, long: profile ids


@pytest.fixture(scope="module")
def site(web_template_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    problem = _problem()
    if not AXE_JS.is_file():
        problem = problem or f"axe-core is not installed ({AXE_JS}): run `make test`, which installs it with npm"
    if problem:
        if IN_CI:
            pytest.fail(f"the browser tests must run in CI: {problem}")
        pytest.skip(problem)
    from werkzeug.serving import make_server

    folder = tmp_path_factory.mktemp("screens")
    shutil.copyfile(web_template_db, folder / "authz.sqlite3")
    app = create_app({"database_url": f"sqlite:///{folder / 'authz.sqlite3'}", "poll_interval": 0,
                      "secret_key": "test-secret"}, start_polling=False)
    app.config["TESTING"] = True
    service = app.extensions["authz"]
    cpas = str(yaml.safe_load((REPO / "seed" / "demo.yaml").read_text(encoding="utf-8"))["cpas"]["cpas"])
    with service.admin("test") as admin:
        admin.create_profile(cpas, description_fr=LONG_FR, description_nl=LONG_NL, functions=list(LONG_FUNCTIONS))
    by_name = {p.description_fr: p.id for p in service.read(lambda s: s.profiles(cpas))}
    ids = {"builtin": service.read(lambda s: s.builtin_profile(cpas).id), "full": by_name["Full"],
           "long": by_name[LONG_FR]}
    with service.admin("test") as admin:
        admin.set_user_profiles(cpas, LUC, [ids["long"]])
    ids.update(_reviews(service, cpas))

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="screens-server", daemon=True)
    thread.start()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SE_OFFLINE", "true")  # Selenium Manager must never fetch a browser or driver
        driver = _driver(folder)
    try:
        yield Site(f"http://127.0.0.1:{server.server_port}", driver, service, cpas, ids)
    finally:
        driver.quit()
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        service.close()


def _reviews(service: Any, cpas: str) -> dict[str, int]:
    """Access reviews (issue 14): one signed off, and one open with a user decided."""
    from datetime import timedelta

    from authz_service import reads

    due = service.now().astimezone(reads.local_zone()).date() + timedelta(days=30)
    with service.admin("test") as admin:
        closed = admin.start_review(cpas, due).summary.id
        for item in reads.review_detail(admin.store, cpas, closed).items:
            admin.decide_review_item(cpas, closed, item.user, "keep", None, "Toujours en fonction")
        admin.close_review(cpas, closed)
        opened = admin.start_review(cpas, due).summary.id
        admin.decide_review_item(cpas, opened, MARIE, "keep", None, LONG_FR)  # a long comment wraps
    return {"review_closed": closed, "review_open": opened}


@pytest.fixture(scope="module", params=["fr", "nl"])
def lang(request: pytest.FixtureRequest, site: Site) -> str:
    """The module's browser signed in as the manager whose account speaks this language."""
    site.driver.delete_all_cookies()
    login(site.driver, site.base, LANG_ACCOUNT[request.param])
    return str(request.param)


# -- helpers -------------------------------------------------------------------------------------------------
def url(site: Site, path: str) -> str:
    return site.base + path.format(cpas=site.cpas, marie=MARIE, luc=LUC, **site.ids)


def axe_problems(driver: Any) -> list[str]:
    """axe-core's serious and critical violations on the page shown."""
    if not driver.execute_script("return typeof axe !== 'undefined'"):
        driver.execute_script(_axe_source())
    driver.set_script_timeout(30)
    violations = driver.execute_async_script(AXE_RUN)
    assert isinstance(violations, list), f"axe-core failed: {violations}"
    return [f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes'][:3]]}"
            for v in violations if v["impact"] in ("serious", "critical")]


@functools.cache
def _axe_source() -> str:
    return AXE_JS.read_text(encoding="utf-8")


def check_screens(driver: Any, lang: str, label: str, *, axe: tuple[int, ...] = (WIDTHS[0],)) -> None:
    """This page at each width: nothing wider than the window; and at the widths in ``axe``, no serious or
    critical accessibility problem."""
    assert driver.execute_script("return document.documentElement.lang") == lang, label
    for width in WIDTHS:
        driver.set_window_size(width, 900)
        scroll, inner, client = driver.execute_script(
            "var e = document.documentElement; return [e.scrollWidth, window.innerWidth, e.clientWidth]")
        # clientWidth leaves out the vertical scroll bar: stricter than innerWidth, which counts it
        assert scroll <= client <= inner, f"{label} at {width} px scrolls sideways: {scroll} > {client}"
        if width in axe:
            problems = axe_problems(driver)
            assert not problems, f"{label} at {width} px:\n" + "\n".join(problems)
    driver.set_window_size(WIDTHS[0], 900)


def discard_changes(driver: Any) -> None:
    """Put the guarded forms back as loaded, so that the next page loads without a "leave?" prompt."""
    driver.execute_script("document.querySelectorAll('form[data-warn-unsaved]').forEach(function (f) {"
                          " f.reset(); f.removeAttribute('data-unsaved'); })")


def rect(driver: Any, selector: str) -> dict[str, float]:
    return dict(driver.execute_script(
        "var r = document.querySelector(arguments[0]).getBoundingClientRect();"
        "return {left: r.left, right: r.right, top: r.top, bottom: r.bottom}", selector))


def pdf_pages(driver: Any) -> int:
    pdf = base64.b64decode(driver.execute_cdp_cmd("Page.printToPDF", {"paperWidth": 8.27, "paperHeight": 11.69})
                           ["data"])
    return len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf))


def printed_height(driver: Any) -> float:
    """The height of the page laid out for print at the width of an A4 page's content."""
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    width, height = A4_CONTENT
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
    try:
        return float(driver.execute_script("return document.querySelector('main').getBoundingClientRect().height"))
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})


# -- every page, both widths, axe ------------------------------------------------------------------------------
# every page, and at which widths axe checks it: each template once at 1280 px (a run takes 0.1 to 1.3 s),
# the tables that become cards on a phone at 375 px too; a second page of a template (another profile's
# form or print view) is checked for its width only
BOTH = WIDTHS
PAGES: list[tuple[str, tuple[int, ...]]] = [
    ("/ui/cpas", (1280,)),
    ("/ui/cpas/{cpas}/", BOTH),
    ("/ui/cpas/{cpas}/users/inactive", BOTH),
    ("/ui/cpas/{cpas}/profiles/new", (1280,)),
    ("/ui/cpas/{cpas}/profiles/{builtin}", (1280,)),
    ("/ui/cpas/{cpas}/profiles/{full}", ()),
    ("/ui/cpas/{cpas}/profiles/{long}", ()),
    ("/ui/cpas/{cpas}/profiles/{long}/print", (1280,)),
    ("/ui/cpas/{cpas}/profiles/{long}/print?compact=1", ()),
    ("/ui/cpas/{cpas}/profiles/{builtin}/print", ()),
    ("/ui/cpas/{cpas}/profiles/{long}/delete", (1280,)),
    ("/ui/cpas/{cpas}/profiles/{builtin}/delete", (1280,)),
    ("/ui/cpas/{cpas}/users/{luc}/profiles", (1280,)),
    ("/ui/cpas/{cpas}/users/{luc}/print", (1280,)),
    ("/ui/cpas/{cpas}/users/{marie}/print", ()),
    ("/ui/cpas/{cpas}/users/{marie}/deactivate", (1280,)),
    ("/ui/cpas/{cpas}/me", (1280,)),
    ("/ui/cpas/{cpas}/audit", BOTH),
    ("/ui/cpas/{cpas}/assignments/ending", BOTH),  # time-bound assignments (issue 14)
    ("/ui/cpas/{cpas}/no-such-page", (1280,)),
    # access reviews (issue 14)
    ("/ui/cpas/{cpas}/reviews", BOTH),
    ("/ui/cpas/{cpas}/reviews/{review_open}", BOTH),
    ("/ui/cpas/{cpas}/reviews/{review_open}/close", (1280,)),
    ("/ui/cpas/{cpas}/reviews/{review_closed}", ()),
    ("/ui/cpas/{cpas}/reviews/{review_closed}/print", BOTH),
    ("/ui/reviews", BOTH),
]


def test_every_page_fits_both_widths_and_passes_axe(site: Site, lang: str) -> None:
    driver = site.driver
    # signed out: the login page, in this language
    driver.delete_all_cookies()
    driver.get(url(site, "/ui/login"))
    if lang != "fr":
        click_and_load(driver, css(driver, f".lang-switch button[value='{lang}']"))
    check_screens(driver, lang, "/ui/login")
    login(driver, site.base, LANG_ACCOUNT[lang])

    for path, axe in PAGES:
        driver.get(url(site, path))
        if "/audit" in path:  # the before/after of each entry, shown
            driver.execute_script("document.querySelectorAll('details').forEach(function (d) { d.open = true; })")
        check_screens(driver, lang, path, axe=axe)
        if path == "/ui/cpas/{cpas}/":  # the long description wraps: every action stays on the screen
            for width in WIDTHS:
                driver.set_window_size(width, 900)
                rights = driver.execute_script(
                    "return Array.from(document.querySelectorAll('td.actions a, td.actions button'))"
                    ".map(function (a) { return a.getBoundingClientRect().right; })")
                client = driver.execute_script("return document.documentElement.clientWidth")
                assert rights and max(rights) <= client, (width, max(rights), client)
            driver.set_window_size(WIDTHS[0], 900)


def test_the_builtin_profile_shows_its_first_function_in_place(site: Site, lang: str) -> None:
    driver = site.driver
    for path, box, first in (("/ui/cpas/{cpas}/profiles/{builtin}", "fieldset.functions", "fieldset.functions li.fn"),
                             ("/ui/cpas/{cpas}/profiles/{builtin}/print", "article.printable",
                              "article.printable .print-function")):
        driver.get(url(site, path))
        for width in WIDTHS:
            driver.set_window_size(width, 900)
            outer, item = rect(driver, box), rect(driver, first)
            assert outer["left"] <= item["left"] and item["right"] <= outer["right"], (path, width, outer, item)
            # under the legend or heading, not beside it
            assert item["left"] - outer["left"] < 80, (path, width, outer, item)
        driver.set_window_size(WIDTHS[0], 900)


# -- the profile form ------------------------------------------------------------------------------------------
def test_enter_in_a_text_field_does_not_save(site: Site, lang: str) -> None:
    from selenium.webdriver.common.keys import Keys

    driver = site.driver
    driver.get(url(site, "/ui/cpas/{cpas}/profiles/new"))
    driver.execute_script("window.__submitted = false; document.querySelector('form[data-profile-form]')"
                          ".addEventListener('submit', function () { window.__submitted = true; })")
    name = f"Entrée {lang}"
    css(driver, "#description_fr").send_keys(name, Keys.ENTER)
    css(driver, "#description_nl").send_keys(name, Keys.ENTER)
    assert driver.execute_script("return window.__submitted") is False
    assert css(driver, "#description_fr").get_attribute("value") == name
    profiles = site.service.read(lambda s: s.profiles(site.cpas))
    assert not any(name in (p.description_fr, p.description_nl) for p in profiles)
    discard_changes(driver)


def leaving_asks(driver: Any) -> bool:
    """Whether leaving now gets the browser's "leave this page?" prompt: whether the page cancels
    beforeunload. (WebDriver answers a real beforeunload prompt itself, so a test cannot see the prompt.)"""
    return bool(driver.execute_script(
        "var e = new Event('beforeunload', {cancelable: true}); window.dispatchEvent(e); return e.defaultPrevented"))


def test_leaving_a_changed_form_asks_first(site: Site, lang: str) -> None:
    from selenium.webdriver.support import expected_conditions as ec

    driver = site.driver
    page = url(site, "/ui/cpas/{cpas}/profiles/{full}")
    driver.get(page)
    assert not leaving_asks(driver)
    field = css(driver, "#description_fr")
    field.send_keys(" modifié")
    assert leaving_asks(driver)  # a menu link, a bookmark, closing the tab...

    # the language switch (a form that posts): a question in the page's language; staying keeps the edit
    other = "nl" if lang == "fr" else "fr"
    click(driver, css(driver, f".lang-switch button[value='{other}']"))
    alert = wait(driver, ec.alert_is_present(), 5)
    assert alert.text == LEAVE[lang]
    alert.dismiss()
    assert driver.current_url == page and driver.execute_script("return document.documentElement.lang") == lang
    assert field.get_attribute("value") == "Full modifié"

    # a ticked box counts too; back to what was loaded, nothing asks and the menu link just leaves
    discard_changes(driver)
    click(driver, css(driver, "label[for='f-forms.list']"))
    assert leaving_asks(driver)
    discard_changes(driver)
    assert not leaving_asks(driver)
    click_and_load(driver, css(driver, "nav.mainnav a[href$='/audit']"))
    assert driver.current_url.endswith("/audit")
    assert site.service.read(lambda s: [p.description_fr for p in s.profiles(site.cpas) if p.id == site.ids["full"]]) \
        == ["Full"]


def test_the_prerequisite_warning_shows_next_to_the_box_just_ticked(site: Site, lang: str) -> None:
    driver = site.driver
    driver.get(url(site, "/ui/cpas/{cpas}/profiles/new"))
    click(driver, css(driver, "[data-expand]"))
    click(driver, css(driver, "label[for='f-help_request.list']"))  # needs dossier.search, far above
    warning = css(driver, "#prereq-warning")
    assert warning.is_displayed()
    box, note = rect(driver, "#f-help_request\\.list"), rect(driver, "#prereq-warning")
    height = driver.execute_script("return window.innerHeight")
    assert 0 <= note["top"] < height, (note, height)  # in view
    assert 0 <= note["top"] - box["bottom"] < 120, (box, note)  # right under the box
    click(driver, css(driver, "[data-add-prerequisites]"))
    assert not warning.is_displayed()
    assert driver.execute_script("return document.getElementById('f-dossier.search').checked") is True
    discard_changes(driver)


# -- print views -----------------------------------------------------------------------------------------------
def test_the_profile_print_lists_every_function_with_its_box(site: Site, lang: str) -> None:
    driver = site.driver
    catalog = site.service.catalog
    driver.get(url(site, "/ui/cpas/{cpas}/profiles/{long}/print"))
    marks = driver.execute_script(
        "return Array.from(document.querySelectorAll('.print-function > .tick')).map(function (t) {"
        " return t.textContent.trim(); })")
    assert len(marks) == len(catalog.selectable)
    assert marks.count("☒") == len(LONG_FUNCTIONS) and marks.count("☐") == len(catalog.selectable) - len(LONG_FUNCTIONS)

    click_and_load(driver, css(driver, ".print-options a"))  # compact: the ticked ones only
    assert driver.current_url.endswith("compact=1")
    marks = driver.execute_script(
        "return Array.from(document.querySelectorAll('.print-function > .tick')).map(function (t) {"
        " return t.textContent.trim(); })")
    assert marks == ["☒"] * len(LONG_FUNCTIONS)
    click_and_load(driver, css(driver, ".print-options a"))
    assert "compact" not in driver.current_url


def test_printed_blocks_flow_from_page_to_page(site: Site, lang: str) -> None:
    """"Tous les accès" and a user's print took 8 and 9 A4 pages, each block starting a new page (and the
    user's first page held only the header): now they take the pages their length needs."""
    driver = site.driver
    for path in ("/ui/cpas/{cpas}/profiles/{builtin}/print", "/ui/cpas/{cpas}/users/{marie}/print"):
        driver.get(url(site, path))
        pages = pdf_pages(driver)
        needed = math.ceil(printed_height(driver) / A4_CONTENT[1])
        assert 1 < pages <= needed + 1, (path, pages, needed)


# -- the users list and the Admin-Logs as a manager reads them ----------------------------------------------
RENARD = "77070619530"  # inactive in the demo
FOUND = {"fr": ("choisissez maintenant ses profils", "compte d'administration", "Profils retirés",
                "Données brutes (avant et après)"),
         "nl": ("kies nu de profielen", "beheerdersaccount", "Profielen ingetrokken",
                "Ruwe gegevens (voor en na)")}


def test_search_reactivation_and_admin_logs_read_as_a_manager_expects(site: Site, lang: str) -> None:
    driver = site.driver
    from .test_browser import body, xpath

    # the users list finds a name whatever the order of its words
    driver.get(url(site, "/ui/cpas/{cpas}/?q=LEBLANC%20marie"))
    assert "Marie LEBLANC" in body(driver)
    # a reactivated user leads on to choosing their profiles
    driver.get(url(site, "/ui/cpas/{cpas}/users/inactive"))
    click_and_load(driver, xpath(driver, "//tr[th[contains(., 'Michel RENARD')]]//button"))
    assert f"/users/{RENARD}/profiles" in driver.current_url
    assert FOUND[lang][0] in body(driver)
    # and the log says who did what in words, with the profiles by name, the raw data folded away
    site.service.change("admin:someone", Admin.deactivate_user, site.cpas, LUC)  # Luc held the long profile
    driver.get(url(site, "/ui/cpas/{cpas}/audit"))
    text = body(driver)
    assert "Michel RENARD" in text and FOUND[lang][1] in text and FOUND[lang][2] in text
    assert (LONG_FR if lang == "fr" else LONG_NL)[:40] in text
    raw = xpath(driver, f"//summary[normalize-space()='{FOUND[lang][3]}']")
    assert not raw.find_element("xpath", "..").get_attribute("open")
    check_screens(driver, lang, "admin logs after the changes")
    # saving the profiles a user holds, unchanged, writes no entry
    entries = site.service.read(lambda s: s.audit_page(site.cpas, page=1, per_page=1)[1])
    driver.get(url(site, "/ui/cpas/{cpas}/users/{marie}/profiles"))
    click_and_load(driver, css(driver, "form[data-warn-unsaved] button[type=submit].primary"))
    click_and_load(driver, css(driver, "form[data-warn-unsaved] button[name=confirm]"))  # after its preview
    assert site.service.read(lambda s: s.audit_page(site.cpas, page=1, per_page=1)[1]) == entries
    # the author filter matches the whole author: a part of one finds nothing
    driver.get(url(site, "/ui/cpas/{cpas}/audit"))
    field = css(driver, "#actor")
    field.send_keys("seed-demo")
    click_and_load(driver, css(driver, "form.filters button[type=submit]"))
    assert "actor=seed-demo" in driver.current_url
    assert not driver.find_elements("css selector", 'td span[title="cli:seed-demo"]')
    field = css(driver, "#actor")
    field.clear()
    field.send_keys("cli:seed-demo")
    click_and_load(driver, css(driver, "form.filters button[type=submit]"))
    assert driver.find_elements("css selector", 'td span[title="cli:seed-demo"]')
    # the CSV, as the browser downloads it: UTF-8 with a byte-order mark, semicolons, headers in words
    driver.set_script_timeout(10)
    first = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(document.querySelector('a[download]').href.replace(/actor=[^&]*&?/, ''))"
        ".then(r => r.arrayBuffer()).then(b => done(Array.from(new Uint8Array(b.slice(0, 400)))));")
    head = bytes(first)
    assert head.startswith("\ufeff".encode())
    header = head.decode("utf-8-sig", errors="ignore").splitlines()[0].split(";")
    assert header[:3] == (["Quand", "Qui", "Action"] if lang == "fr" else ["Wanneer", "Wie", "Actie"])
    # as it was for the other tests
    site.service.change("test", Admin.deactivate_user, site.cpas, RENARD)
    site.service.change("test", Admin.reactivate_user, site.cpas, LUC)
    site.service.change("test", Admin.set_user_profiles, site.cpas, LUC, [site.ids["long"]])


# -- the preview of a change ("Aperçu des changements") -------------------------------------------------------
PREVIEW = {"fr": ("Aperçu des changements", "Ne pourra plus utiliser", "Pourra utiliser", "a été enregistré"),
           "nl": ("Overzicht van de wijzigingen", "Zal niet meer kunnen gebruiken", "Zal kunnen gebruiken",
                  "werd opgeslagen")}


def test_a_change_is_previewed_then_confirmed(site: Site, lang: str) -> None:
    """The long profile without "Recherche d'un dossier", saved anyway: its preview says what Luc loses and
    what stays granted but unusable; back to the form, the choices are kept; saved again and confirmed. Then
    an assignment, previewed and confirmed. Each preview fits both widths and passes axe."""
    from .test_browser import body

    driver, service, cpas = site.driver, site.service, site.cpas
    title, loses, gains, saved = PREVIEW[lang]
    driver.get(url(site, "/ui/cpas/{cpas}/profiles/{long}"))
    click(driver, css(driver, "[data-expand]"))
    click(driver, css(driver, "label[for='f-dossier.search']"))
    for attempt in ("first", "again"):
        click_and_load(driver, css(driver, ".form-actions button[value=save]"))
        click_and_load(driver, css(driver, "button[value=save_anyway]"))  # the prerequisite, left out on purpose
        text = body(driver)
        assert title in text and loses in text and "Luc LAMBERT" in text, attempt
        assert driver.find_elements("css selector", ".impact-group .notice.warn")  # the list, now unusable
        if attempt == "first":
            check_screens(driver, lang, "preview of a profile save")
            click_and_load(driver, css(driver, "button[value=edit]"))  # back to the form, choices kept
            codes = set(driver.execute_script(
                "return Array.from(document.querySelectorAll('input[data-function]:checked')).map(e => e.value)"))
            assert codes == set(LONG_FUNCTIONS) - {"dossier.search"}
            assert css(driver, "#description_fr").get_attribute("value") == LONG_FR
    held = service.read(lambda s: set(s.profile_functions(cpas, site.ids["long"])))
    assert held == set(LONG_FUNCTIONS)  # previews change nothing
    click_and_load(driver, css(driver, "button[name=confirm]"))
    assert saved in body(driver)
    assert service.read(lambda s: set(s.profile_functions(cpas, site.ids["long"]))) == held - {"dossier.search"}

    # an assignment: Luc gets "Full" too
    driver.get(url(site, "/ui/cpas/{cpas}/users/{luc}/profiles"))
    click(driver, css(driver, f"label[for='p-{site.ids['full']}']"))
    click_and_load(driver, css(driver, "form[data-warn-unsaved] button[type=submit].primary"))
    assert title in body(driver) and gains in body(driver)
    check_screens(driver, lang, "preview of an assignment")
    assert service.read(lambda s: s.user_profiles(cpas, LUC)) == [site.ids["long"]]
    click_and_load(driver, css(driver, "button[name=confirm]"))
    assert service.read(lambda s: s.user_profiles(cpas, LUC)) == sorted([site.ids["long"], site.ids["full"]])

    # as it was for the other tests
    version = service.read(lambda s: s.get_profile(cpas, site.ids["long"]).version)
    service.change("test", Admin.update_profile, cpas, site.ids["long"], version=version, description_fr=LONG_FR,
                   description_nl=LONG_NL, functions=list(LONG_FUNCTIONS), includes=None)
    service.change("test", Admin.set_user_profiles, cpas, LUC, [site.ids["long"]])


# -- who can use a function, who had access (issue 13) -----------------------------------------------------------
WHO = {"fr": ("Qui peut utiliser cette fonction ?", "Qui avait accès ?", ["Fonction", "Moment", "Nom"]),
       "nl": ("Wie mag deze functie gebruiken?", "Wie had toegang?", ["Functie", "Moment", "Naam"])}
SHOTS = os.environ.get("AUTHZ_TEST_SHOTS")  # a folder: the two pages' screenshots land there


def _shot(driver: Any, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(WIDTHS[0], min(int(height) + 40, 2400))
        driver.save_screenshot(str(Path(SHOTS) / name))
        driver.set_window_size(WIDTHS[0], 900)


def test_who_can_use_a_function_and_who_had_access(site: Site, lang: str) -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from selenium.webdriver.support.ui import Select

    driver = site.driver
    who_can, who_had, csv_head = WHO[lang]
    # from a function of the profile form's tree
    driver.get(url(site, "/ui/cpas/{cpas}/profiles/{full}"))
    link = css(driver, "li.fn a.who[href*='/functions/dossier.search/users']")
    assert who_can in link.get_attribute("textContent")
    driver.get(link.get_attribute("href"))
    assert css(driver, "h1").text == who_can
    assert driver.find_elements("xpath", "//table[contains(@class,'holders')]//th[contains(., 'Marie')]")
    check_screens(driver, lang, "who can use dossier.search", axe=BOTH)
    _shot(driver, f"who-can-{lang}.png")
    # the print view links each function too
    driver.get(url(site, "/ui/cpas/{cpas}/profiles/{full}/print"))
    assert driver.find_elements("css selector", ".print-function a.who[href*='/functions/']")

    # from the Admin-Logs: who had access, a minute ago in Brussels
    driver.get(url(site, "/ui/cpas/{cpas}/audit"))
    click_and_load(driver, css(driver, "a[href*='/access-at']"))
    assert css(driver, "h1").text == who_had
    now = datetime.now(ZoneInfo("Europe/Brussels"))
    Select(css(driver, "#function")).select_by_value("dossier.search")
    driver.execute_script("document.querySelector('#day').value = arguments[0];"
                          "document.querySelector('#moment').value = arguments[1];",
                          now.strftime("%Y-%m-%d"), now.strftime("%H:%M:%S"))
    click_and_load(driver, css(driver, "form.filters button[type=submit]"))
    assert driver.find_elements("xpath", "//table[contains(@class,'holders')]//th[contains(., 'Marie')]")
    check_screens(driver, lang, "who had access to dossier.search", axe=BOTH)
    _shot(driver, f"who-had-access-{lang}.png")
    # the CSV, as the browser downloads it: a byte-order mark, semicolons, headers in words
    driver.set_script_timeout(10)
    first = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(document.querySelector('a[download]').href)"
        ".then(r => r.arrayBuffer()).then(b => done(Array.from(new Uint8Array(b.slice(0, 400)))));")
    head = bytes(first)
    assert head.startswith("\ufeff".encode())
    assert head.decode("utf-8-sig", errors="ignore").splitlines()[0].split(";")[:3] == csv_head


# -- time-bound assignments (issue 14): an end date set on "Affecter les profils", the 30-day list ------------
JULIE, MARC = "89013122245", "65041723170"  # no profile; the built-in profile
TERMS = {"fr": ("jusqu'au {} inclus", "Cette date de fin est passée", "Profils après la modification",
                "Affectations qui se terminent dans les 30 jours"),
         "nl": ("tot en met {}", "Deze einddatum ligt in het verleden", "Profielen na de wijziging",
                "Toekenningen die binnen 30 dagen aflopen")}


def _set_date(driver: Any, selector: str, value: str) -> None:
    """A date input set as a person's pick would (the picker's keys depend on the browser's locale)."""
    driver.execute_script("var e = document.querySelector(arguments[0]); e.value = arguments[1];"
                          "e.dispatchEvent(new Event('input', {bubbles: true}));"
                          "e.dispatchEvent(new Event('change', {bubbles: true}));", selector, value)


def test_an_end_date_set_on_the_assignment_page(site: Site, lang: str) -> None:
    """Julie gets "Full" until a day three weeks ahead, picked beside the profile: the dates show once the
    profile is ticked; a past day is refused in the page's language; the preview lists the profiles after the
    change with their end; confirmed, the list of users and the form show it; the 30-day list shows it with
    another user's. Each page fits both widths and passes axe."""
    from datetime import timedelta

    from authz_service.terms import Assignment, brussels_day, end_of

    from .test_browser import body

    driver, service, cpas, full = site.driver, site.service, site.cpas, site.ids["full"]
    until, refused, after, ending = TERMS[lang]
    today = brussels_day(service.now())
    last, other = today + timedelta(days=21), today + timedelta(days=6)
    service.change("test", Admin.set_user_profiles, cpas, MARC,
                   [Assignment(site.ids["builtin"], None, end_of(other))])
    try:
        driver.get(url(site, f"/ui/cpas/{{cpas}}/users/{JULIE}/profiles"))
        dates = css(driver, f"[data-term-for='p-{full}']")
        assert not dates.is_displayed()  # shown once the profile is ticked
        click(driver, css(driver, f"label[for='p-{full}']"))
        assert dates.is_displayed()
        # a day already past: refused, in the page's language, what was chosen kept
        _set_date(driver, f"#until-{full}", (today - timedelta(days=1)).isoformat())
        click_and_load(driver, css(driver, "form[data-warn-unsaved] button[type=submit].primary"))
        assert refused in body(driver)
        assert css(driver, f"#until-{full}").get_attribute("aria-invalid") == "true"
        check_screens(driver, lang, "assignment with a refused date", axe=BOTH)
        _set_date(driver, f"#until-{full}", last.isoformat())
        click_and_load(driver, css(driver, "form[data-warn-unsaved] button[type=submit].primary"))
        text = body(driver)
        assert after in text and until.format(last.strftime("%d/%m/%Y")) in text
        check_screens(driver, lang, "preview of an assignment with an end date")
        click_and_load(driver, css(driver, "button[name=confirm]"))
        assert service.read(lambda s: s.user_terms(cpas, JULIE))[full].valid_until == end_of(last)
        shown = until.format(last.strftime("%d/%m/%Y"))
        driver.get(url(site, "/ui/cpas/{cpas}/?q=julie"))
        assert shown in body(driver)
        check_screens(driver, lang, "users list with an end date", axe=BOTH)
        # the form again: the date pre-filled, and said beside the profile
        driver.get(url(site, f"/ui/cpas/{{cpas}}/users/{JULIE}/profiles"))
        assert css(driver, f"#until-{full}").get_attribute("value") == last.isoformat()
        assert shown in body(driver)
        check_screens(driver, lang, "assignment page with an end date", axe=BOTH)
        _shot(driver, f"assignment-end-{lang}.png")
        # the 30-day list, from the users list: soonest first, each with its assignment page
        driver.get(url(site, "/ui/cpas/{cpas}/"))
        click_and_load(driver, css(driver, "a[href$='/assignments/ending']"))
        assert css(driver, "h1").text == ending
        names = [e.text for e in driver.find_elements("css selector", "table.ending tbody th")]
        assert [n.splitlines()[0] for n in names] == ["Marc DEVOS", "Julie SIMON"]
        assert driver.find_elements("css selector", f"table.ending a[href*='/users/{JULIE}/profiles']")
        check_screens(driver, lang, "assignments ending within 30 days", axe=BOTH)
        _shot(driver, f"ending-{lang}.png")
    finally:  # as it was for the other tests
        service.change("test", Admin.set_user_profiles, cpas, JULIE, [])
        service.change("test", Admin.set_user_profiles, cpas, MARC, [site.ids["builtin"]])
