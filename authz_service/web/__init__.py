"""The admin web UI: server-rendered pages in French and Dutch for configuration managers (profiles,
users, print views, Admin-Logs) and "Mes accès" for every signed-in user, under ``/ui``.

``init_app(app, service, overrides)`` binds it to the app built by ``create_app``: settings from the
environment and ``create_app``'s overrides (``settings``), Flask-Babel, Flask-WTF's CSRF protection
(checked for this blueprint's forms only: the JSON API authenticates with bearer keys and keeps its own
error envelopes), the
session cookie's flags and its lazily read key (``auth``), the login throttle (``throttle``), and the
blueprint with its own HTML error pages.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from flask import Flask, Response, current_app, redirect, request, url_for
from flask_babel import Babel
from flask_wtf.csrf import validate_csrf
from wtforms import ValidationError

from ..errors import Forbidden, Unavailable
from ..security import Principal
from ..service import Service
from .auth import SessionInterface, current_identity, now
from .i18n import prepare_translations, select_locale
from .settings import load_web_settings
from .throttle import init_throttle

__all__ = ["init_app"]


def session_principal() -> Principal | None:
    """The signed-in manager or operator as a principal of the JSON admin API, or None. A change
    (any method but GET/HEAD/OPTIONS) must carry the session's CSRF token in X-CSRFToken, as the UI's
    forms carry it in their fields: a cookie alone never authorizes a change. While the session key
    cannot be read from the database, a request carrying the session cookie is answered 503."""
    if not current_app.secret_key:  # the session interface tried to read it for a request with the cookie
        if current_app.config["SESSION_COOKIE_NAME"] in request.cookies:
            raise Unavailable("the admin session cannot be checked: the service cannot read its session key "
                              "from the database; try again shortly")
        return None
    who = current_identity()
    if who is None:
        return None
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        try:
            validate_csrf(request.headers.get("X-CSRFToken"))
        except ValidationError:
            raise Forbidden(
                "a change made with the admin session needs the session's CSRF token in X-CSRFToken"
            ) from None
    return Principal(
        name=who.actor,
        scopes=frozenset({"admin"}) if who.manager or who.operator else frozenset(),
        cpas=None if who.operator else frozenset(who.cpas),
    )


def init_app(app: Flask, service: Service, overrides: Mapping[str, Any] | None = None) -> None:
    """``overrides``: web UI settings by field name (``create_app``'s ``"web"`` mapping)."""
    settings = load_web_settings(overrides=overrides)
    app.extensions.setdefault("authz", service)
    app.extensions["authz_web"] = settings
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)  # checked by the blueprint, not app-wide
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", int(settings.session_hours * 3600))
    app.config.update(
        SESSION_COOKIE_NAME="authz_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.session_hours),
    )
    app.session_interface = SessionInterface()
    Babel(app, locale_selector=select_locale, default_locale="fr",
          default_translation_directories=str(prepare_translations()), default_timezone="Europe/Brussels")

    from . import reviews  # noqa: F401  (the access review pages join the blueprint)
    from .views import bp, csrf

    csrf.init_app(app)
    app.register_blueprint(bp)
    init_throttle(app, service, settings, clock=lambda: now(app).timestamp())
    app.extensions["authz_session_principal"] = session_principal

    def root() -> Response:
        return redirect(url_for("web.index"))  # type: ignore[return-value]

    app.add_url_rule("/", "web_root", root)
