"""Observability of requests: request ids and log lines (``logs.py``) and OpenTelemetry traces and metrics.

``install(app, service)``, called by ``create_app`` once the lean ``/enforce`` path wraps the app, puts
in place what the settings and the standard ``OTEL_*`` variables ask for, and nothing else: with the
request log, the decision log and OpenTelemetry all off, the app is left exactly as it was, so the lean
path costs nothing more.

OpenTelemetry is off unless asked for, by ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or its ``_TRACES_`` /
``_METRICS_`` form: OTLP over HTTP/protobuf) or by ``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER``
(``otlp``, ``console``, ``none``); ``OTEL_SDK_DISABLED=true`` turns it off. The SDK reads the other
variables itself (endpoint, headers, timeouts, ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``,
``OTEL_TRACES_SAMPLER``, ``OTEL_PROPAGATORS``, ``OTEL_SEMCONV_STABILITY_OPT_IN``,
``OTEL_PYTHON_FLASK_EXCLUDED_URLS``...). A value this service cannot honour stops it at start.

Flask's routes get their spans and HTTP metrics from opentelemetry-instrumentation-flask; the lean path
gets a server span per request with the same semantic-convention attributes from
opentelemetry-instrumentation-wsgi's middleware (a request it hands over to Flask keeps that span, and
Flask's becomes its child). What the spans leave out: the ``user`` of a path (``/cpas/<cpas>/users/
<user>``: a person's identifier) is replaced by ``REDACTED`` in ``http.target`` / ``url.path`` and the
URL, and so are the values of a query string (the admin UI's searches are people's names); bodies are
never recorded, and neither are headers unless ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_*`` asks.
The CPAS (a public enterprise number), profile ids, routes, the client's address and user agent stay.

The providers belong to the app (never the global ones: two apps in one process stay apart), and are
made in the process that serves: under ``authz-service serve`` that is each gunicorn worker, after the
fork (``serve --preload``, the default, makes the app in the master without them and each worker calls
``install`` from gunicorn's ``post_fork`` hook; ``--no-preload`` makes the whole app in each worker), so
each worker has its own export threads and its own ``service.instance.id``; they are flushed at exit.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import Flask

from . import logs
from .fastpath import EnforceFastPath

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.trace import SpanProcessor
    from opentelemetry.trace import Span, TracerProvider

    from .service import Service

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

EXTENSION = "authz.telemetry"  # app.extensions: the app's Telemetry, or None
REDACTED = "REDACTED"
LEAN_ROUTE_KEY = "authz.lean_route"  # WSGI environ: the rule and endpoint of a request the lean path takes
SAFE_PATH_VALUES = frozenset({"cpas", "profile_id", "filename"})  # route variables shown as they are
VARIABLE = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")  # a werkzeug rule's <converter:name>


def _otlp_spans() -> SpanProcessor:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    return BatchSpanProcessor(OTLPSpanExporter())


def _console_spans() -> SpanProcessor:
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    return BatchSpanProcessor(ConsoleSpanExporter())


def _otlp_metrics() -> MetricReader:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    return PeriodicExportingMetricReader(OTLPMetricExporter())


def _console_metrics() -> MetricReader:
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader

    return PeriodicExportingMetricReader(ConsoleMetricExporter())


# the exporters OTEL_TRACES_EXPORTER and OTEL_METRICS_EXPORTER may name (tests add an in-memory one)
SPAN_PROCESSORS: dict[str, Callable[[], SpanProcessor]] = {"otlp": _otlp_spans, "console": _console_spans}
METRIC_READERS: dict[str, Callable[[], MetricReader]] = {"otlp": _otlp_metrics, "console": _console_metrics}


@dataclass(frozen=True)
class TelemetryConfig:
    """Which exporters the ``OTEL_*`` variables ask for; empty: that signal is off."""

    traces: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()

    @property
    def enabled(self) -> bool:
        return bool(self.traces or self.metrics)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> TelemetryConfig:
        """ValueError, with a sentence naming the variable, for a value this service cannot honour."""
        env = os.environ if environ is None else environ
        if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return cls()
        return cls(_exporters(env, "TRACES", SPAN_PROCESSORS), _exporters(env, "METRICS", METRIC_READERS))

    def start(self) -> Telemetry:
        """The providers, with their exporters (and threads): once per process, in the process that
        serves (a gunicorn worker, after the fork)."""
        from opentelemetry.metrics import NoOpMeterProvider
        from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
        from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
        from opentelemetry.trace import NoOpTracerProvider

        resource = _resource()
        tracer_provider: TracerProvider = NoOpTracerProvider()
        if self.traces:
            sdk_tracer_provider = SdkTracerProvider(resource=resource)  # sampler: OTEL_TRACES_SAMPLER
            for name in self.traces:
                sdk_tracer_provider.add_span_processor(SPAN_PROCESSORS[name]())
            tracer_provider = sdk_tracer_provider
        meter_provider: MeterProvider = NoOpMeterProvider()
        if self.metrics:
            meter_provider = SdkMeterProvider(resource=resource,
                                              metric_readers=[METRIC_READERS[name]() for name in self.metrics])
        return Telemetry(tracer_provider, meter_provider)


def _exporters(env: Mapping[str, str], signal: str, known: Mapping[str, object]) -> tuple[str, ...]:
    variable = f"OTEL_{signal}_EXPORTER"
    listed = env.get(variable)
    if listed is None:  # off, unless an OTLP endpoint is given
        endpoint = env.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        listed = "otlp" if endpoint else "none"
    names = tuple(dict.fromkeys(n.strip().lower() for n in listed.split(",") if n.strip()))
    if "none" in names:
        return ()
    for name in names:
        if name not in known:
            choices = ", ".join(sorted({*known, "none"}))
            raise ValueError(f"{variable}={listed}: this service knows the exporters {choices}")
    if "otlp" in names:
        protocol = (env.get(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
                    or "http/protobuf").strip()
        if protocol != "http/protobuf":
            raise ValueError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol}: this service exports OTLP over "
                             "http/protobuf only")
    return names


def _resource() -> Any:
    from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, SERVICE_VERSION, Resource

    detected = Resource.create()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, the SDK's own
    try:
        version = importlib.metadata.version("authz-service")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    attributes = dict(detected.attributes)
    if str(attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        attributes[SERVICE_NAME] = "authz-service"
    attributes.setdefault(SERVICE_VERSION, version)
    # every gunicorn worker exports its own metrics: each must be a distinct instance of the service
    attributes.setdefault(SERVICE_INSTANCE_ID, str(uuid.uuid4()))
    return Resource(attributes, detected.schema_url)


@dataclass(frozen=True)
class Telemetry:
    tracer_provider: TracerProvider
    meter_provider: MeterProvider

    def flush(self) -> None:
        for provider in (self.tracer_provider, self.meter_provider):
            flush = getattr(provider, "force_flush", None)
            if flush is not None:
                flush()

    def shutdown(self) -> None:
        for provider in (self.tracer_provider, self.meter_provider):
            shutdown = getattr(provider, "shutdown", None)
            if shutdown is not None:
                shutdown()


def install(app: Flask, service: Service, *, environ: Mapping[str, str] | None = None) -> Telemetry | None:
    """What the settings and ``OTEL_*`` ask for, on ``app`` (whose ``wsgi_app`` is the lean path)."""
    config = TelemetryConfig.from_environment(environ)
    telemetry = config.start() if config.enabled else None
    app.extensions[EXTENSION] = telemetry
    settings = service.settings
    if telemetry is None and not settings.access_log and not settings.decision_log:
        return None  # nothing looks at requests: leave the lean path as it is
    lean = app.wsgi_app
    assert isinstance(lean, EnforceFastPath), "install() comes after the lean path"
    logs.install_request_hooks(app, access_log=settings.access_log)
    flask_app = lean.app  # Flask itself, as the lean path hands requests over to it
    instrumented = flask_app
    if telemetry is not None:
        from opentelemetry.instrumentation.flask import FlaskInstrumentor

        # instrument Flask itself, under the lean path (whose own answers get their span from the
        # middleware of ObservedEnforceFastPath)
        app.wsgi_app = flask_app  # type: ignore[method-assign,assignment]
        first = app.before_request_funcs.setdefault(None, [])
        FlaskInstrumentor.instrument_app(app, tracer_provider=telemetry.tracer_provider,
                                         meter_provider=telemetry.meter_provider, enable_commenter=False,
                                         response_hook=_scrub_flask)
        # its span starts before any other hook, so that a request an input guard refuses has one too
        first.insert(0, first.pop())
        instrumented = app.wsgi_app
    app.wsgi_app = ObservedEnforceFastPath(  # type: ignore[method-assign]
        flask_app, service, flask=instrumented, telemetry=telemetry, access_log=settings.access_log)
    return telemetry


class ObservedEnforceFastPath(EnforceFastPath):
    """The lean path, observed: a request of its routes (``EnforceFastPath.route``) gets its request id,
    its log line and (OpenTelemetry on) its server span and HTTP metrics here, then goes to the lean path
    as ever; anything else goes to Flask (``flask``: instrumented when OpenTelemetry is on). A request the
    lean path hands over goes to ``app``, Flask without its instrumentation's outer layer, so that its
    duration is counted once (by the lean span's middleware) and its Flask span is a child of the lean one;
    Flask sets its header and writes its line."""

    def __init__(self, app: WSGIApp, service: Service, *, flask: WSGIApp, telemetry: Telemetry | None,
                 access_log: bool) -> None:
        super().__init__(app, service)
        self.flask = flask
        self.access_log = access_log
        self.entry: WSGIApp = self._observed
        if telemetry is not None:
            from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware

            self.entry = OpenTelemetryMiddleware(
                self._observed, request_hook=_route_enforce, response_hook=_scrub_lean,
                tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider,
            )

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        route = self.route(environ)
        if route is None:
            return self.flask(environ, start_response)
        environ[LEAN_ROUTE_KEY] = route
        return self.entry(environ, start_response)

    def _observed(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        environ[logs.STARTED_KEY] = time.perf_counter()
        rid = environ[logs.REQUEST_ID_KEY] = logs.request_id(environ.get("HTTP_X_REQUEST_ID"))
        status = 0

        def start(line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            nonlocal status
            status = int(line[:3])
            # Flask, when it answered, set the header itself; so did the lean path echoing AuthZEN's
            if not environ.get(logs.LOGGED_KEY) and all(name != logs.HEADER for name, _ in headers):
                headers.append((logs.HEADER, rid))
            return start_response(line, headers, exc_info)

        token = logs.REQUEST_ID.set(rid)
        try:
            body = super().__call__(environ, start)
            if self.access_log and not environ.get(logs.LOGGED_KEY):
                logs.log_request(environ, status, *environ[LEAN_ROUTE_KEY])
            return body
        finally:
            logs.REQUEST_ID.reset(token)


# -- what spans say ---------------------------------------------------------------------------------------
def _route_enforce(span: Span, environ: dict[str, Any]) -> None:
    if span.is_recording():
        rule = environ[LEAN_ROUTE_KEY][0]
        span.set_attribute("http.route", rule)
        span.update_name(f"{environ.get('REQUEST_METHOD', '')} {rule}")  # the rule, never a user's id


def _scrub_lean(span: Span, environ: dict[str, Any], _status: str, _headers: Any) -> None:
    # the rule's variables as _scrub_flask shows them, from the path's segments (the lean path's rules
    # have one segment per variable)
    rule, sent = environ[LEAN_ROUTE_KEY][0].split("/"), environ.get("PATH_INFO", "").split("/")
    path = "/".join(
        segment if (found := VARIABLE.fullmatch(segment)) is None
        else value if found[1] in SAFE_PATH_VALUES else REDACTED
        for segment, value in zip(rule, sent, strict=False))
    _scrub(span, path, environ.get("QUERY_STRING", ""), environ)


def _scrub_flask(span: Span | None, _status: str, _headers: Any) -> None:
    from flask import request

    if span is None:
        return
    rule = request.url_rule
    values = request.view_args or {}
    path = REDACTED
    if rule is not None:
        path = VARIABLE.sub(lambda m: str(values.get(m[1], REDACTED)) if m[1] in SAFE_PATH_VALUES else REDACTED,
                            rule.rule)
    _scrub(span, path, request.query_string.decode("latin-1"), request.environ)


def _scrub(span: Span, path: str, query: str, environ: dict[str, Any]) -> None:
    """Overwrite what the instrumentation recorded of the URL with ``path`` and the query's names only."""
    recorded = getattr(span, "attributes", None)
    if not recorded or not span.is_recording():
        return
    query = "&".join(f"{part.split('=', 1)[0]}={REDACTED}" for part in query.split("&") if part)
    target = f"{path}?{query}" if query else path
    url = f"{environ.get('wsgi.url_scheme', 'http')}://{environ.get('HTTP_HOST', '')}{target}"
    for key, value in (("http.target", target), ("url.path", path), ("url.query", query),
                       ("http.url", url), ("url.full", url)):
        if key in recorded:
            span.set_attribute(key, value)
