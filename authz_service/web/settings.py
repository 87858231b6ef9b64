"""Settings of the admin web UI, read from ``AUTHZ_*`` environment variables when the app starts, then
from ``create_app(overrides)``'s ``"web"`` mapping (field names of :class:`WebSettings`, as the tests
and an embedding application give them).

They live here, not in ``config.Settings``, because only the web UI uses them. A bad value (an
address that is not an IP network, a non-numeric page size, an unknown name) stops the start with a
clear message.

- ``AUTHZ_TRUSTED_PROXIES``: comma-separated addresses or networks of the SSO reverse proxies whose
  identity headers are believed (empty, the default: SSO off, local accounts only).
- ``AUTHZ_SSO_USER_HEADER`` / ``_NAME_HEADER`` / ``_CPAS_HEADER`` / ``_ROLES_HEADER`` / ``_LANG_HEADER``:
  header names (defaults ``X-Remote-User``, ``X-Remote-Name``, ``X-Remote-Cpas``, ``X-Remote-Roles``,
  ``X-Remote-Lang``). CPAS and roles are comma-separated lists.
- ``AUTHZ_SSO_MANAGER_ROLES``: roles that make a configuration manager of the header's CPAS
  (default ``Configuration CPAS,Gestion PrimaWeb``); ``AUTHZ_SSO_OPERATOR_ROLES``: roles that make an
  operator of every CPAS (default none).
- ``AUTHZ_WEB_PER_PAGE``: users per page (default 20).
- ``AUTHZ_WEB_SESSION_HOURS``: the longest a sign-in lasts, however busy (default 8);
  ``AUTHZ_WEB_SESSION_IDLE_MINUTES``: a session unused this long ends (default 30). Both are checked by
  the server on every request, from the times kept in the signed session cookie.
- ``AUTHZ_WEB_LOGIN_ADDRESS_LIMIT``: failed sign-ins allowed from one client address (IPv6: one /64)
  in a moving window, in Flask-Limiter's notation (default ``4 per 15 minutes``: below the five wrong
  passwords that lock an account, so that one address alone can never lock anybody out);
  ``AUTHZ_WEB_LOGIN_ACCOUNT_LIMIT``: failed sign-ins allowed for one username, from any address
  (default ``5 per 15 minutes``). Counted in Redis when ``AUTHZ_REDIS_URL`` is set, else in the
  database: every worker and instance shares the counts either way.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from limits import parse_many

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _list(text: str | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys(part.strip() for part in (text or "").split(",") if part.strip()))


@dataclass(frozen=True)
class WebSettings:
    trusted_proxies: tuple[Network, ...] = ()
    sso_user_header: str = "X-Remote-User"
    sso_name_header: str = "X-Remote-Name"
    sso_cpas_header: str = "X-Remote-Cpas"
    sso_roles_header: str = "X-Remote-Roles"
    sso_lang_header: str = "X-Remote-Lang"
    manager_roles: frozenset[str] = field(default_factory=lambda: frozenset({"configuration cpas", "gestion primaweb"}))
    operator_roles: frozenset[str] = frozenset()
    per_page: int = 20
    session_hours: float = 8.0
    session_idle_minutes: float = 30.0
    login_address_limit: str = "4 per 15 minutes"
    login_account_limit: str = "5 per 15 minutes"

    @property
    def sso_enabled(self) -> bool:
        return bool(self.trusted_proxies)

    def is_trusted_proxy(self, address: str | None) -> bool:
        if not address or not self.trusted_proxies:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.trusted_proxies)


def load_web_settings(env: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None) -> WebSettings:
    """``env`` (the process's environment by default), then ``overrides`` by field name."""
    settings = _from_env(os.environ if env is None else env)
    if not overrides:
        return settings
    unknown = sorted(set(overrides) - {f.name for f in fields(WebSettings)})
    if unknown:
        raise ValueError(f"unknown web UI setting(s): {', '.join(unknown)}")
    values = dict(overrides)
    if isinstance(values.get("trusted_proxies"), str):
        text = values["trusted_proxies"]
        try:
            values["trusted_proxies"] = tuple(ipaddress.ip_network(p, strict=False) for p in _list(text))
        except ValueError as exc:
            raise ValueError(f"trusted_proxies: {exc}") from None
    return replace(settings, **values)


def _from_env(env: Mapping[str, str]) -> WebSettings:
    try:
        proxies = tuple(ipaddress.ip_network(p, strict=False) for p in _list(env.get("AUTHZ_TRUSTED_PROXIES")))
    except ValueError as exc:
        raise ValueError(f"AUTHZ_TRUSTED_PROXIES: {exc}") from None
    defaults = WebSettings()
    values: dict[str, object] = {"trusted_proxies": proxies}
    for name in ("user", "name", "cpas", "roles", "lang"):
        header = env.get(f"AUTHZ_SSO_{name.upper()}_HEADER", "").strip()
        if header:
            values[f"sso_{name}_header"] = header
    if "AUTHZ_SSO_MANAGER_ROLES" in env:
        values["manager_roles"] = frozenset(r.casefold() for r in _list(env["AUTHZ_SSO_MANAGER_ROLES"]))
    if "AUTHZ_SSO_OPERATOR_ROLES" in env:
        values["operator_roles"] = frozenset(r.casefold() for r in _list(env["AUTHZ_SSO_OPERATOR_ROLES"]))
    for key, name, kind, low in (
        ("AUTHZ_WEB_PER_PAGE", "per_page", int, 1),
        ("AUTHZ_WEB_SESSION_HOURS", "session_hours", float, 0.1),
        ("AUTHZ_WEB_SESSION_IDLE_MINUTES", "session_idle_minutes", float, 1),
    ):
        if env.get(key, "").strip():
            try:
                number = kind(env[key])
            except ValueError:
                raise ValueError(f"{key} must be a number, got {env[key]!r}") from None
            if number < low:
                raise ValueError(f"{key} must be at least {low}")
            values[name] = number
    for key, name in (("AUTHZ_WEB_LOGIN_ADDRESS_LIMIT", "login_address_limit"),
                      ("AUTHZ_WEB_LOGIN_ACCOUNT_LIMIT", "login_account_limit")):
        text = env.get(key, "").strip()
        if text:
            try:
                parse_many(text)
            except ValueError:
                raise ValueError(f"{key} must be a rate such as '4 per 15 minutes', got {text!r}") from None
            values[name] = text
    return WebSettings(**{**defaults.__dict__, **values})
