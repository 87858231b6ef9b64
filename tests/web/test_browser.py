"""The manual's story in a real browser: Debian's headless Chromium driven by Selenium against the app
served by werkzeug in a thread. Selenium is given the browser and the driver; it never downloads one.

Without /usr/bin/chromium and /usr/bin/chromedriver these tests skip, except with CI=true where they
fail. With AUTHZ_SCREENSHOTS=1 the screenshots go to docs/screenshots/ (else to a temporary folder).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import serving

from .conftest import LANG_ACCOUNT, OTHER_CPAS, PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
IN_CI = os.environ.get("CI", "").lower() == "true"
REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow

TEXT = {
    "fr": {"home": "Gestion des accès", "create": "Créer un profil", "template": "Travailleur social",
           "save": "Enregistrer", "assign": "Affecter les profils", "in_use": "Le profil que vous voulez supprimer "
           "est affecté à un ou plusieurs utilisateurs. Veuillez d'abord le désaffecter.",
           "confirm_delete": "Voulez-vous vraiment supprimer ce profil?", "delete": "Supprimer",
           "confirm_deactivate": "Désactiver cet utilisateur aura pour effet de lui désaffecter tous les profils. "
           "Voulez-vous continuer ?", "deactivate": "Désactiver", "inactive": "Utilisateurs inactifs",
           "reactivate": "Réactiver", "no_profile": "Pas de profil", "my_access": "Mes accès",
           "logs": "Admin-Logs", "print_title": "Fonctions associées au profil", "created": "a été créé",
           "deactivated_action": "Utilisateur désactivé", "assigned_action": "Profils affectés",
           "profiles_of": "Profils et fonctions de", "expired": "Formulaire expiré", "refused": "Accès refusé",
           "prereq": "Des fonctions nécessaires manquent", "filter": "Filtrer", "confirm": "Confirmer",
           "preview": "Aperçu des changements"},
    "nl": {"home": "Toegangsbeheer", "create": "Profiel aanmaken", "template": "Maatschappelijk werker",
           "save": "Opslaan", "assign": "Profielen toekennen", "in_use": "Het profiel dat u wilt verwijderen is "
           "aan een of meer gebruikers toegekend. Gelieve het eerst in te trekken.",
           "confirm_delete": "Wilt u dit profiel echt verwijderen?", "delete": "Verwijderen",
           "confirm_deactivate": "Als u deze gebruiker deactiveert, worden al zijn profielen ingetrokken. "
           "Wilt u doorgaan?", "deactivate": "Deactiveren", "inactive": "Inactieve gebruikers",
           "reactivate": "Heractiveren", "no_profile": "Geen profiel", "my_access": "Mijn toegangen",
           "logs": "Admin-Logs", "print_title": "Functies van het profiel", "created": "werd aangemaakt",
           "deactivated_action": "Gebruiker gedeactiveerd", "assigned_action": "Profielen toegekend",
           "profiles_of": "Profielen en functies van", "expired": "Formulier verlopen",
           "refused": "Toegang geweigerd", "prereq": "Er ontbreken vereiste functies", "filter": "Filteren",
           "confirm": "Bevestigen", "preview": "Overzicht van de wijzigingen"},
}
LUC, JULIE = "75081815365", "89013122245"


def _problem() -> str | None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        return f"{' and '.join(missing)} missing: apt-get install -y chromium chromium-driver"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: pip install -e '.[dev]'"
    return None


@pytest.fixture
def live(app: Any) -> Iterator[str]:
    with serving(app) as url:
        yield url


def _driver(tmp_path: Path, *, javascript: bool = True) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=1280,900", "--lang=fr-BE"):
        options.add_argument(arg)
    if not javascript:
        options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(0)
    return driver


@pytest.fixture
def browser_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    problem = _problem()
    if problem:
        if IN_CI:
            pytest.fail(f"the browser tests must run in CI: {problem}")
        pytest.skip(problem)
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must never fetch a browser or driver
    drivers: list[Any] = []

    def make(*, javascript: bool = True) -> Any:
        folder = tmp_path / f"b{len(drivers)}"
        folder.mkdir()
        drivers.append(_driver(folder, javascript=javascript))
        return drivers[-1]

    yield make
    for driver in drivers:
        driver.quit()


@pytest.fixture
def browser(browser_factory: Callable[..., Any]) -> Any:
    return browser_factory()


@pytest.fixture
def shots(tmp_path: Path) -> Callable[[Any, str], None]:
    folder = REPO / "docs" / "screenshots" if os.environ.get("AUTHZ_SCREENSHOTS") else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)

    def take(driver: Any, name: str) -> None:
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1280, min(max(int(height), 900), 3000))
        driver.execute_script("window.scrollTo(0, 0)")
        assert driver.save_screenshot(str(folder / f"{name}.png"))
        driver.set_window_size(1280, 900)

    return take


# -- helpers -------------------------------------------------------------------------------------------------
def wait(driver: Any, condition: Callable[[Any], Any], timeout: float = 10) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def body(driver: Any) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.TAG_NAME, "body").text)


def xpath(driver: Any, path: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.XPATH, path)


def css(driver: Any, selector: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, selector)


def click(driver: Any, element: Any) -> None:
    """Bring the element to the middle of the window (never under the sticky save bar), then click."""
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()


def click_and_load(driver: Any, element: Any) -> None:
    """Click something that loads a new page, and wait until the new page is complete."""
    from selenium.common.exceptions import WebDriverException

    driver.execute_script("window.__oldPage = true")
    click(driver, element)

    def loaded(d: Any) -> bool:
        try:  # asked while the page changes, the driver may answer with an error: ask again
            return bool(d.execute_script("return !window.__oldPage && document.readyState === 'complete'"))
        except WebDriverException:
            return False

    wait(driver, loaded)


def login(driver: Any, base: str, username: str, password: str = PASSWORD) -> None:
    driver.get(f"{base}/ui/login")
    css(driver, "#username").send_keys(username)
    css(driver, "#password").send_keys(password)
    click_and_load(driver, css(driver, "form button.primary"))


def row_link(driver: Any, row_text: str, href_part: str) -> Any:
    return xpath(driver, f"//tr[th[contains(normalize-space(), \"{row_text}\")]]//a[contains(@href, '{href_part}')]")


def checked_codes(driver: Any) -> set[str]:
    return set(driver.execute_script(
        "return Array.from(document.querySelectorAll('input[data-function]:checked')).map(e => e.value)"))


# -- the story -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("lang", ["fr", "nl"])
def test_manual_story(browser: Any, live: str, demo: dict[str, Any], accounts: dict[str, str], service: Any,
                      shots: Callable[[Any, str], None], lang: str) -> None:
    t = TEXT[lang]
    cpas = demo["cpas"]
    driver = browser
    catalog = service.catalog

    # log in: the account's language applies
    driver.get(f"{live}/ui/login")
    if lang == "fr":
        shots(driver, "login-fr")
    login(driver, live, LANG_ACCOUNT[lang])
    assert driver.find_element("tag name", "h1").text == t["home"]
    shots(driver, f"access-management-{lang}")

    # create a profile from a predefined one, adjust a block, save
    click_and_load(driver, xpath(driver, f"//a[normalize-space()='{t['create']}']"))
    name = {"fr": "Accueil social", "nl": "Sociaal onthaal"}[lang]
    css(driver, "#description_fr").send_keys("Accueil social")
    css(driver, "#description_nl").send_keys("Sociaal onthaal")
    driver.execute_script("window.__samePage = true")
    click(driver, xpath(driver, f"//button[@data-template and normalize-space()='{t['template']}']"))
    template = set(catalog.template("social_worker").functions)
    assert checked_codes(driver) == template
    assert driver.execute_script("return window.__samePage") is True  # filled by JS, no round trip
    mutations = set(catalog.group_functions("mutations"))
    block = css(driver, "#g-mutations")
    click(driver, block)  # the block checkbox selects the whole block
    assert checked_codes(driver) == template | mutations
    click(driver, css(driver, "li[data-block='mutations'] > details > summary"))
    click(driver, css(driver, "label[for='f-mutation.mediprima.mark_read']"))
    assert driver.execute_script("return document.getElementById('g-mutations').indeterminate") is True
    assert css(driver, "[data-count-for='mutations']").text == f"{len(mutations) - 1}/{len(mutations)}"
    # the prerequisite warning appears live and its one-click fix adds what is missing
    warning = css(driver, "#prereq-warning")
    assert not warning.is_displayed()
    click(driver, css(driver, "label[for='f-mutation.mediprima.mark_read']"))
    click(driver, css(driver, "label[for='f-mutation.mediprima.view']"))
    assert warning.is_displayed() and t["prereq"] in warning.text
    click(driver, css(driver, "[data-add-prerequisites]"))
    assert not warning.is_displayed()
    assert checked_codes(driver) == template | mutations
    click(driver, css(driver, "label[for='f-mutation.mediprima.mark_read']"))
    shots(driver, f"profile-form-{lang}")
    click_and_load(driver, xpath(driver, f"//div[@class='form-actions']/button[normalize-space()='{t['save']}']"))
    assert t["preview"] in body(driver)  # what saving would do, first; then confirmed
    click_and_load(driver, xpath(driver, f"//button[normalize-space()='{t['confirm']}']"))
    assert t["created"] in body(driver) and driver.find_element("tag name", "h1").text == t["home"]
    profile = next(p for p in service.read(lambda s: s.profiles(cpas)) if p.description_fr == "Accueil social")
    saved = set(service.read(lambda s: s.profile_functions(cpas, profile.id)))
    assert saved == (template | mutations) - {"mutation.mediprima.mark_read"}

    # assign it to two users
    for user_name in ("Luc LAMBERT", "Julie SIMON"):
        click_and_load(driver, row_link(driver, user_name, "/profiles"))
        click(driver, xpath(driver, f"//label[normalize-space()='{name}']"))
        click_and_load(driver, xpath(driver, f"//button[normalize-space()='{t['save']}']"))
        assert user_name in body(driver) and t["preview"] in body(driver)
        click_and_load(driver, xpath(driver, f"//button[normalize-space()='{t['confirm']}']"))
    assert service.read(lambda s: s.user_profiles(cpas, LUC)) == [profile.id]
    assert service.read(lambda s: s.user_profiles(cpas, JULIE)) == [profile.id]

    # try to delete it: refused with the manual's message
    click_and_load(driver, row_link(driver, name, "/delete"))
    assert t["confirm_delete"] in body(driver)
    click_and_load(driver, xpath(driver, f"//button[normalize-space()='{t['delete']}']"))
    assert t["in_use"] in css(driver, ".flash-error").text
    if lang == "fr":
        shots(driver, "delete-refused-fr")
    assert service.read(lambda s: s.get_profile(cpas, profile.id)) is not None

    # print it
    click_and_load(driver, row_link(driver, name, "/print"))
    assert t["print_title"] in body(driver)
    assert "Luc LAMBERT" in body(driver) and "Julie SIMON" in body(driver)
    driver.execute_script("window.print = function () { window.__printed = true; }")
    print_button = css(driver, "[data-print]")
    assert print_button.is_displayed()
    click(driver, print_button)
    assert driver.execute_script("return window.__printed") is True
    shots(driver, f"profile-print-{lang}")
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    assert not css(driver, ".topbar").is_displayed() and not print_button.is_displayed()
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})

    # a user's print view
    driver.get(f"{live}/ui/cpas/{cpas}/users/{JULIE}/print")
    assert f"{t['profiles_of']} Julie SIMON" in body(driver)
    if lang == "fr":
        shots(driver, "user-print-fr")

    # deactivate a user, find them among the inactive users, reactivate
    driver.get(f"{live}/ui/cpas/{cpas}/")
    click_and_load(driver, row_link(driver, "Luc LAMBERT", "/deactivate"))
    assert t["confirm_deactivate"] in body(driver)
    if lang == "fr":
        shots(driver, "deactivate-confirm-fr")
    click_and_load(driver, xpath(driver, f"//button[normalize-space()='{t['deactivate']}']"))
    assert not driver.find_elements("xpath", "//tr[th[contains(., 'Luc LAMBERT')]]")
    assert service.read(lambda s: s.user_profiles(cpas, LUC)) == []
    click_and_load(driver, xpath(driver, f"//a[contains(normalize-space(), '{t['inactive']}')]"))
    assert "Luc LAMBERT" in body(driver)
    shots(driver, f"inactive-users-{lang}")
    click_and_load(driver, xpath(driver, "//tr[th[contains(., 'Luc LAMBERT')]]//button"))
    assert not driver.find_elements("xpath", "//tr[th[contains(., 'Luc LAMBERT')]]")
    driver.get(f"{live}/ui/cpas/{cpas}/?q=lambert")
    assert t["no_profile"] in xpath(driver, "//tr[th[contains(., 'Luc LAMBERT')]]").text
    assert service.read(lambda s: s.get_user(cpas, LUC).active)

    # "Mes accès"
    click_and_load(driver, xpath(driver, f"//nav//a[normalize-space()='{t['my_access']}']"))
    assert t["profiles_of"] in body(driver)

    # the audit trail
    click_and_load(driver, xpath(driver, f"//nav//a[normalize-space()='{t['logs']}']"))
    text = body(driver)
    assert t["deactivated_action"] in text and t["assigned_action"] in text
    shots(driver, f"admin-logs-{lang}")
    from selenium.webdriver.support.ui import Select

    Select(css(driver, "#action")).select_by_value("user.deactivate")
    click_and_load(driver, xpath(driver, f"//button[normalize-space()='{t['filter']}']"))
    rows = driver.find_elements("css selector", "table.audit tbody tr")
    assert rows and all(t["deactivated_action"] in r.text for r in rows)
    assert any(f"user:{LUC}" in r.text for r in rows)


@pytest.mark.web_settings(trusted_proxies="127.0.0.1/32")
def test_my_access_through_the_sso_proxy(browser: Any, live: str, app: Any, demo: dict[str, Any],
                                         shots: Callable[[Any, str], None]) -> None:
    """An agent signed in by the trusted proxy sees and prints their own profiles and functions."""
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {
        "X-Remote-User": "91012704692", "X-Remote-Name": "Claire MARTIN", "X-Remote-Cpas": demo["cpas"],
        "X-Remote-Roles": "Agent social"}})
    browser.get(f"{live}/ui/")
    assert browser.current_url.endswith(f"/ui/cpas/{demo['cpas']}/me")
    text = body(browser)
    assert "Profils et fonctions de Claire MARTIN" in text and "Mes accès" in text
    assert "Profil clignotants" in text and "Consultation des alertes" in text
    assert not browser.find_elements("xpath", "//nav//a[normalize-space()='Gestion des accès']")
    shots(browser, "my-access-fr")


def test_csrf_refused_in_the_browser(browser: Any, live: str, demo: dict[str, Any], accounts: dict[str, str],
                                     service: Any) -> None:
    login(browser, live, "gestionnaire")
    browser.get(f"{live}/ui/cpas/{demo['cpas']}/users/85073003328/deactivate")
    browser.execute_script("document.querySelector('main form input[name=csrf_token]').value = 'forged'")
    click_and_load(browser, xpath(browser, "//main//button[normalize-space()='Désactiver']"))
    assert TEXT["fr"]["expired"] in body(browser)
    assert service.read(lambda s: s.get_user(demo["cpas"], "85073003328").active)


def test_another_cpas_is_refused_in_the_browser(browser: Any, live: str, demo: dict[str, Any],
                                                accounts: dict[str, str]) -> None:
    login(browser, live, "autre")
    assert browser.current_url.endswith(f"/ui/cpas/{OTHER_CPAS}/")
    for path in ("/", "/profiles/new", f"/profiles/{demo['profiles']['full']}/print", "/audit"):
        browser.get(f"{live}/ui/cpas/{demo['cpas']}{path}")
        assert TEXT["fr"]["refused"] in body(browser)
        assert "Marie LEBLANC" not in body(browser)


def test_profile_form_works_without_javascript(browser_factory: Callable[..., Any], live: str,
                                               demo: dict[str, Any], accounts: dict[str, str], service: Any) -> None:
    driver = browser_factory(javascript=False)
    login(driver, live, "gestionnaire")
    driver.get(f"{live}/ui/cpas/{demo['cpas']}/profiles/new")
    css(driver, "#description_fr").send_keys("Sans JavaScript")
    click_and_load(driver, css(driver, "button[data-template='financial_director']"))  # a server round trip
    assert checked_codes(driver) == set(service.catalog.template("financial_director").functions)
    assert css(driver, "#description_fr").get_attribute("value") == "Sans JavaScript"
    click_and_load(driver, css(driver, "button[data-select='mutations']"))
    click_and_load(driver, xpath(driver, "//div[@class='form-actions']/button[normalize-space()='Enregistrer']"))
    assert "Aperçu des changements" in body(driver)
    click_and_load(driver, xpath(driver, "//button[normalize-space()='Confirmer']"))
    assert "Le profil « Sans JavaScript » a été créé." in body(driver)
    profile = next(p for p in service.read(lambda s: s.profiles(demo["cpas"])) if p.description_fr == "Sans JavaScript")
    codes = set(service.read(lambda s: s.profile_functions(demo["cpas"], profile.id)))
    assert codes == set(service.catalog.template("financial_director").functions) | set(
        service.catalog.group_functions("mutations"))
