"""Who is using the web UI: a local admin account (session cookie after a password login) or, in
trusted-proxy SSO mode, the identity, CPAS and roles the proxy puts in request headers.

Headers are believed only when the request comes straight from a configured proxy address; from any
other address they are ignored. A local account is re-read on every request, so a deactivated or
changed account takes effect at once.

A local session is Flask's signed cookie holding the username, the account's session epoch and two
times (sign-in, last request). It is valid while the epoch is still the account's (sign-out, a lock, a
new password, a deactivation or a new account of the same name change it: every session of the
account ends at once, on every worker and instance, since the account is read from the database on
each request), the account is active and not locked, and neither the idle nor the absolute lifetime
has passed (``AUTHZ_WEB_SESSION_IDLE_MINUTES``, ``AUTHZ_WEB_SESSION_HOURS``), measured by the server.

The key that signs the cookie is ``AUTHZ_SECRET_KEY`` or the one kept in the database, read on the
first request that needs it and asked again on each request until the database answers (the UI
answers 503 meanwhile): never a key of one process, which would sign users out between workers.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal
from urllib.parse import unquote

from flask import Flask, Request, current_app, g, request, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

from .. import reads
from ..admin import MAX_FAILED_LOGINS, Admin, aware
from ..errors import Unavailable
from ..models import AdminAccount
from ..reads import Account
from ..schemas import USER_RE, parse_kbo
from ..security import hash_password, verify_password
from ..service import Service
from .settings import WebSettings

LANGS = ("fr", "nl")
SESSION_ACCOUNT = "account"
SESSION_EPOCH = "epoch"
SESSION_SINCE = "since"  # sign-in, seconds since the epoch
SESSION_SEEN = "seen"  # last request, seconds since the epoch
SESSION_LANG = "lang"
CSRF_TOKEN = "csrf_token"  # where Flask-WTF keeps the session's token
CLOCK = "authz_web_clock"  # app.extensions: a callable giving the current aware datetime (tests)


def now(app: Flask | None = None) -> datetime:
    """The time the web UI goes by: the wall clock, or the app's injected clock in tests."""
    clock: Callable[[], datetime] | None = (app or current_app).extensions.get(CLOCK)
    return clock() if clock is not None else datetime.now(UTC)



@lru_cache(maxsize=1)
def _dummy_account() -> AdminAccount:
    """Verified against when the username is unknown, so that a wrong username costs as much as a
    wrong password (no account enumeration by timing)."""
    return AdminAccount(username="-", password_hash=hash_password(secrets.token_urlsafe(16)))


@dataclass(frozen=True)
class Identity:
    kind: Literal["local", "sso"]
    user: str  # the user id in a CPAS: the account's username for a local account
    name: str
    operator: bool
    cpas: frozenset[str]  # CPAS the identity belongs to (every CPAS for an operator)
    manager: bool  # may manage the profiles of its CPAS
    lang: str | None

    @property
    def actor(self) -> str:
        """The name written in the audit trail (``admin:<username>`` as for the JSON API)."""
        return f"admin:{self.user}" if self.kind == "local" else f"sso:{self.user}"

    def may_manage(self, cpas: str) -> bool:
        return self.operator or (self.manager and cpas in self.cpas)

    def may_view(self, cpas: str) -> bool:
        return self.operator or cpas in self.cpas


def web_settings(app: Flask | None = None) -> WebSettings:
    return (app or current_app).extensions["authz_web"]


def service() -> Service:
    return current_app.extensions["authz"]


def check_password(username: str, password: str) -> Account | None:
    """The active, unlocked account whose password this is, else None.

    Every attempt costs one password hash, whether the account exists, is inactive or locked, and
    every refusal is the same None: the answer reveals neither the account nor its lock (its owner
    learns of a lock in the Admin-Logs of its CPAS). The hash is checked outside any transaction; the
    use case ``Admin.record_sign_in`` then counts it under the account's row lock (MAX_FAILED_LOGINS
    wrong passwords within LOCK_MINUTES lock the account for LOCK_MINUTES)."""
    name = username.strip()
    found = service().read(lambda store: reads.account(store, name))
    if found is None or not found.active:
        verify_password(_dummy_account(), password)
        return None
    right = verify_password(found, password)
    result = service().change("web:login", Admin.record_sign_in, name, right=right,
                              checked_hash=found.password_hash, at=now(), address=request.remote_addr).value
    if result.locked:
        current_app.logger.warning("admin account %r locked after %d wrong passwords", name, MAX_FAILED_LOGINS)
    return result.account


def local_identity(account: Account) -> Identity:
    return Identity(
        kind="local",
        user=account.username,
        name=account.username,
        operator=account.operator,
        cpas=frozenset(account.cpas or ()),
        manager=True,
        lang=account.lang if account.lang in LANGS else None,
    )


def _kbo_list(text: str) -> frozenset[str]:
    found = set()
    for part in text.split(","):
        try:
            found.add(parse_kbo(part.strip()))
        except ValueError:
            continue
    return frozenset(found)


def sso_identity(req: Request, settings: WebSettings) -> Identity | None:
    """The proxy's identity, if this request comes from a trusted proxy and carries one."""
    if not settings.is_trusted_proxy(req.remote_addr):
        return None
    user = req.headers.get(settings.sso_user_header, "").strip()
    if not user or not USER_RE.match(user):
        return None
    roles = {r.strip().casefold() for r in req.headers.get(settings.sso_roles_header, "").split(",") if r.strip()}
    lang = req.headers.get(settings.sso_lang_header, "").strip().lower()[:2]
    return Identity(
        kind="sso",
        user=user,
        name=" ".join(req.headers.get(settings.sso_name_header, "").split())[:200] or user,
        operator=bool(roles & settings.operator_roles),
        cpas=_kbo_list(req.headers.get(settings.sso_cpas_header, "")),
        manager=bool(roles & settings.manager_roles),
        lang=lang if lang in LANGS else None,
    )


def current_identity() -> Identity | None:
    """The SSO identity, or the local account of a valid session (whose last-request time this
    refreshes), else None; an ended session is emptied (``g.session_ended`` says so)."""
    found = sso_identity(request, web_settings())
    if found is not None:
        return found
    username = session.get(SESSION_ACCOUNT)
    if not isinstance(username, str):
        return None
    account = service().read(lambda store: reads.account(store, username))
    moment = now()
    if account is None or not session_valid(account, session, moment, web_settings()):
        end_session()
        g.session_ended = True
        return None
    session[SESSION_SEEN] = int(moment.timestamp())
    return local_identity(account)


def session_valid(account: Account, data: Mapping[str, Any], moment: datetime, settings: WebSettings) -> bool:
    if not account.active or not account.session_epoch or data.get(SESSION_EPOCH) != account.session_epoch:
        return False
    if account.locked_until is not None and aware(account.locked_until) > moment:
        return False
    since, seen = data.get(SESSION_SINCE), data.get(SESSION_SEEN)
    if not isinstance(since, int) or not isinstance(seen, int):
        return False
    at = moment.timestamp()
    return (at - since < settings.session_hours * 3600
            and at - seen < settings.session_idle_minutes * 60)


def start_session(account: Account) -> None:
    """A new session for this account (nothing of the previous one kept but the chosen language)."""
    chosen_lang = session.get(SESSION_LANG)
    session.clear()  # a new session: no fixation
    session.permanent = True
    moment = int(now().timestamp())
    session[SESSION_ACCOUNT] = account.username
    session[SESSION_EPOCH] = account.session_epoch
    session[SESSION_SINCE] = session[SESSION_SEEN] = moment
    if chosen_lang in LANGS and chosen_lang != account.lang:
        session[SESSION_LANG] = chosen_lang


def end_session() -> None:
    """Empty this browser's session, keeping only the chosen language and the CSRF token (a form of
    the login page or the language switch, opened before, still goes through; the token alone signs
    nobody in, and signing in starts a new session with a new token)."""
    kept = {key: session[key] for key in (SESSION_LANG, CSRF_TOKEN) if isinstance(session.get(key), str)}
    session.clear()
    if kept.get(SESSION_LANG) not in LANGS:
        kept.pop(SESSION_LANG, None)
    session.update(kept)


# -- the key that signs the session ------------------------------------------------------------------
def session_key_ready(app: Flask) -> bool:
    """Whether the app has its session key, reading the shared one from the database if not yet (each
    call tries again while the database does not answer)."""
    if app.secret_key:
        return True
    svc: Service | None = app.extensions.get("authz")
    if svc is None:
        return False
    try:
        app.secret_key = svc.session_secret()
    except Unavailable:
        return False
    return True


def needs_session(req: Request, app: Flask) -> bool:
    """The admin UI's pages, and any request that carries the session cookie (the JSON admin API
    accepts the session): the others never touch the session, so never wait for the database."""
    return req.path == "/ui" or req.path.startswith("/ui/") or app.config["SESSION_COOKIE_NAME"] in req.cookies


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie session, HttpOnly and SameSite=Lax, marked Secure whenever the request
    came over HTTPS (directly, or through a trusted proxy saying so). Its key is read lazily (see
    ``session_key_ready``); until then the session is Flask's null session."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if not app.secret_key and needs_session(request, app):
            session_key_ready(app)
        return super().open_session(app, request)

    def get_cookie_secure(self, app: Flask) -> bool:
        if request.is_secure:
            return True
        settings: WebSettings | None = app.extensions.get("authz_web")
        return bool(
            settings
            and settings.is_trusted_proxy(request.remote_addr)
            and request.headers.get("X-Forwarded-Proto", "").lower() == "https"
        )

    def get_cookie_httponly(self, app: Flask) -> bool:
        return True

    def get_cookie_samesite(self, app: Flask) -> str:
        return "Lax"


# -- where to go back to ---------------------------------------------------------------------------
MAX_TARGET = 2000
_BAD_CHARACTER = re.compile(r"[\\\x00-\x20\x7f]")


def _plain(text: str) -> bool:
    """No backslash, no control, blank or invisible character (browsers drop some of them: "/%09/x" decoded
    is "//x" to them), and no "//" anywhere (a host to them)."""
    if _BAD_CHARACTER.search(text) or "//" in text:
        return False
    return not any(c.isspace() or unicodedata.category(c)[0] in "CZ" for c in text if ord(c) > 0x7E)


def safe_next(target: Any, default: str) -> str:
    """``target`` if it is a path on this site, else ``default``: it starts with a single "/", has no
    scheme and no host, and neither it nor any of its percent-decodings holds "//", a backslash, a
    control or a blank character."""
    if not isinstance(target, str) or not target.startswith("/") or len(target) > MAX_TARGET:
        return default
    text = target
    for _ in range(4):  # every layer of percent-encoding a browser, a proxy or a server might undo
        if not _plain(text):
            return default
        decoded = unquote(text)
        if decoded == text:
            return target
        text = decoded
    return default
