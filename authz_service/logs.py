"""Log lines as data: one JSON object per line, with the request id and (tracing on) the trace id.

Three loggers of our own, whatever else the process logs:

- ``authz.access``: one line per HTTP request (``AUTHZ_ACCESS_LOG``, on by default): method, route
  (the rule, ``/cpas/<cpas>/users/<user>``, never the path a caller sent), endpoint, status, duration;
- ``authz.changes``: one line per ``Service.change``: actor, CPAS, use case, new policy version, outcome;
- ``authz.decisions``: one line per decision when ``AUTHZ_DECISION_LOG`` is on (off by default): the
  question (CPAS, user, function), the answer, its explanation and policy version, the calling key.

Nothing here configures logging: ``create_app`` only registers the request hooks; ``configure()`` is
called by ``authz-service serve`` (an application embedding the service keeps its own logging, and gets
the same records with their fields as ``extra``). The request id is the caller's ``X-Request-ID`` when it
is a plain token of at most 128 characters, else a new random one; it is echoed in the answer's
``X-Request-ID`` header and kept in a context variable, so that every line logged while a request is
answered (a change, a decision, a warning) carries it (``RequestContext``, a filter of the handler).
"""

from __future__ import annotations

import logging
import logging.config
import os
import re
import sys
import time
from contextvars import ContextVar
from typing import IO, TYPE_CHECKING, Any

from flask import Flask, Response, g, request
from opentelemetry import trace

from .errors import ServiceError

if TYPE_CHECKING:
    from .admin import Admin
    from .engine import Decision
    from .schemas import EnforceRequest
    from .security import Principal

ACCESS = logging.getLogger("authz.access")
CHANGES = logging.getLogger("authz.changes")
DECISIONS = logging.getLogger("authz.decisions")

HEADER = "X-Request-ID"
REQUEST_ID_KEY = "authz.request_id"  # WSGI environ: the request's id, for whichever layer answers
STARTED_KEY = "authz.started"  # WSGI environ: perf_counter() when the first of our layers saw the request
LOGGED_KEY = "authz.request_logged"  # WSGI environ: Flask answered (header set, line written)
REQUEST_ID: ContextVar[str | None] = ContextVar("authz_request_id", default=None)
ACCEPTED = re.compile(r"[A-Za-z0-9._:@+/=-]{1,128}")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})


def request_id(sent: str | None) -> str:
    """The caller's id when it is a plain token (no spaces, quotes or control characters: it goes into
    log lines and a header), else a new one (128 random bits in hex, the shape of a trace id)."""
    if sent and ACCEPTED.fullmatch(sent):
        return sent
    return os.urandom(16).hex()


def method_name(method: str) -> str:
    """An HTTP method as a log field or metric label: anything but the standard ones is ``_OTHER`` (as
    OpenTelemetry's conventions say), so that a caller cannot make up label values."""
    return method if method in METHODS else "_OTHER"


# -- the Flask side --------------------------------------------------------------------------------------
def install_request_hooks(app: Flask, *, access_log: bool) -> None:
    """Request id and (``access_log``) the request line for every request Flask answers. The first hook
    goes first, so that it runs even when a later one (an input guard) refuses the request."""
    app.before_request_funcs.setdefault(None, []).insert(0, _begin)
    app.after_request(_finish_logged if access_log else _finish)
    app.teardown_request(_end)


def _begin() -> None:
    environ = request.environ
    rid = environ.get(REQUEST_ID_KEY) or request_id(environ.get("HTTP_X_REQUEST_ID"))
    environ[REQUEST_ID_KEY] = rid
    environ.setdefault(STARTED_KEY, time.perf_counter())
    g.authz_request_id = REQUEST_ID.set(rid)


def _finish(response: Response) -> Response:
    environ = request.environ
    rid = environ.get(REQUEST_ID_KEY)
    if rid is None:  # a request Flask answered without running its before-request hooks
        rid = environ[REQUEST_ID_KEY] = request_id(environ.get("HTTP_X_REQUEST_ID"))
    response.headers[HEADER] = rid
    environ[LOGGED_KEY] = True
    return response


def _finish_logged(response: Response) -> Response:
    _finish(response)
    environ = request.environ
    rule = request.url_rule
    log_request(environ, response.status_code, rule.rule if rule is not None else None,
                request.endpoint)
    return response


def _end(_exc: BaseException | None) -> None:
    token = g.pop("authz_request_id", None)
    if token is not None:
        REQUEST_ID.reset(token)


# -- the lines -------------------------------------------------------------------------------------------
def log_request(environ: dict[str, Any], status: int, route: str | None, endpoint: str | None) -> None:
    started = environ.get(STARTED_KEY)
    ACCESS.info(
        "request",
        extra={
            "request_id": environ.get(REQUEST_ID_KEY),
            "method": method_name(environ.get("REQUEST_METHOD", "")),
            "route": route,
            "endpoint": endpoint,
            "status": status,
            "duration_seconds": round(time.perf_counter() - started, 6) if started is not None else None,
        },
    )


def log_change(actor: str, use_case: str, admin: Admin | None, error: BaseException | None = None) -> None:
    """The line of one ``Service.change``: ``outcome`` is ``changed``, ``unchanged`` (nothing to write),
    ``refused`` (a typed refusal; ``error`` is its code) or ``failed`` (``error`` is the exception's
    class). A refused or failed change was rolled back: its ``cpas`` are those it had locked."""
    fields: dict[str, Any] = {
        "request_id": REQUEST_ID.get(),
        "actor": actor,
        "use_case": use_case,
        "cpas": sorted(admin.changed) if admin is not None else [],
        "policy_version": None,
    }
    if error is None:
        assert admin is not None
        fields["policy_version"] = admin.policy_version
        fields["outcome"] = "changed" if admin.policy_version is not None else "unchanged"
        CHANGES.info("change", extra=fields)
        return
    refused = isinstance(error, ServiceError)
    fields["outcome"] = "refused" if refused else "failed"
    fields["error"] = error.code if isinstance(error, ServiceError) else type(error).__name__
    CHANGES.info("change", extra=fields)


def log_decision(principal: Principal, req: EnforceRequest, decision: Decision) -> None:
    DECISIONS.info(
        "decision",
        extra={
            "request_id": REQUEST_ID.get(),
            "client": principal.name,
            "cpas": req.cpas,
            "user": req.user,
            "function": req.function,
            "min_policy_version": req.min_policy_version,
            **decision.as_json(explain=True),
        },
    )


# -- the process's logging (authz-service serve) ------------------------------------------------------
class RequestContext(logging.Filter):
    """Adds ``request_id`` (while a request is answered) and ``trace_id``/``span_id`` (while a span is
    current, i.e. tracing is on) to every record a handler writes."""

    def filter(self, record: logging.LogRecord) -> bool:
        rid = REQUEST_ID.get()
        if rid is not None and not hasattr(record, "request_id"):
            record.request_id = rid
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = format(context.trace_id, "032x")
            record.span_id = format(context.span_id, "016x")
        return True


def json_formatter() -> logging.Formatter:
    from pythonjsonlogger.json import JsonFormatter

    return JsonFormatter(
        "{levelname}{name}{message}",
        style="{",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",  # ISO 8601, UTC
    )


def json_handler(stream: IO[str] | None = None) -> logging.Handler:
    """A handler writing JSON lines (to standard output by default) with the request context."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stdout)
    handler.setFormatter(json_formatter())
    handler.addFilter(RequestContext())
    return handler


def configure(level: str) -> None:
    """The process's logging, as ``serve`` sets it before gunicorn starts (its workers inherit it): every
    line as JSON on standard output, at ``level`` (AUTHZ_LOG_LEVEL); our three loggers at INFO whatever
    that level, as each has its own switch (or, for changes, is always wanted)."""
    logging.config.dictConfig({
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"json": {"()": json_handler}},
        "root": {"level": level.upper(), "handlers": ["json"]},
        "loggers": {name: {"level": "INFO"} for name in (ACCESS.name, CHANGES.name, DECISIONS.name)},
    })
