"""Flask integration for a calling application: a decorator that lets a view run only when the
authorization service says the logged-in user may use a function in the current CPAS.

Fail-closed: no user, no CPAS, an error reading them, any failure of the service -> 403. The calling
application says who and where through two callables reading its own session or ``g``.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from flask import Flask, abort, current_app, g

from .client import AuthzClient

P = ParamSpec("P")
R = TypeVar("R")

EXTENSION = "cpas_authz"
_FUNCTION_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$")

log = logging.getLogger("cpas_authz_client")


class AuthzFlask:
    """``AuthzFlask(app, client=AuthzClient(...), get_user=..., get_cpas=...)``, or without ``app`` and
    ``init_app(app)`` later (app factory). Without ``client``, ``init_app`` builds one from the app's
    config: ``AUTHZ_URL``, ``AUTHZ_API_KEY`` and optionally ``AUTHZ_TIMEOUT``."""

    def __init__(
        self,
        app: Flask | None = None,
        *,
        client: AuthzClient | None = None,
        get_user: Callable[[], str | None],
        get_cpas: Callable[[], str | None],
    ) -> None:
        self.client = client
        self.get_user = get_user
        self.get_cpas = get_cpas
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        client = self.client
        if client is None:
            url, key = app.config.get("AUTHZ_URL"), app.config.get("AUTHZ_API_KEY")
            if not url or not key:
                raise RuntimeError("AuthzFlask needs a client, or AUTHZ_URL and AUTHZ_API_KEY in the app config")
            client = AuthzClient(url, api_key=key, timeout=float(app.config.get("AUTHZ_TIMEOUT", 2.0)))
        app.extensions[EXTENSION] = client
        app.add_template_global(self.allowed, "authz_allowed")
        app.add_template_global(self.functions, "authz_functions")

    @staticmethod
    def client_for(app: Flask) -> AuthzClient:
        try:
            client: AuthzClient = app.extensions[EXTENSION]
        except KeyError:
            raise RuntimeError("AuthzFlask.init_app(app) was not called for this application") from None
        return client

    def _who(self) -> tuple[str, str] | None:
        try:
            user, cpas = self.get_user(), self.get_cpas()
        except Exception:
            log.warning("get_user/get_cpas failed; denying", exc_info=True)
            return None
        if not user or not cpas:
            return None
        return cpas, user

    def allowed(self, function: str) -> bool:
        """May the current user use ``function`` in the current CPAS? Memoized for the request."""
        who = self._who()
        if who is None:
            return False
        memo: dict[tuple[str, str, str], bool] = g.setdefault("_cpas_authz_decisions", {})
        key = (*who, function)
        if key not in memo:
            memo[key] = self.client_for(current_app).is_allowed(who[0], who[1], function)
        return memo[key]

    def functions(self) -> frozenset[str]:
        """The current user's functions (for a menu), fail-closed; one ETag-revalidated call per request."""
        who = self._who()
        if who is None:
            return frozenset()
        if "_cpas_authz_functions" not in g:
            g._cpas_authz_functions = self.client_for(current_app).allowed_functions(*who)
        found: frozenset[str] = g._cpas_authz_functions
        return found

    def require_function(self, function: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """Decorator: the view runs only if the check allows ``function``; otherwise ``abort(403)``."""
        if not _FUNCTION_RE.match(function):
            raise ValueError(f"{function!r} is not a function code like 'dossier.search'")

        def decorator(view: Callable[P, R]) -> Callable[P, R]:
            @functools.wraps(view)
            def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
                if not self.allowed(function):
                    abort(403, description=f"You may not use this function ({function}).")
                return view(*args, **kwargs)

            return guarded

        return decorator


__all__ = ["EXTENSION", "AuthzFlask"]
