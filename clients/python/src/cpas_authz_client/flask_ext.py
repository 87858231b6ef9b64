"""Flask integration for a calling application: a decorator that lets a view run only when the
authorization service says the logged-in user may use a function in the current CPAS.

Fail-closed, and saying why: the service's "no" -> 403; no user or no CPAS (nobody signed in, or an error
reading them) -> 403; the service cannot decide (down, too slow, refusing the key, an answer that is not a
decision) -> 503 with ``Retry-After``, still refused. The calling application says who and where through
two callables reading its own session or ``g``.
"""

from __future__ import annotations

import enum
import functools
import logging
import re
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from flask import Flask, abort, current_app, g
from werkzeug.exceptions import ServiceUnavailable

from .client import AuthzClient
from .models import AuthzError

P = ParamSpec("P")
R = TypeVar("R")

EXTENSION = "cpas_authz"
_FUNCTION_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$")

log = logging.getLogger("cpas_authz_client")
RETRY_AFTER = 5  # seconds, on a 503 "cannot decide"


class Verdict(enum.Enum):
    """What the service said: yes, no, or nothing usable (which refuses too, but is not a "no")."""

    ALLOWED = "allowed"
    DENIED = "denied"
    UNDECIDED = "undecided"


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

    def verdict(self, function: str) -> Verdict:
        """The service's answer for the current user, ``function`` and the current CPAS, memoized for the
        request: DENIED without a user or a CPAS; UNDECIDED when the call fails (logged, no user id)."""
        who = self._who()
        if who is None:
            return Verdict.DENIED
        memo: dict[tuple[str, str, str], Verdict] = g.setdefault("_cpas_authz_decisions", {})
        key = (*who, function)
        if key not in memo:
            memo[key] = self._ask(who[0], who[1], function)
        return memo[key]

    def _ask(self, cpas: str, user: str, function: str) -> Verdict:
        try:
            decision = self.client_for(current_app).check(cpas, user, function)
        except AuthzError as err:
            log.warning("authorization check failed, refusing (cpas=%s function=%s): %s", cpas, function, err)
            return Verdict.UNDECIDED
        except Exception:
            log.warning("authorization check failed unexpectedly, refusing (cpas=%s function=%s)", cpas, function,
                        exc_info=True)
            return Verdict.UNDECIDED
        return Verdict.ALLOWED if decision.allowed is True else Verdict.DENIED

    def allowed(self, function: str) -> bool:
        """May the current user use ``function`` in the current CPAS? Fail-closed (False unless allowed)."""
        return self.verdict(function) is Verdict.ALLOWED

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
        """Decorator: the view runs only if the service allows ``function``; its "no" is a 403, and a
        service that cannot decide is a 503 with ``Retry-After`` (refused too, but the user may retry)."""
        if not _FUNCTION_RE.match(function):
            raise ValueError(f"{function!r} is not a function code like 'dossier.search'")

        def decorator(view: Callable[P, R]) -> Callable[P, R]:
            @functools.wraps(view)
            def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
                verdict = self.verdict(function)
                if verdict is Verdict.UNDECIDED:
                    raise ServiceUnavailable("The authorization service cannot decide at the moment: "
                                             "try again in a few seconds.", retry_after=RETRY_AFTER)
                if verdict is not Verdict.ALLOWED:
                    abort(403, description=f"You may not use this function ({function}).")
                return view(*args, **kwargs)

            return guarded

        return decorator


__all__ = ["EXTENSION", "AuthzFlask", "Verdict"]
