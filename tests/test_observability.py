"""Observability: JSON log lines with request and trace ids (logs.py), OpenTelemetry spans and metrics for
the Flask routes and the lean /enforce path (telemetry.py), /livez, the decision log, metric names."""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.test import Client
from werkzeug.wrappers import Response

from authz_service import logs, telemetry
from authz_service.fastpath import EnforceFastPath

OTEL_VARIABLES = ("OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT",
                  "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                  "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES")
HEX32 = re.compile(r"[0-9a-f]{32}")


@pytest.fixture(autouse=True)
def no_otel_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def lines() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The JSON lines our loggers wrote so far, through the handler `serve` uses, parsed (each must parse)."""
    stream = io.StringIO()
    handler = logs.json_handler(stream)
    parent = logging.getLogger("authz")
    level = parent.level
    parent.setLevel(logging.INFO)
    parent.addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        parent.removeHandler(handler)
        parent.setLevel(level)


@pytest.fixture
def decision_log(overrides: dict[str, Any]) -> dict[str, Any]:
    overrides["decision_log"] = True
    return overrides


@pytest.fixture
def traced(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """OpenTelemetry on, as OTEL_TRACES_EXPORTER / OTEL_METRICS_EXPORTER turn it on, with in-memory
    exporters in place of OTLP."""
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    spans = InMemorySpanExporter()
    reader = InMemoryMetricReader()
    monkeypatch.setitem(telemetry.SPAN_PROCESSORS, "memory", lambda: SimpleSpanProcessor(spans))
    monkeypatch.setitem(telemetry.METRIC_READERS, "memory", lambda: reader)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "memory")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "memory")
    yield {"spans": spans, "metrics": reader}


def enforce_body(demo: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"cpas": demo["cpas"], "user": next(iter(demo["users"])), "function": "dossier.search", **extra}


def post_json(client: Client, url: str, body: Any, key: str, **headers: str) -> Any:
    answer = client.post(url, data=json.dumps(body), content_type="application/json",
                         headers={"Authorization": f"Bearer {key}", **headers})
    answer.get_data()  # the body read, as a server does: a span ends once its body is sent
    return answer


# -- request ids and the request log ---------------------------------------------------------------------
def test_request_lines_are_json_with_the_request_id(app: Any, operator: Any, demo: dict[str, Any],
                                                    lines: Any) -> None:
    client = Client(app, Response)
    lean = post_json(client, "/enforce", enforce_body(demo), operator.key, **{"X-Request-ID": "caller-id-1"})
    assert lean.status_code == 200 and lean.headers["X-Request-ID"] == "caller-id-1"
    refused = post_json(client, "/enforce", {"cpas": demo["cpas"]}, operator.key)  # handed over to Flask
    assert refused.status_code == 400 and HEX32.fullmatch(refused.headers["X-Request-ID"])
    assert refused.headers.getlist("X-Request-ID") == [refused.headers["X-Request-ID"]]
    user = next(iter(demo["users"]))
    listed = client.get(f"/cpas/{demo['cpas']}/users/{user}/functions",
                        headers={"Authorization": f"Bearer {operator.key}", "X-Request-ID": "bad id\twith space"})
    assert listed.status_code == 200
    generated = listed.headers["X-Request-ID"]
    assert HEX32.fullmatch(generated)

    requests = [line for line in lines() if line["logger"] == "authz.access"]
    assert [r["request_id"] for r in requests] == ["caller-id-1", refused.headers["X-Request-ID"], generated]
    first, second, third = requests
    assert first["message"] == "request" and first["level"] == "INFO" and first["time"]
    assert (first["method"], first["route"], first["endpoint"], first["status"]) == \
        ("POST", "/enforce", "decisions.enforce", 200)
    assert (second["route"], second["endpoint"], second["status"]) == ("/enforce", "decisions.enforce", 400)
    assert third["route"] == "/cpas/<cpas>/users/<user>/functions" and third["status"] == 200
    assert user not in json.dumps(requests)  # the route, never the path
    assert all(r["duration_seconds"] >= 0 and "trace_id" not in r for r in requests)  # tracing is off


def test_change_lines(app: Any, operator: Any, lines: Any) -> None:
    cpas = {"cpas": "0212345668", "name_fr": "CPAS", "name_nl": "OCMW", "region": "brussels"}
    assert operator.post("/cpas", cpas, headers={"X-Request-ID": "create-1"}).status_code == 201
    assert operator.post("/cpas", cpas).status_code == 409
    changes = [line for line in lines() if line["logger"] == "authz.changes"]
    assert len(changes) == 2
    made, refused = changes
    assert made["actor"].startswith("key:") and made["use_case"] == "create_cpas"
    assert (made["cpas"], made["policy_version"], made["outcome"], made["request_id"]) == \
        (["0212345668"], 1, "changed", "create-1")
    assert (refused["outcome"], refused["error"], refused["policy_version"]) == ("refused", "conflict", None)


def test_logging_as_serve_configures_it() -> None:
    """`serve`'s logging: JSON lines on standard output at AUTHZ_LOG_LEVEL, our loggers at INFO whatever it."""
    code = (
        "import logging; from authz_service import logs; logs.configure('WARNING'); "
        "logging.getLogger('authz.access').info('request', extra={'status': 200}); "
        "logging.getLogger('other').info('not shown'); logging.getLogger('other').warning('shown %s', 1)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    parsed = [json.loads(line) for line in out.stdout.splitlines()]
    assert [(p["logger"], p["message"]) for p in parsed] == [("authz.access", "request"), ("other", "shown 1")]
    assert parsed[0]["status"] == 200 and parsed[0]["level"] == "INFO" and "time" in parsed[0]


# -- the decision log -----------------------------------------------------------------------------------
def test_decision_log_writes_every_decision(decision_log: Any, app: Any, operator: Any, demo: dict[str, Any],
                                            lines: Any) -> None:
    lean = app.wsgi_app
    assert isinstance(lean, EnforceFastPath)
    body = enforce_body(demo)
    client = Client(app, Response)
    answer = post_json(client, "/enforce", body, operator.key, **{"X-Request-ID": "d-1"})
    assert answer.get_json().keys() == {"allowed", "policy_version"}  # not explained unless asked
    assert post_json(Client(lean.app, Response), "/enforce", body, operator.key).status_code == 200  # Flask's route
    batch = {"requests": [{"id": 1, **body}, {"id": 2, **body, "function": "help_request.list"}]}
    assert post_json(client, "/enforce/batch", batch, operator.key).status_code == 200
    decisions = [line for line in lines() if line["logger"] == "authz.decisions"]
    assert [d["function"] for d in decisions] == ["dossier.search", "dossier.search", "dossier.search",
                                                  "help_request.list"]
    first = decisions[0]
    assert first["request_id"] == "d-1" and first["message"] == "decision"
    assert (first["cpas"], first["user"], first["allowed"]) == (body["cpas"], body["user"], answer.json["allowed"])
    assert first["policy_version"] == answer.json["policy_version"]
    assert first["explanation"]["reason"] in {"granted", "not_granted", "missing_prerequisite"}
    assert first["client"].startswith("key:")


def test_no_decision_log_by_default(app: Any, operator: Any, demo: dict[str, Any], lines: Any) -> None:
    assert operator.post("/enforce", enforce_body(demo)).status_code == 200
    assert [line for line in lines() if line["logger"] == "authz.decisions"] == []


def test_nothing_observed_leaves_the_lean_path_alone(overrides: dict[str, Any], app: Any) -> None:
    assert type(app.wsgi_app).__name__ == "ObservedEnforceFastPath"  # the request log is on by default
    from authz_service import create_app

    plain = create_app({**overrides, "access_log": False}, start_polling=False)
    try:
        assert type(plain.wsgi_app) is EnforceFastPath
        answer = plain.test_client().get("/livez")
        assert answer.status_code == 200 and "X-Request-ID" not in answer.headers
    finally:
        plain.extensions["authz"].close()


# -- OpenTelemetry ---------------------------------------------------------------------------------------
def test_spans_for_flask_routes_and_the_lean_path(traced: dict[str, Any], app: Any, operator: Any,
                                                  demo: dict[str, Any], lines: Any) -> None:
    from opentelemetry.trace import SpanKind

    client = Client(app, Response)
    user = next(iter(demo["users"]))
    lean = post_json(client, "/enforce", enforce_body(demo), operator.key)
    handed = post_json(client, "/enforce", {"cpas": demo["cpas"]}, operator.key)
    auth = {"Authorization": f"Bearer {operator.key}"}
    listed = client.get(f"/cpas/{demo['cpas']}/users/{user}/functions?lang=nl", headers=auth)  # the lean path too
    assert listed.get_data()  # its span ends once its body is sent
    shown = client.get(f"/cpas/{demo['cpas']}/users/{user}?lang=nl", headers=auth)  # a Flask route
    assert shown.get_data()
    assert (lean.status_code, handed.status_code, listed.status_code, shown.status_code) == (200, 400, 200, 200)
    app.extensions[telemetry.EXTENSION].flush()
    spans = traced["spans"].get_finished_spans()

    def status(span: Any) -> Any:
        return span.attributes.get("http.status_code", span.attributes.get("http.response.status_code"))

    servers = [s for s in spans if s.kind == SpanKind.SERVER]
    assert [(s.name, s.attributes["http.route"], status(s)) for s in servers] == [
        ("POST /enforce", "/enforce", 200),
        ("POST /enforce", "/enforce", 400),
        ("GET /cpas/<cpas>/users/<user>/functions", "/cpas/<cpas>/users/<user>/functions", 200),
        ("GET /cpas/<cpas>/users/<user>", "/cpas/<cpas>/users/<user>", 200),
    ]
    # the request the lean path handed over: Flask's span is a child of the lean one
    inner = [s for s in spans if s.kind == SpanKind.INTERNAL and s.name == "POST /enforce"]
    assert len(inner) == 1 and inner[0].parent.span_id == servers[1].context.span_id
    # no person's identifier in any attribute; the path keeps its CPAS, the query its names only
    assert user not in json.dumps([dict(s.attributes) for s in spans])
    target = servers[2].attributes.get("http.target") or servers[2].attributes["url.path"]
    assert target.startswith(f"/cpas/{demo['cpas']}/users/REDACTED/functions")
    target = servers[3].attributes.get("http.target") or servers[3].attributes["url.path"]
    assert target.startswith(f"/cpas/{demo['cpas']}/users/REDACTED")

    # each request line carries the trace id of its request's server span
    requests = [line for line in lines() if line["logger"] == "authz.access"]
    assert [r["trace_id"] for r in requests] == [format(s.context.trace_id, "032x") for s in servers]

    # HTTP metrics: every request counted once, the handed-over one by the lean path's middleware
    counts: dict[str, int] = {}
    data = traced["metrics"].get_metrics_data()
    for resource_metrics in data.resource_metrics:
        assert resource_metrics.resource.attributes["service.name"] == "authz-service"
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                if metric.name in ("http.server.duration", "http.server.request.duration"):
                    counts[scope.scope.name] = sum(p.count for p in metric.data.data_points)
    assert counts == {"opentelemetry.instrumentation.wsgi": 3, "opentelemetry.instrumentation.flask": 1}


def test_telemetry_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    config = telemetry.TelemetryConfig.from_environment
    assert not config({}).enabled
    assert config({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}) == \
        telemetry.TelemetryConfig(("otlp",), ("otlp",))
    assert config({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}).metrics == ()
    assert config({"OTEL_TRACES_EXPORTER": "console", "OTEL_METRICS_EXPORTER": "none"}).traces == ("console",)
    assert not config({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}).enabled
    with pytest.raises(ValueError, match="OTEL_TRACES_EXPORTER=zipkin"):
        config({"OTEL_TRACES_EXPORTER": "zipkin"})
    with pytest.raises(ValueError, match="http/protobuf"):
        config({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})


# -- operations ------------------------------------------------------------------------------------------
def test_livez(app: Any) -> None:
    answer = app.test_client().get("/livez")
    assert answer.status_code == 200 and answer.json == {"status": "ok"}
    assert app.test_client().get("/healthz").json == {"status": "ok"}


def test_metric_names(app: Any, operator: Any, demo: dict[str, Any]) -> None:
    user = next(iter(demo["users"]))
    operator.post("/enforce", enforce_body(demo))
    operator.get(f"/cpas/{demo['cpas']}/users/{user}/functions")
    app.test_client().get("/livez")
    app.test_client().open("/livez", method="BREW")  # a made-up method: 405, no route matched
    text = app.test_client().get("/metrics").get_data(as_text=True)
    ours = {f.name: f for f in text_string_to_metric_families(text)
            if f.name.startswith("authz_") and not f.name.endswith("_created")}  # _created: creation times
    assert set(ours) == {"authz_decisions", "authz_http_request_duration_seconds", "authz_audit_chain_broken"}
    assert ours["authz_audit_chain_broken"].type == "gauge"  # a CPAS label (public), once a chain is checked
    assert ours["authz_decisions"].type == "counter"  # exposed as authz_decisions_total
    assert "authz_decisions_total" in text
    assert ours["authz_http_request_duration_seconds"].type == "histogram"
    labels = {k for f in ours.values() for s in f.samples for k in s.labels if k != "le"}
    assert {"result", "method", "endpoint", "status"} <= labels <= {"result", "method", "endpoint", "status", "cpas"}
    endpoints = {s.labels["endpoint"] for s in ours["authz_http_request_duration_seconds"].samples}
    assert {"decisions.enforce", "livez", "unknown"} <= endpoints
    assert not any("/" in e or user in e for e in endpoints), endpoints
    methods = {s.labels["method"] for s in ours["authz_http_request_duration_seconds"].samples}
    assert "BREW" not in methods and "_OTHER" in methods
