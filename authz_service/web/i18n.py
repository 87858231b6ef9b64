"""Languages of the web UI: French and Dutch through Flask-Babel.

The language is the one chosen with the switch (kept in the session and, for a local account, in
the account), else the account's or SSO header's language, else the browser's Accept-Language, else
French. Message catalogs are ``translations/<lang>/LC_MESSAGES/messages.po``; the ``.mo`` files are
compiled from them (``prepare_translations``) when the app starts, never edited by hand.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import g, request, session

from .auth import LANGS, SESSION_LANG

log = logging.getLogger(__name__)
TRANSLATIONS = Path(__file__).resolve().parent / "translations"
__all__ = ["SESSION_LANG", "compile_catalogs", "prepare_translations", "select_locale"]


def select_locale() -> str:
    chosen = session.get(SESSION_LANG)
    if chosen in LANGS:
        return str(chosen)
    identity = g.get("identity")
    if identity is not None and identity.lang in LANGS:
        return str(identity.lang)
    return request.accept_languages.best_match(LANGS) or "fr"


def compile_catalogs(directory: Path = TRANSLATIONS, *, force: bool = False) -> list[Path]:
    """Write each ``messages.mo`` that is missing or older than its ``.po``; return those written."""
    written = []
    for po_path in sorted(directory.glob("*/LC_MESSAGES/messages.po")):
        mo_path = po_path.with_suffix(".mo")
        if not force and mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        with po_path.open("rb") as handle:
            catalog = read_po(handle, locale=po_path.parent.parent.name)
        partial = mo_path.with_suffix(f".mo.{os.getpid()}")
        with partial.open("wb") as handle:
            write_mo(handle, catalog)
        os.replace(partial, mo_path)  # atomic: a worker starting beside us never reads half a file
        written.append(mo_path)
    return written


def prepare_translations() -> Path:
    """The folder Flask-Babel reads: the package's own, compiled in place when needed; if the package
    is read-only (an installed wheel without .mo files), a compiled copy in a temporary folder."""
    try:
        compile_catalogs()
        return TRANSLATIONS
    except OSError as exc:
        copy = Path(tempfile.mkdtemp(prefix="authz-web-i18n-")) / "translations"
        shutil.copytree(TRANSLATIONS, copy, ignore=shutil.ignore_patterns("*.mo"))
        compile_catalogs(copy)
        log.info("web UI catalogs compiled in %s (%s)", copy, exc)
        return copy
