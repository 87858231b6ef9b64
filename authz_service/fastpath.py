"""The lean WSGI path for the read routes a calling application hits on every page: ``POST /enforce``,
``POST /enforce/batch``, ``GET /cpas/<cpas>/users/<user>/functions`` (200 and 304) and AuthZEN's
``POST /access/v1/evaluation`` and ``/access/v1/evaluations``.

It answers the common case — a well-formed request with a valid key, every decision possible — with the
same checks, the same authentication, the same decisions (``decisions.decide``, ``decide_many`` for a
batch, ``user_functions_answer``) and the same bytes as the Flask route (status, body, ``Content-Type``,
``Content-Length``, ``ETag``, ``Cache-Control``, ``X-Content-Type-Options``, AuthZEN's echoed
``X-Request-ID``), but without Flask's per-request machinery (routing, contexts, hooks, response objects)
and without pydantic: bodies are decoded and type-checked by msgspec structs (``lean.py``). Anything else
(a bad body or item, a missing key, an unknown CPAS or function, an unavailable engine, a version not
reached, another method, path or query string) is handed, body and all, to the Flask app, which stays the
only place errors are produced. tests/test_fastpath.py and tests/test_lean_routes.py check that both give
the same answers for good and bad requests alike.
"""

from __future__ import annotations

import io
import json
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

from werkzeug.http import parse_etags

from . import lean
from .decisions import Question, decide, decide_many, user_functions_answer
from .engine import CpasPolicy, Decision
from .errors import ServiceError, VersionNotReached
from .inputs import is_json_content_type
from .schemas import EnforceRequest
from .security import Principal
from .service import Service

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
HEADERS = [("Content-Type", "application/json"), ("X-Content-Type-Options", "nosniff")]
# an answer, with the headers it adds to HEADERS; None: Flask answers
Answer = tuple[bytes, list[tuple[str, str]]]
Handler = Callable[[bytes, dict[str, Any]], "Answer | None"]

# the routes it answers, each with its Flask rule and endpoint (for the request metric, log and span)
FUNCTIONS = ("/cpas/<cpas>/users/<user>/functions", "decisions.user_functions")  # GET
# a user id is 1-128 of these characters (schemas.USER_RE); a CPAS is checked by lean.kbo
FUNCTIONS_PATH = re.compile(r"/cpas/([0-9.]{10,12})/users/([A-Za-z0-9._:@-]{1,128})/functions")
# the query strings of the functions route it answers: none, or one language (FunctionsQuery)
LANGS = {"": "fr", "lang=fr": "fr", "lang=nl": "nl", "lang=de": "de"}
ANSWERS_KEPT = 512  # functions answers kept per worker (each a few KB)
# AuthZEN's evaluations semantics: the answers up to the first deny, or the first permit
STOP_AT = {"deny_on_first_deny": False, "permit_on_first_permit": True}
ROUTES = {  # (method, path) -> (rule, endpoint)
    ("POST", "/enforce"): ("/enforce", "decisions.enforce"),
    ("POST", "/enforce/batch"): ("/enforce/batch", "decisions.enforce_batch"),
    ("POST", "/access/v1/evaluation"): ("/access/v1/evaluation", "authzen.evaluation"),
    ("POST", "/access/v1/evaluations"): ("/access/v1/evaluations", "authzen.evaluations"),
}


class EnforceFastPath:
    def __init__(self, app: WSGIApp, service: Service) -> None:
        self.app = app
        self.service = service
        self.max_body = service.settings.max_body_bytes
        self.handlers: dict[str, Handler] = {
            "/enforce": self._enforce,
            "/enforce/batch": self._batch,
            "/access/v1/evaluation": self._evaluation,
            "/access/v1/evaluations": self._evaluations,
        }
        self._timers: dict[tuple[str, int], Any] = {}  # (endpoint, status) -> its request histogram
        # (CPAS, user, language) -> the functions route's ETag and body, and the policy they were made from
        self._answers: dict[tuple[str, str, str], tuple[weakref.ref[CpasPolicy], str, bytes]] = {}
        self._answers_lock = threading.Lock()

    @staticmethod
    def route(environ: dict[str, Any]) -> tuple[str, str] | None:
        """The Flask rule and endpoint of a request the lean path may answer, else None."""
        method, path = environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", "")
        if method == "GET":
            return FUNCTIONS if FUNCTIONS_PATH.fullmatch(path) else None
        return ROUTES.get((method, path))

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        route = self.route(environ)
        if route is None:
            return self.app(environ, start_response)
        if route is FUNCTIONS:
            return self._functions(environ, start_response)
        started = time.perf_counter()
        try:
            length = int(environ.get("CONTENT_LENGTH") or -1)
        except ValueError:
            length = -1
        # the common case only: a declared length within the limit (a chunked body is buffered further in),
        # the one body type of the API (application/jsonp & co. are refused by Flask, as on every JSON
        # route), no query string (Flask refuses control characters in one; these routes take none)
        content_type = environ.get("CONTENT_TYPE")
        if (
            not 0 < length <= self.max_body
            or (content_type != "application/json" and not is_json_content_type(content_type))
            or environ.get("QUERY_STRING")
        ):
            return self.app(environ, start_response)
        raw = environ["wsgi.input"].read(length)
        try:
            answer = self.handlers[route[0]](raw, environ)
        except (ServiceError, ValueError):
            answer = None
        if answer is None:  # let Flask say what is wrong, from the same bytes
            environ["wsgi.input"] = io.BytesIO(raw)
            return self.app(environ, start_response)
        body, headers = answer
        start_response("200 OK", [HEADERS[0], ("Content-Length", str(len(body))), *headers, HEADERS[1]])
        self._observe("POST", route[1], 200, started)
        return [body]

    def _observe(self, method: str, endpoint: str, status: int, started: float) -> None:
        """The request histogram, as the Flask app's ``_observe`` hook fills it."""
        timer = self._timers.get((endpoint, status))
        if timer is None:
            timer = self._timers[endpoint, status] = self.service.metrics.requests.labels(method, endpoint, status)
        timer.observe(time.perf_counter() - started)

    def _functions(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """``GET /cpas/<cpas>/users/<user>/functions`` (``api.user_functions``): 200 with the answer of
        ``decisions.user_functions_answer``, or 304 when If-None-Match holds its ETag."""
        started = time.perf_counter()
        lang = LANGS.get(environ.get("QUERY_STRING", ""))
        match = FUNCTIONS_PATH.fullmatch(environ["PATH_INFO"])
        # the common case only: no query string but a language, no body (Flask would not read it either)
        if match is None or lang is None or environ.get("CONTENT_LENGTH", "0") not in ("", "0") or environ.get(
                "HTTP_TRANSFER_ENCODING"):
            return self.app(environ, start_response)
        cpas = lean.kbo(match[1])
        if cpas is None:
            return self.app(environ, start_response)
        try:
            principal = self._caller(environ)
            principal.require_cpas(cpas)
            tag, body = self._user_functions(self.service.policy(cpas), match[2], lang)
        except (ServiceError, ValueError):
            return self.app(environ, start_response)
        etag = f'"{tag}"'
        sent = environ.get("HTTP_IF_NONE_MATCH")
        if sent is not None and (sent == etag or parse_etags(sent).contains(tag)):
            start_response("304 NOT MODIFIED", [("ETag", etag), HEADERS[1]])
            self._observe("GET", FUNCTIONS[1], 304, started)
            return []
        start_response("200 OK", [HEADERS[0], ("Content-Length", str(len(body))), ("ETag", etag),
                                  ("Cache-Control", "private, no-cache"), HEADERS[1]])
        self._observe("GET", FUNCTIONS[1], 200, started)
        return [body]

    def _user_functions(self, policy: CpasPolicy, user: str, lang: str) -> tuple[str, bytes]:
        """``user_functions_answer(policy, user, lang)``'s ETag and body (as ``jsonify`` writes it). A policy
        never changes (a change, or a term that begins or ends, makes a new one), so the answer is kept for
        as long as the policy it was made from decides, for the last few hundred users asked of this worker:
        an application asking again with If-None-Match gets its 304 without the answer being made again."""
        key = (policy.cpas, user, lang)
        kept = self._answers.get(key)
        if kept is not None and kept[0]() is policy:
            return kept[1], kept[2]
        answer = user_functions_answer(policy, user, lang)
        body = lean.jsonify(answer.body)
        with self._answers_lock:
            if len(self._answers) >= ANSWERS_KEPT:
                del self._answers[next(iter(self._answers))]  # the oldest
            self._answers[key] = (weakref.ref(policy), answer.etag, body)
        return answer.etag, body

    # -- the common steps ----------------------------------------------------------------------------------
    def _caller(self, environ: dict[str, Any]) -> Principal:
        """The ``enforce`` scope's credential (ServiceError otherwise: Flask answers)."""
        principal = self.service.authenticate(environ.get("HTTP_AUTHORIZATION"))
        principal.require_scope("enforce")
        return principal

    def _decide_all(self, principal: Principal, asked: Sequence[Question],
                    stop_at: bool | None = None) -> list[Decision] | None:
        """Every decision on one snapshot, as the Flask batch and evaluations decide them (each CPAS brought
        up to date first, then decided on the snapshot), or None when one of them would be refused."""
        service = self.service
        wanted: dict[str, int] = {}  # CPAS -> the highest min_policy_version asked of it
        for one in asked:
            known = wanted.get(one.cpas)
            if known is None or known < one.min_policy_version:
                wanted[one.cpas] = one.min_policy_version
        if principal.cpas is not None and not principal.cpas.issuperset(wanted):  # Principal.may_use
            return None
        fresh_policy = service.fresh_policy
        for cpas, minimum in wanted.items():
            try:  # not contextlib.suppress: a context manager per CPAS costs more than the check
                fresh_policy(cpas, minimum)
            except VersionNotReached:  # checked on the snapshot below
                continue
        policies = service.snapshot().policies
        for cpas, minimum in wanted.items():  # an unknown CPAS, a version not reached: an item's error
            policy = policies.get(cpas)
            if policy is None or policy.version < minimum:
                return None
        return decide_many(service, principal, asked, policies, stop_at=stop_at)  # an unknown function: raises

    # -- the routes ----------------------------------------------------------------------------------------
    def _enforce(self, raw: bytes, environ: dict[str, Any]) -> Answer | None:
        asked = lean.enforce(raw)
        if asked is None:
            return None
        decision = decide(self.service, self._caller(environ), cast(EnforceRequest, asked))
        if asked.explain:
            return lean.jsonify(decision.as_json(explain=True)), []
        # decision.as_json(explain=False) as jsonify writes it
        return b'{"allowed":%s,"policy_version":%d}\n' % (
            b"true" if decision.allowed else b"false", decision.policy_version), []

    def _batch(self, raw: bytes, environ: dict[str, Any]) -> Answer | None:
        items = lean.batch(raw)
        if items is None:
            return None
        principal = self._caller(environ)
        if len(items) > self.service.settings.batch_limit:
            return None  # 413
        decisions = self._decide_all(principal, items)
        if decisions is None:
            return None
        # api.enforce_batch's answer, item by item: {"id": ..., **decision.as_json(...)} with sorted keys, and the
        # highest version of the decisions (decide_many shares a Decision per CPAS and outcome when nothing is
        # explained: each one's bytes before and after its item's id are made once)
        parts: list[bytes] = []
        around: dict[int, tuple[bytes, bytes]] = {}
        version = 0
        for item, decision in zip(items, decisions, strict=True):
            if item.explain:
                parts += (lean.jsonify({"id": item.id, **decision.as_json(explain=True)})[:-1], b",")
                version = max(version, decision.policy_version)
                continue
            pair = around.get(id(decision))
            if pair is None:
                pair = around[id(decision)] = (b'{"allowed":%s,"id":' % (b"true" if decision.allowed else b"false"),
                                               b',"policy_version":%d},' % decision.policy_version)
                version = max(version, decision.policy_version)
            item_id = item.id
            parts += (pair[0], b"%d" % item_id if type(item_id) is int else lean.json_value(item_id), pair[1])
        if parts:
            parts[-1] = parts[-1][:-1]  # the last comma
        return b'{"policy_version":%d,"results":[%s]}\n' % (version, b"".join(parts)), []

    def _evaluation(self, raw: bytes, environ: dict[str, Any]) -> Answer | None:
        asked = lean.evaluation(raw)
        if asked is None:
            return None
        decision = decide(self.service, self._caller(environ), cast(EnforceRequest, asked))
        return _authzen(decision, asked.explain) + b"\n", _request_id(environ)

    def _evaluations(self, raw: bytes, environ: dict[str, Any]) -> Answer | None:
        parsed = lean.evaluations(raw)
        if parsed is None:
            return None
        asked, semantic, single = parsed
        principal = self._caller(environ)
        if single:  # answered as /access/v1/evaluation answers it
            decision = decide(self.service, principal, cast(EnforceRequest, asked[0]))
            return _authzen(decision, asked[0].explain) + b"\n", _request_id(environ)
        if len(asked) > self.service.settings.batch_limit:
            return None  # 413
        decisions = self._decide_all(principal, asked, STOP_AT.get(semantic))
        if decisions is None:
            return None
        results = [_authzen(decision, one.explain) for one, decision in zip(asked, decisions, strict=False)]
        return b'{"evaluations": [%s]}\n' % b", ".join(results), _request_id(environ)


def _authzen(decision: Decision, explain: bool) -> bytes:
    """``authzen._answer`` as ``authzen._json`` writes it: keys in the order written, ``", "`` and ``": "``."""
    if not explain:
        return b'{"decision": %s, "context": {"policy_version": %d}}' % (
            b"true" if decision.allowed else b"false", decision.policy_version)
    body = decision.as_json(explain=True)
    context: dict[str, Any] = {"policy_version": body["policy_version"]}
    explanation = body.get("explanation")
    if isinstance(explanation, dict):
        context.update(explanation)
    return json.dumps({"decision": decision.allowed, "context": context}).encode()


def _request_id(environ: dict[str, Any]) -> list[tuple[str, str]]:
    """AuthZEN's request identification: the caller's X-Request-ID comes back exactly as sent
    (``authzen._echo_request_id``)."""
    sent = environ.get("HTTP_X_REQUEST_ID")
    return [] if sent is None else [("X-Request-ID", sent)]
