"""Who is using the web UI: a local admin account (session cookie after a password login) or, in
trusted-proxy SSO mode, the identity, CPAS and roles the proxy puts in request headers.

Headers are believed only when the request comes straight from a configured proxy address; from any
other address they are ignored. A local account is re-read on every request, so a deactivated or
changed account takes effect at once.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Literal

from flask import Flask, Request, current_app, request, session
from flask.sessions import SecureCookieSessionInterface

from ..models import AdminAccount
from ..schemas import USER_RE, parse_kbo
from ..security import hash_password, verify_password
from ..service import Service
from .settings import WebSettings

LANGS = ("fr", "nl")
SESSION_ACCOUNT = "account"



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


MAX_FAILED_LOGINS = 5
LOCK_MINUTES = 15


class AccountLocked(Exception):
    """Too many wrong passwords in a row: the account refuses every sign-in for a while."""


def check_password(username: str, password: str) -> AdminAccount | None:
    """The active account whose password this is, else None (same cost either way). After
    MAX_FAILED_LOGINS wrong passwords in a row the account is locked for LOCK_MINUTES (AccountLocked),
    in the database, so every worker and instance agrees; a right password resets the count."""
    with service().admin("web:login") as admin:
        account = admin.store.admin_by_username(username.strip(), lock=True)  # counts add up under load
        if account is None or not account.active:
            verify_password(_dummy_account(), password)
            return None
        now = datetime.now(UTC)
        if account.locked_until is not None and _aware(account.locked_until) > now:
            raise AccountLocked(account.username)
        if verify_password(account, password):
            account.failed_logins, account.locked_until = 0, None
            return account
        account.failed_logins += 1
        if account.failed_logins >= MAX_FAILED_LOGINS:
            account.failed_logins, account.locked_until = 0, now + timedelta(minutes=LOCK_MINUTES)
            admin.store.audit(None, "web:login", "admin.locked", f"admin:{account.username}", None,
                              {"minutes": LOCK_MINUTES, "from": request.remote_addr})
        return None


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)  # SQLite drops the zone


def local_identity(account: AdminAccount) -> Identity:
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
    found = sso_identity(request, web_settings())
    if found is not None:
        return found
    username = session.get(SESSION_ACCOUNT)
    if not isinstance(username, str):
        return None
    account = service().read(lambda store: store.admin_by_username(username))
    if account is None or not account.active:
        session.pop(SESSION_ACCOUNT, None)
        return None
    return local_identity(account)


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie session, HttpOnly and SameSite=Lax, marked Secure whenever the request
    came over HTTPS (directly, or through a trusted proxy saying so)."""

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


def safe_next(target: Any, default: str) -> str:
    """A local path to go back to (never another site)."""
    if isinstance(target, str) and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return default
