"""Authorization service for Belgian CPAS/OCMW applications.

``create_app(overrides)`` assembles everything: settings (``overrides`` by field name of
``config.Settings``, plus ``"web"``: the web UI's, by field name of ``web.settings.WebSettings``), metrics,
database, catalog, decision engine, JSON API, web UI, operations routes, error handlers. Nothing is
created at import time; logging is configured by ``serve``, not here.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Response, g, jsonify, render_template_string, request
from flask_openapi3 import Info, OpenAPI, Tag

from .config import load_settings
from .errors import ServiceError, register_error_handlers
from .service import Service

__all__ = ["create_app"]

DOCS_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>authz-service API</title>
<link rel="stylesheet" href="{{ url_for('swagger.static', filename='css/swagger-ui.css') }}"></head>
<body><div id="swagger-ui"></div>
<script src="{{ url_for('swagger.static', filename='js/swagger-ui-bundle.js') }}"></script>
<script>SwaggerUIBundle({url: "{{ url_for('openapi_json') }}", dom_id: "#swagger-ui"});</script>
</body></html>"""


def create_app(overrides: dict[str, Any] | None = None, *, start_polling: bool = True,
               observe: bool = True) -> OpenAPI:
    # start_polling=False, observe=False: what `serve --preload` makes in gunicorn's master; each worker
    # then calls telemetry.install and service.start_polling itself, after the fork (cli._after_fork)
    # imported here, not at module level: prometheus-client picks its multiprocess mode when it is first
    # imported, which must happen after `serve` set PROMETHEUS_MULTIPROC_DIR
    from .api import admin_api, complete_document, decisions, errors, reply, users_api, validation_error_response
    from .fastpath import EnforceFastPath
    from .inputs import install as install_input_guards
    from .logs import method_name
    from .metrics import Metrics
    from .schemas import ErrorResponse, Health, NotReady, Ready
    from .telemetry import install as install_telemetry

    settings = load_settings(overrides)
    app = OpenAPI(
        __name__,
        info=Info(title="CPAS/OCMW authorization service", version="1"),
        security_schemes={
            "api_key": {"type": "http", "scheme": "bearer",
                        "description": "an API key: Authorization: Bearer azk_<prefix>_<secret>"},
            "session": {"type": "apiKey", "in": "cookie", "name": "authz_session",
                        "description": "the admin UI's session (administration routes only); a change made with "
                                       "it carries the session's CSRF token in X-CSRFToken"},
        },
        validation_error_status=400,
        validation_error_callback=validation_error_response,
        validation_error_model=ErrorResponse,  # what validation_error_response answers
        doc_prefix="/docs",
    )
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        JSON_SORT_KEYS=False,
    )
    metrics = Metrics()
    service = Service(settings, metrics=metrics)
    app.config["SECRET_KEY"] = settings.secret_key or None  # else the database's, read lazily by the web UI
    app.extensions["authz"] = service
    register_error_handlers(app)
    for blueprint in (decisions, users_api, admin_api):
        # flask-openapi3 replaces a path's entry wholesale; two blueprints share
        # /cpas/{cpas}/users/{user} (PUT: users scope, GET: admin scope), so merge their operations
        for path, item in list(blueprint.paths.items()):
            known = app.paths.get(path)
            if known is not None:
                blueprint.paths[path] = known.model_copy(
                    update={k: getattr(item, k) for k in item.model_fields_set if getattr(item, k) is not None}
                )
        app.register_api(blueprint)
    from .authzen import register as register_authzen

    register_authzen(app)  # the OpenID AuthZEN Authorization API 1.0 (authzen.py)
    from .web import init_app as init_web

    init_web(app, service, (overrides or {}).get("web"))  # the web UI's own settings (web/settings.py)

    operations = [Tag(name="operations", description="no key needed")]
    bad_query = errors(400, s400="invalid_request: a control character in the query")

    @app.get("/healthz", operation_id="healthz", tags=operations, responses={
        200: reply("the process runs", Health), **bad_query,
    })
    def healthz() -> Response:
        """Liveness: 200 while the process runs."""
        return jsonify({"status": "ok"})

    @app.get("/livez", operation_id="livez", tags=operations, responses={
        200: reply("the process answers", Health), **bad_query,
    })
    def livez() -> Response:
        """Liveness (the usual name; /healthz is the same): 200 while the process answers."""
        return jsonify({"status": "ok"})

    @app.get("/readyz", operation_id="readyz", tags=operations, responses={
        200: reply("the store answers and the policy is loaded and fresh", Ready),
        503: reply("not ready: fixed sentences, such as \"the policy store does not answer\"", NotReady),
        **bad_query,
    })
    def readyz() -> Response:
        """Ready when the store answers (within AUTHZ_STORE_TIMEOUT) and the policy is loaded and fresh.
        Problems are fixed sentences; what the driver said (hosts, ports, errors) goes to the log."""
        problems: list[str] = []
        try:
            service.read(lambda store: store.ping())
        except ServiceError as err:  # the store does not answer or cannot be reached: not ready
            problems.append(err.message)
        except Exception:
            logging.getLogger(__name__).exception("readiness check")
            problems.append("the policy store is unavailable")
        if not service.engine.loaded:
            last = service.last_error or ""
            problems.append(last if "init-db" in last else "the policy is not loaded")
        elif service.engine.seconds_since_sync() > service.engine.max_staleness:  # as decisions (service.py)
            problems.append("the policy has not been refreshed recently")
        if problems:
            response = jsonify({"status": "unavailable", "problems": problems})
            response.status_code = 503
            return response
        snap = service.engine.current()
        return jsonify({"status": "ready", "cpas_loaded": len(snap.policies) if snap else 0})

    @app.get("/metrics", operation_id="metrics", tags=operations, responses={
        200: reply("Prometheus text (summed over every worker under authz-service serve)",
                   media_type="text/plain", schema={"type": "string"}),
        **bad_query,
    })
    def metrics_route() -> Response:
        """Prometheus metrics: authz_decisions_total, authz_http_request_duration_seconds."""
        body, content_type = metrics.render()
        return Response(body, content_type=content_type)

    complete_document(app)  # /openapi.json: the response models the declarations name, a 400 everywhere

    @app.get("/openapi.json", doc_ui=False)
    def openapi_json() -> Response:
        return jsonify(app.api_doc)

    @app.get("/docs", doc_ui=False)
    def docs() -> str:
        return render_template_string(DOCS_HTML)

    @app.before_request
    def _start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        started = g.get("started")
        if started is not None:
            metrics.requests.labels(  # a made-up method is _OTHER: a caller cannot make up label values
                method_name(request.method), request.endpoint or "unknown", response.status_code
            ).observe(time.perf_counter() - started)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    install_input_guards(app, settings.max_body_bytes)  # JSON, control characters, chunked bodies
    app.wsgi_app = EnforceFastPath(app.wsgi_app, service)  # type: ignore[method-assign]
    if observe:  # request ids, request lines, OpenTelemetry if OTEL_* ask (telemetry.py)
        install_telemetry(app, service)
    service.sync()
    if start_polling:
        service.start_polling()
    return app
