"""Safe redirects: ``next`` (login, language switch) and ``back`` (assign and deactivate forms) take only
a path on this site; anything else leads to the default page, on the redirect and in the pages that
render the value (the hidden fields and the "Back"/"Cancel" links)."""

from __future__ import annotations

import shutil
import unicodedata
from collections.abc import Iterator
from html import escape
from pathlib import Path
from typing import Any

import pytest

from authz_service import create_app
from authz_service.web.auth import safe_next

from .conftest import PASSWORD, Web, browser

MARIE = "85073003328"

NASTY = [
    "//evil.example/x",
    "///evil.example/x",
    "/\\evil.example/x",
    "\\\\evil.example/x",
    "/%5Cevil.example/x",  # an encoded backslash
    "/\t/evil.example/x",  # browsers drop tabs and newlines: "//evil.example/x"
    "/%09/evil.example/x",
    "/\n/evil.example/x",
    "/%0a/x",
    "/%0d%0aSet-Cookie:%20a=b",
    "/\r\nSet-Cookie: a=b",
    "/ /evil.example",
    "/\x00x",
    "/x\x7f",
    "/\u2028/evil.example",  # a line separator
    "/\u3000/evil.example",  # an ideographic space
    "/\u200b/evil.example",  # a zero-width space
    "/%2F/evil.example/x",
    "/%252F%252Fevil.example/x",  # twice encoded
    "/%25252F%25252Fevil.example",  # three times
    "/ui/..//evil.example",
    "https://evil.example/x",
    "http:/evil.example",
    "javascript:alert(1)",
    "evil.example/x",
    " /ui/",
    "",
    "/" + "a" * 2100,
]


@pytest.mark.parametrize("target", NASTY)
def test_safe_next_refuses(target: str) -> None:
    assert safe_next(target, "/default") == "/default"


@pytest.mark.parametrize("target", ["/ui/", "/ui/cpas/0212345668/?q=dupont&page=2", "/ui/cpas/0212345668/audit",
                                    "/ui/cpas/0212345668/?q=Dupr%C3%A9", "/ui/cpas/0212345668/?q=Dupré"])
def test_safe_next_keeps_local_paths(target: str) -> None:
    assert safe_next(target, "/default") == target


def control(text: str) -> bool:
    """Control characters in a query or form field are refused (400) by the request guards
    (``inputs``) before any view runs: as safe as the default page."""
    return any(unicodedata.category(c) == "Cc" for c in text)


def goes_to(response: Any, default: str, target: str) -> bool:
    if control(target) and response.status_code == 400:
        return True
    return response.status_code == 303 and response.headers["Location"] == default


@pytest.fixture(scope="module")
def site(web_template_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One app for the whole module (the cases only read, or deactivate the same user again): the demo
    CPAS, a profile of it, and the app."""
    path = tmp_path_factory.mktemp("redirects") / "authz.sqlite3"
    shutil.copyfile(web_template_db, path)
    app = create_app({"database_url": f"sqlite:///{path}", "poll_interval": 0, "secret_key": "test-secret"},
                     start_polling=False)
    app.config["TESTING"] = True
    service = app.extensions["authz"]
    cpas = service.read(lambda store: store.admin_by_username("gestionnaire").cpas[0])
    profile = service.read(lambda store: next(p.id for p in store.profiles(cpas) if not p.builtin))
    yield {"app": app, "cpas": cpas, "profile": profile}
    service.close()


@pytest.mark.parametrize("target", NASTY)
def test_login_next(site: dict[str, Any], target: str) -> None:
    web = browser(site["app"])
    shown = web.get("/ui/login", query_string={"next": target})
    assert shown.status_code == (400 if control(target) else 200)
    if shown.status_code == 200:
        assert 'name="next" type="hidden" value=""' in shown.get_data(as_text=True)
    response = web.post("/ui/login", {"username": "gestionnaire", "password": PASSWORD, "next": target})
    assert goes_to(response, "/ui/", target), (response.status_code, response.headers.get("Location"))


def test_login_next_local_path_is_kept(site: dict[str, Any]) -> None:
    target = f"/ui/cpas/{site['cpas']}/audit?actor=x"
    web = browser(site["app"])
    web.get("/ui/login", query_string={"next": target})
    response = web.post("/ui/login", {"username": "gestionnaire", "password": PASSWORD, "next": target})
    assert response.headers["Location"] == target


@pytest.fixture
def signed_in(site: dict[str, Any]) -> Web:
    web = browser(site["app"])
    assert web.login("gestionnaire").status_code == 303
    return web


@pytest.mark.parametrize("target", NASTY)
def test_back_on_assign_and_deactivate(signed_in: Web, site: dict[str, Any], target: str) -> None:
    cpas = site["cpas"]
    home = f"/ui/cpas/{cpas}/"
    for form in (f"/ui/cpas/{cpas}/users/{MARIE}/profiles", f"/ui/cpas/{cpas}/users/{MARIE}/deactivate"):
        shown = signed_in.get(form, query_string={"back": target})
        if control(target) and shown.status_code == 400:
            continue
        assert shown.status_code == 200, form
        html = shown.get_data(as_text=True)
        assert f'name="back" value="{home}"' in html, form
        assert f'href="{home}">' in html, form  # the "Back" / "Cancel" link
        # the target is neither a link nor the form's way back (an empty date field may well say value="")
        assert f'href="{escape(target)}"' not in html and f'name="back" value="{escape(target)}"' not in html, form
    assigned = signed_in.post(f"/ui/cpas/{cpas}/users/{MARIE}/profiles",
                              {"profiles": site["profile"], "back": target, "confirm": "1"})
    assert goes_to(assigned, home, target)
    deactivated = signed_in.post(f"/ui/cpas/{cpas}/users/{MARIE}/deactivate", {"back": target, "confirm": "1"})
    assert goes_to(deactivated, home, target)


def test_back_to_a_page_of_the_list_is_kept(signed_in: Web, site: dict[str, Any]) -> None:
    cpas = site["cpas"]
    back = f"/ui/cpas/{cpas}/?q=leblanc&page=1"
    shown = signed_in.get(f"/ui/cpas/{cpas}/users/{MARIE}/deactivate", query_string={"back": back})
    assert f'href="{back.replace("&", "&amp;")}"' in shown.get_data(as_text=True)
    response = signed_in.post(f"/ui/cpas/{cpas}/users/{MARIE}/deactivate", {"back": back, "confirm": "1"})
    assert response.headers["Location"] == back


@pytest.mark.parametrize("target", ["/%09/evil.example/x", "//evil.example", "/%0a/x", "/\t/evil.example"])
def test_language_switch_next(signed_in: Web, target: str) -> None:
    response = signed_in.post("/ui/lang", {"lang": "nl", "next": target})
    assert goes_to(response, "/ui/", target)
