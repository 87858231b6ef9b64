"""Languages of the web UI: French and Dutch through Flask-Babel.

The language is the one chosen with the switch (kept in the session and, for a local account, in
the account), else the account's or SSO header's language, else the browser's Accept-Language, else
French. Message catalogs are ``translations/<lang>/LC_MESSAGES/messages.po``; the ``.mo`` files are
compiled from them (``compile_catalogs``) when the app starts or the tests run, never edited by hand.
"""

from __future__ import annotations

import logging
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import g, request, session

from .auth import LANGS

log = logging.getLogger(__name__)
TRANSLATIONS = Path(__file__).resolve().parent / "translations"
SESSION_LANG = "lang"


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
        with mo_path.open("wb") as handle:
            write_mo(handle, catalog)
        written.append(mo_path)
    return written


def ensure_compiled() -> None:
    try:
        compile_catalogs()
    except OSError as exc:  # a read-only install: the packaged .mo files are used as they are
        log.warning("could not compile the web UI's message catalogs: %s", exc)
