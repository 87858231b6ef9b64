"""Every message of the web UI is translated into French and Dutch, the catalogs compile, and no page
shows an English message."""

from __future__ import annotations

import shutil
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from babel.support import Translations

from authz_service.web.i18n import TRANSLATIONS, compile_catalogs

from .conftest import Web

WEB = TRANSLATIONS.parent
LANGS = ("fr", "nl")


@cache  # the sources do not change during a run; extracting them takes a second
def source_messages() -> dict[str, tuple[str, ...]]:
    """msgid -> plural forms, as `pybabel extract -F babel.cfg -k _l` finds them in the sources."""
    with (WEB / "babel.cfg").open(encoding="utf-8") as handle:
        method_map, options_map = parse_mapping_cfg(handle)
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "_l": None, "lazy_gettext": None}
    found: dict[str, tuple[str, ...]] = {}
    for _filename, _lineno, message, _comments, _context in extract_from_dir(
        str(WEB), method_map, options_map, keywords=keywords
    ):
        forms = (message,) if isinstance(message, str) else tuple(message)
        found[forms[0]] = forms
    return found


def catalog(lang: str) -> Any:
    with (TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        return read_po(handle, locale=lang)


def test_sources_have_messages() -> None:
    assert len(source_messages()) > 100


@pytest.mark.parametrize("lang", LANGS)
def test_every_message_is_translated(lang: str) -> None:
    cat = catalog(lang)
    problems = []
    for msgid in source_messages():
        message = cat.get(msgid)
        if message is None:
            problems.append(f"missing: {msgid!r}")
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if message.fuzzy or not all(s and s.strip() for s in strings):
            problems.append(f"untranslated or fuzzy: {msgid!r}")
    for message in cat:
        if message.id and (message.id if isinstance(message.id, str) else message.id[0]) not in source_messages():
            problems.append(f"obsolete (no longer in the sources): {message.id!r}")
    for message, errors in cat.check():
        problems.extend(f"{message.id!r}: {error}" for error in errors)
    assert not problems, "\n".join(problems)


def test_catalogs_compile(tmp_path: Path) -> None:
    copy = tmp_path / "translations"
    shutil.copytree(TRANSLATIONS, copy, ignore=shutil.ignore_patterns("*.mo"))
    written = compile_catalogs(copy)
    assert sorted(p.parent.parent.name for p in written) == sorted(LANGS)
    assert compile_catalogs(copy) == []  # up to date: nothing rewritten
    fr = Translations.load(str(copy), ["fr"])
    nl = Translations.load(str(copy), ["nl"])
    assert fr.gettext("Access management") == "Gestion des accès"
    assert nl.gettext("Access management") == "Toegangsbeheer"
    assert fr.ngettext("%(num)s entry", "%(num)s entries", 2) % {"num": 2} == "2 entrées"
    assert nl.ngettext("%(num)s entry", "%(num)s entries", 1) % {"num": 1} == "1 vermelding"


def test_read_only_package_uses_a_compiled_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    from authz_service.web import i18n

    real = i18n.compile_catalogs

    def read_only(directory: Path = TRANSLATIONS, *, force: bool = False) -> list[Path]:
        if directory == TRANSLATIONS:
            raise PermissionError("read-only file system")
        return real(directory, force=force)

    monkeypatch.setattr(i18n, "compile_catalogs", read_only)
    folder = i18n.prepare_translations()
    assert folder != TRANSLATIONS
    assert Translations.load(str(folder), ["nl"]).gettext("Print") == "Afdrukken"
    shutil.rmtree(folder.parent)


ENGLISH = sorted((m for m in source_messages() if len(m) > 14 and "%(" not in m), key=len, reverse=True)


@pytest.mark.parametrize("url", [
    "/ui/cpas/{cpas}/", "/ui/cpas/{cpas}/profiles/new", "/ui/cpas/{cpas}/profiles/{full}",
    "/ui/cpas/{cpas}/profiles/{full}/print", "/ui/cpas/{cpas}/users/85073003328/print", "/ui/cpas/{cpas}/audit",
    "/ui/cpas/{cpas}/users/inactive", "/ui/cpas/{cpas}/me",
    "/ui/cpas/{cpas}/users/85073003328/deactivate",  # with what the deactivation would do
    "/ui/cpas/{cpas}/functions/dossier.search/users",
    "/ui/cpas/{cpas}/access-at?function=dossier.search&day=2100-01-01&moment=10:00",
    "/ui/cpas/{cpas}/access-at?function=dossier.search&day=2000-01-01",  # before the history
])
def test_no_page_shows_english(manager: Web, demo: dict[str, Any], url: str) -> None:
    html = manager.text(url.format(cpas=demo["cpas"], full=demo["profiles"]["full"]))
    leftovers = [m for m in ENGLISH if m in html]
    assert not leftovers
