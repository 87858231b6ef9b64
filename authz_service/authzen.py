"""The OpenID AuthZEN Authorization API 1.0 over the same decisions as ``POST /enforce``.

Routes (HTTPS JSON binding, default paths): ``POST /access/v1/evaluation``, ``/access/v1/evaluations``,
``/access/v1/search/subject``, ``/search/resource``, ``/search/action``, and the open discovery document
``GET /.well-known/authzen-configuration``. A user is ``{"type": "user", "id": ...}``, a CPAS
``{"type": "cpas", "id": <KBO>}``, a function ``{"name": <code>}`` (``authzen_schemas.py``).

Thin, as ``api.py``: the ``enforce`` scope is checked before the body is read, flask-openapi3 validates the
body, and every decision is ``decisions.decide()`` (evaluations: one snapshot from
``decisions.bring_up_to_date``); the searches ask ``decisions.permitted_*``, which read the same per-CPAS
index with the same checks. What is not a decision (401, 403, 400, 413, 503) is the service's JSON error
envelope; a request's ``X-Request-ID`` comes back on every answer of these paths, errors included.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
import json
from collections.abc import Callable
from typing import Any

from flask import Response, current_app, g, request
from flask_openapi3 import APIBlueprint, OpenAPI, Tag
from pydantic import BaseModel, ValidationError

from .api import COMMON, SECURITY, errors, first_error, reply, validation_errors
from .authzen_schemas import (
    PAGE_MAX,
    RESOURCE_TYPE,
    SUBJECT_TYPE,
    ActionSearchRequest,
    ActionSearchResponse,
    EvaluationRequest,
    EvaluationResponse,
    EvaluationsRequest,
    EvaluationsResponse,
    PdpMetadata,
    ResourceSearchRequest,
    ResourceSearchResponse,
    SubjectSearchRequest,
    SubjectSearchResponse,
)
from .decisions import (
    Found,
    admissible,
    bring_up_to_date,
    decide,
    permitted_cpas,
    permitted_functions,
    permitted_users,
)
from .engine import Decision
from .errors import InvalidRequest, PayloadTooLarge, ServiceError, envelope
from .schemas import EnforceRequest
from .security import Principal
from .service import Service

ENDPOINTS = {  # metadata parameter -> path (AuthZEN 1.0, "API Endpoint Overview")
    "access_evaluation_endpoint": "/access/v1/evaluation",
    "access_evaluations_endpoint": "/access/v1/evaluations",
    "search_subject_endpoint": "/access/v1/search/subject",
    "search_resource_endpoint": "/access/v1/search/resource",
    "search_action_endpoint": "/access/v1/search/action",
}
WELL_KNOWN = "/.well-known/authzen-configuration"
ENTITIES = ("subject", "action", "resource", "context")
TAG = Tag(name="authzen", description="OpenID AuthZEN Authorization API 1.0")

authzen = APIBlueprint("authzen", __name__, abp_tags=[TAG], abp_security=SECURITY, abp_responses=COMMON)
discovery = APIBlueprint("authzen_discovery", __name__, abp_tags=[TAG])


def register(app: OpenAPI) -> None:
    """Called once by ``create_app``."""
    app.register_api(authzen)
    app.register_api(discovery)
    app.after_request(_echo_request_id)


def _echo_request_id(response: Response) -> Response:
    """AuthZEN "Request Identification": the PEP's X-Request-ID comes back on the answer, whatever it is
    (a 401 raised before the route, a 405, a 413 included), exactly as sent: the service's own request id
    (logs.py) replaces one that is not a plain token, but AuthZEN asks for the same identifier. Registered
    before logs.py's hook, so it runs after it and has the last word on these paths."""
    request_id = request.headers.get("X-Request-ID")
    if request_id is not None and (request.path.startswith("/access/v1/") or request.path == WELL_KNOWN):
        response.headers["X-Request-ID"] = request_id
    return response


def _service() -> Service:
    return current_app.extensions["authz"]


def _principal() -> Principal:
    return g.principal


@authzen.before_request
def _authenticate() -> None:
    """API keys only (never the admin UI's session), scope ``enforce``: before the body is read."""
    g.principal = _service().authenticate(request.headers.get("Authorization"))
    g.principal.require_scope("enforce")


def _json(body: dict[str, Any]) -> Response:
    # keys in the order written: AuthZEN recommends `page` first in a search answer
    return current_app.response_class(current_app.json.dumps(body, sort_keys=False) + "\n",
                                      mimetype="application/json")


def _answer(decision: Decision, explain: bool) -> dict[str, Any]:
    """A Decision as AuthZEN writes it: ``/enforce``'s answer, its explanation in the context."""
    body = decision.as_json(explain=explain)
    context = {"policy_version": body["policy_version"]}
    explanation = body.get("explanation")
    if isinstance(explanation, dict):
        context.update(explanation)
    return {"decision": decision.allowed, "context": context}


def _refused(err: ServiceError) -> dict[str, Any]:
    """An item of evaluations that cannot be decided: a deny, with why in the context."""
    return {"decision": False, "context": envelope(err.code, err.message, err.details)}


# -- Access Evaluation API ----------------------------------------------------------------------------------
EXPLAINED = {"policy_version": 33, "reason": "missing_prerequisite", "granted_by": [6],
             "missing_prerequisites": ["dossier.search"]}
TOO_LARGE = {"s413": "payload_too_large: a body over AUTHZ_MAX_BODY_BYTES (2 MiB)"}
NOTHING_FOUND = ("; nothing to find (another entity type, an unknown function, CPAS or user) is a 200 with no "
                 "result, context.reason saying why")


@authzen.post("/access/v1/evaluation", operation_id="authzenEvaluation", description=(
    "POST /enforce in AuthZEN's words: subject {type: user, id}, action {name: function code}, resource "
    "{type: cpas, id: KBO}; context.explain and context.min_policy_version as on /enforce."), responses={
    200: reply("the decision (a deny too); reason, granted_by, missing_prerequisites with context.explain",
               EvaluationResponse, example={"decision": False, "context": EXPLAINED}),
    **errors(404, 413, **TOO_LARGE),
})
def evaluation(body: EvaluationRequest) -> Response:
    """May this user use this function in this CPAS? `POST /enforce` in AuthZEN's words; a deny is a 200."""
    req = _enforce_request(body)
    return _json(_answer(decide(_service(), _principal(), req), req.explain))


def _enforce_request(body: EvaluationRequest) -> EnforceRequest:
    return EnforceRequest(cpas=body.resource.id, user=body.subject.id, function=body.action.name,
                          explain=body.context.explain, min_policy_version=body.context.min_policy_version)


def _merged(defaults: dict[str, Any], item: dict[str, Any]) -> EnforceRequest:
    """An item of evaluations with the top-level defaults it leaves out (whole keys, not merged inside)."""
    try:
        body = EvaluationRequest.model_validate({**defaults, **{k: item[k] for k in ENTITIES if k in item}})
    except ValidationError as exc:
        raise InvalidRequest(first_error(exc), validation_errors(exc)) from None
    return _enforce_request(body)


# -- Access Evaluations API ---------------------------------------------------------------------------------
@authzen.post("/access/v1/evaluations", operation_id="authzenEvaluations", description=(
    "Top-level subject, action, resource and context are the defaults of each item of evaluations (an item's "
    "key replaces the default whole). An item that cannot be decided is decision false with context.error. "
    "Without evaluations, one evaluation, answered as /access/v1/evaluation."), responses={
    200: reply("one answer per item, in input order, up to where options.evaluations_semantic stops",
               EvaluationsResponse, example={"evaluations": [
                   {"decision": True, "context": {"policy_version": 33}},
                   {"decision": False, "context": {"error": {
                       "code": "unknown_cpas", "message": "CPAS 0212345668 is not known to the service"}}},
               ]}),
    **errors(404, 413, s404="unknown_cpas: the CPAS of a request without evaluations is not known to the service",
             s413="payload_too_large: a body over AUTHZ_MAX_BODY_BYTES, or more than AUTHZ_BATCH_LIMIT (1000) "
                  "evaluations"),
})
def evaluations(body: EvaluationsRequest) -> Response:
    """Many evaluations on one policy snapshot, answered in input order, each with its own error; the
    semantic may stop at the first deny or the first permit."""
    svc, who = _service(), _principal()
    defaults = body.model_dump(include=set(ENTITIES), exclude_none=True)
    if not body.evaluations:  # AuthZEN: then it is one evaluation, answered as /access/v1/evaluation does
        req = _merged(defaults, {})
        return _json(_answer(decide(svc, who, req), req.explain))
    if len(body.evaluations) > svc.settings.batch_limit:
        raise PayloadTooLarge(f"a request holds at most {svc.settings.batch_limit} evaluations "
                              f"({len(body.evaluations)} sent)")
    parsed: list[EnforceRequest | ServiceError] = []
    for item in body.evaluations:
        try:
            if not isinstance(item, dict):
                raise InvalidRequest("each evaluation must be an object")
            req = _merged(defaults, item)
            admissible(svc, who, req)
            parsed.append(req)
        except ServiceError as err:
            parsed.append(err)
    policies = bring_up_to_date(svc, [req for req in parsed if isinstance(req, EnforceRequest)])
    semantic = body.options.evaluations_semantic
    results: list[dict[str, Any]] = []
    for req_or_error in parsed:
        try:
            if isinstance(req_or_error, ServiceError):
                raise req_or_error
            result = _answer(decide(svc, who, req_or_error, policies), req_or_error.explain)
        except ServiceError as err:
            result = _refused(err)
        results.append(result)
        if (semantic == "deny_on_first_deny" and not result["decision"]) or (
            semantic == "permit_on_first_permit" and result["decision"]
        ):
            break
    return _json({"evaluations": results})


# -- Search APIs --------------------------------------------------------------------------------------------
@authzen.post("/access/v1/search/subject", operation_id="authzenSearchSubject", responses={
    200: reply("the users /enforce allows now, sorted by id, a page at a time" + NOTHING_FOUND,
               SubjectSearchResponse, example={"page": {"next_token": "", "count": 1, "total": 1},
                                               "context": {"policy_version": 33},
                                               "results": [{"type": "user", "id": "85073003328"}]}),
    **errors(413, **TOO_LARGE),
})
def search_subject(body: SubjectSearchRequest) -> Response:
    """Which users may use this function in this CPAS now (hierarchy, covering, prerequisites; inactive
    users never), sorted by id."""
    if body.subject.type != SUBJECT_TYPE or body.resource.type != RESOURCE_TYPE:
        found = Found((), reason="unknown_type")
    else:
        found = permitted_users(_service(), _principal(), body.resource.id, body.action.name,
                                body.context.min_policy_version)
    return _page(body, found, lambda user: {"type": SUBJECT_TYPE, "id": user})


@authzen.post("/access/v1/search/resource", operation_id="authzenSearchResource", description=(
    "Its consistency token is per CPAS: context.min_policy_versions, an object from KBO to version."), responses={
    200: reply("the CPAS where /enforce allows it, sorted, a page at a time" + NOTHING_FOUND,
               ResourceSearchResponse, example={"page": {"next_token": "", "count": 1, "total": 1},
                                                "context": {"policy_versions": {"0207196354": 33}},
                                                "results": [{"type": "cpas", "id": "0207196354"}]}),
    **errors(413, **TOO_LARGE),
})
def search_resource(body: ResourceSearchRequest) -> Response:
    """In which CPAS, among those the credential may use, may this user use this function, sorted."""
    if body.subject.type != SUBJECT_TYPE or body.resource.type != RESOURCE_TYPE:
        found = Found((), reason="unknown_type")
    else:
        found = permitted_cpas(_service(), _principal(), body.subject.id, body.action.name,
                               body.context.min_policy_versions)
    return _page(body, found, lambda cpas: {"type": RESOURCE_TYPE, "id": cpas}, per_cpas=True)


@authzen.post("/access/v1/search/action", operation_id="authzenSearchAction", responses={
    200: reply("the functions /enforce allows the user, sorted, a page at a time" + NOTHING_FOUND,
               ActionSearchResponse, example={"page": {"next_token": "", "count": 2, "total": 2},
                                              "context": {"policy_version": 33},
                                              "results": [{"name": "dossier.search"}, {"name": "help_request.list"}]}),
    **errors(413, **TOO_LARGE),
})
def search_action(body: ActionSearchRequest) -> Response:
    """What may this user use in this CPAS: the user's effective functions, sorted."""
    if body.subject.type != SUBJECT_TYPE or body.resource.type != RESOURCE_TYPE:
        found = Found((), reason="unknown_type")
    else:
        found = permitted_functions(_service(), _principal(), body.resource.id, body.subject.id,
                                    body.context.min_policy_version)
    return _page(body, found, lambda code: {"name": code})


def _page(body: SubjectSearchRequest | ResourceSearchRequest | ActionSearchRequest, found: Found,
          entity: Callable[[str], dict[str, str]], *, per_cpas: bool = False) -> Response:
    """One page of ``found.ids`` (sorted), after the id the page token names. The token also carries a
    digest of the rest of the request: asking with another request is a 400 (AuthZEN: every field but
    the token must stay the same between pages)."""
    digest = _digest(body)
    after = _read_token(body.page.token, digest) if body.page.token else None
    limit = min(PAGE_MAX, PAGE_MAX if body.page.limit is None else body.page.limit)
    start = 0 if after is None else bisect.bisect_right(found.ids, after)
    ids = found.ids[start:start + limit]
    more = start + len(ids) < len(found.ids)
    context: dict[str, Any] = {}
    if per_cpas:
        context["policy_versions"] = {cpas: found.versions[cpas] for cpas in ids}
    elif found.versions:  # subject and action searches read one CPAS
        context["policy_version"] = next(iter(found.versions.values()))
    if found.reason is not None:
        context["reason"] = found.reason
    return _json({
        "page": {"next_token": _token(ids[-1] if ids else after, digest) if more else "", "count": len(ids),
                 "total": len(found.ids)},
        "context": context,
        "results": [entity(one) for one in ids],
    })


def _digest(body: BaseModel) -> str:
    fields = body.model_dump(mode="json", exclude={"page": {"token"}})
    return hashlib.sha256(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:24]


def _token(after: str | None, digest: str) -> str:
    raw = json.dumps({"after": after, "query": digest}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _read_token(token: str, digest: str) -> str | None:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        after, query = data["after"], data["query"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise InvalidRequest("page.token is not a token this service gave") from None
    if not isinstance(after, str | None) or query != digest:
        raise InvalidRequest("page.token belongs to another search: send every field of the request as it "
                             "was for the first page, page.limit included, with the token")
    return after


# -- Policy Decision Point metadata -------------------------------------------------------------------------
@discovery.get(WELL_KNOWN, operation_id="authzenMetadata", responses={
    200: reply("the AuthZEN metadata document: the endpoints as absolute URLs", PdpMetadata),
})
def metadata() -> Response:
    """Where the AuthZEN endpoints are (no key needed). The identifier is the base URL the document was
    asked at (scheme and host as the server saw them: behind a TLS proxy, gunicorn's forwarded headers)."""
    base = request.root_url.rstrip("/")
    return _json({"policy_decision_point": base, **{name: base + path for name, path in ENDPOINTS.items()}})
