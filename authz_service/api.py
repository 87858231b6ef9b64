"""JSON routes of docs/api.md. Thin: parse (flask-openapi3 + pydantic), authorize, one call, serialize.

Each route declares, for ``/openapi.json``, every status it can answer with its schema (``reply`` and
``errors``: the response models of ``schemas.py``, the error envelope), the headers of its answers and a
stable ``operation_id``; ``documented_schemas`` hands ``create_app`` the components they name.

Every administrative change takes ``?dry_run=true``: the same use case through ``Service.preview`` instead
of ``Service.change``, answered 200 with its impact (``DryRunResponse``), or with the change's own error.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from flask import Response, current_app, g, jsonify, request
from flask_openapi3 import APIBlueprint, OpenAPI, Tag
from flask_openapi3.models import OPENAPI3_REF_TEMPLATE, Schema
from flask_openapi3.models import Response as DocResponse
from pydantic import BaseModel, ValidationError

from . import reads
from .admin import Admin
from .decisions import admissible, decide, function_users, user_functions_answer
from .errors import (
    InvalidRequest,
    PayloadTooLarge,
    ServiceError,
    VersionNotReached,
    envelope,
)
from .models import iso
from .schemas import (
    AuditPage,
    AuditQuery,
    BatchRequest,
    BatchResponse,
    CatalogResponse,
    ConditionalHeaders,
    CpasCreate,
    CpasPath,
    CpasResponse,
    DryRunQuery,
    DryRunResponse,
    EnforceRequest,
    EnforceResponse,
    ErrorResponse,
    FunctionPath,
    FunctionsQuery,
    FunctionUsersQuery,
    FunctionUsersResponse,
    LangQuery,
    ProfileCreate,
    ProfilePath,
    ProfileResponse,
    ProfileSummary,
    ProfileUpdate,
    Review,
    ReviewDecide,
    ReviewDecision,
    ReviewItemPath,
    ReviewOverviewRow,
    ReviewPath,
    ReviewStart,
    ReviewSummary,
    TemplatesQuery,
    TemplatesResponse,
    UserFunctionsResponse,
    UserPath,
    UserProfiles,
    UserResponse,
    UserSeen,
    UsersPage,
    UsersQuery,
)
from .security import Principal
from .service import Changed, Previewed, Service
from .store import policy_csv
from .terms import brussels_day

T = TypeVar("T")
P = ParamSpec("P")

SECURITY: list[dict[str, list[str]]] = [{"api_key": []}]
# the admin routes also take the admin UI's session (docs/api.md); a change made so needs X-CSRFToken
ADMIN_SECURITY: list[dict[str, list[str]]] = [{"api_key": []}, {"session": []}]


# -- what /openapi.json says of the answers --------------------------------------------------------------
_DOCUMENTED: dict[str, type[BaseModel]] = {}  # response models named by the declarations, by name

HEADERS: dict[str, dict[str, Any]] = {
    "X-Policy-Version": {"description": "the CPAS's policy_version after the change (consistency token: pass "
                                        "it as min_policy_version)", "schema": {"type": "integer"}},
    "ETag": {"description": "a strong ETag over the answer without its policy_version: send it back in "
                            "If-None-Match", "schema": {"type": "string"}},
    "Cache-Control": {"description": "private, no-cache", "schema": {"type": "string"}},
    "Location": {"description": "/cpas/{cpas}/profiles/{id}: the new profile", "schema": {"type": "string"}},
    "WWW-Authenticate": {"description": 'Bearer realm="authz-service"', "schema": {"type": "string"}},
    "Content-Disposition": {"description": 'attachment; filename="policy-<cpas>.csv"', "schema": {"type": "string"}},
}


def reply(description: str, model: type[BaseModel] | None = None, *, many: bool = False,
          headers: tuple[str, ...] = (), media_type: str = "application/json", schema: dict[str, Any] | None = None,
          example: Any = None, or_dry_run: bool = False) -> dict[str, Any]:
    """One documented answer: ``model`` (a list of them with ``many``) or a plain ``schema`` in
    ``media_type``, or no body; ``headers`` named from HEADERS, each always sent. ``or_dry_run``: the same
    status also answers a dry run (``dry_run_reply``): the body is either, and the headers are not sent then."""
    answer: dict[str, Any] = {"description": description}
    if model is not None:
        _DOCUMENTED[model.__name__] = model
        schema = {"$ref": OPENAPI3_REF_TEMPLATE.format(model=model.__name__)}
        if many:
            schema = {"type": "array", "items": schema}
    media: dict[str, Any] = {}
    if or_dry_run:
        _DOCUMENTED[DryRunResponse.__name__] = DryRunResponse
        answer["description"] += "; with dry_run=true, the change's impact, nothing changed (DryRunResponse)"
        schema = {"oneOf": [schema, {"$ref": OPENAPI3_REF_TEMPLATE.format(model=DryRunResponse.__name__)}]}
        media["examples"] = {"dry_run": {"summary": "dry_run=true", "value": DRY_RUN_EXAMPLE}}
        if example is not None:
            media["examples"]["change"] = {"summary": "the change", "value": example}
    elif example is not None:
        media["example"] = example
    if schema is not None:
        answer["content"] = {media_type: {"schema": schema} | media}
    if headers:
        answer["headers"] = {name: {**HEADERS[name], "required": not or_dry_run} for name in headers}
        if or_dry_run:
            answer["headers"] = {name: {**header, "description": header["description"] + " (not on a dry run)"}
                                 for name, header in answer["headers"].items()}
    return answer


# the demo's profile RMC-1 with "help_request.list" in place of "forms.list": Thomas, who holds it, loses the
# forms list and would hold the help-request list without "dossier.search", which it needs
DRY_RUN_EXAMPLE = {
    "dry_run": True, "policy_version": 34, "impact": {
        "users": [{"user": "93061517116", "name": "Thomas GOOSSENS", "gains": [], "loses": ["forms.list"],
                   "unusable": [{"function": "help_request.list", "missing_prerequisites": ["dossier.search"]}]}],
        "summary": {"users_affected": 1, "functions_gained": 0, "functions_lost": 1}},
}


def dry_run_reply() -> dict[str, Any]:
    """The answer of a change sent with ``dry_run=true``, where the change itself answers another status."""
    return reply("dry_run=true: the change's impact; nothing was changed (no X-Policy-Version: no policy has "
                 "that version)", DryRunResponse, example=DRY_RUN_EXAMPLE)


ERROR_TEXT = {
    400: "invalid_request: the path, the query or the body breaks the input rules or a rule of the route (for a "
         "validation failure, details lists each problem); unknown_function: a function code outside the catalog",
    401: "unauthenticated: no credential, or a malformed, unknown or revoked key",
    403: "forbidden: the credential lacks the route's scope or is limited to other CPAS (or a change made with "
         "the admin UI's session lacks its X-CSRFToken)",
    404: "unknown_cpas: the CPAS is not known to the service",
    409: "conflict: a change that collided with a concurrent one (details.retry: nothing was changed, retrying "
         "may succeed)",
    413: "payload_too_large: a body over AUTHZ_MAX_BODY_BYTES (2 MiB)",
    503: "unavailable: the policy is not loaded or not fresh, or the store does not answer in time",
}


def errors(*statuses: int, **texts: str) -> dict[Any, Any]:
    """The error envelope for each status; ``texts`` (``s404="..."``) replaces a status's description."""
    return {
        status: reply(texts.get(f"s{status}", ERROR_TEXT[status]), ErrorResponse,
                      headers=("WWW-Authenticate",) if status == 401 else ())
        for status in statuses
    }


def documented_schemas() -> dict[str, Schema]:
    """The components the declarations name (with the models they use)."""
    out: dict[str, Schema] = {}
    for name, model in sorted(_DOCUMENTED.items()):
        schema = model.model_json_schema(ref_template=OPENAPI3_REF_TEMPLATE, mode="serialization")
        for used, value in schema.pop("$defs", {}).items():
            out[used] = Schema(**value)
        out[name] = Schema(**schema)
    return out


def complete_document(app: OpenAPI) -> None:
    """Called by ``create_app`` once every documented route is registered: the components the declarations
    name, and a 400 for each operation that declares none. Every route answers a control character in its
    path or query with the error envelope (inputs.py), where flask-openapi3 would document a list of its own
    validation errors."""
    app.components_schemas.update(documented_schemas())
    guard = DocResponse(**reply("invalid_request: a control character in the path or the query", ErrorResponse))
    for item in app.paths.values():
        for operation in (item.get, item.put, item.post, item.delete, item.patch):
            if operation is not None and "400" not in (operation.responses or {}):
                operation.responses = {**(operation.responses or {}), "400": guard}


HISTORY_400 = ERROR_TEXT[400] + ("; history_unavailable: at is before the policy's history begins (details."
                                 "history_since: its first instant, null when none)")
COMMON = errors(400, 401, 403, 503)  # every JSON route can answer these
decisions = APIBlueprint("decisions", __name__, abp_tags=[Tag(name="decisions")], abp_security=SECURITY,
                         abp_responses=COMMON)
users_api = APIBlueprint("users", __name__, abp_tags=[Tag(name="users")], abp_security=SECURITY,
                         abp_responses=COMMON)
admin_api = APIBlueprint("admin", __name__, abp_tags=[Tag(name="administration")], abp_security=ADMIN_SECURITY,
                         abp_responses=COMMON)


def service() -> Service:
    return current_app.extensions["authz"]


def principal() -> Principal:
    return g.principal


def _authenticate(scope: str) -> None:
    header = request.headers.get("Authorization")
    # docs/api.md: the admin routes also accept the admin UI's session (the web UI registers how to read it)
    from_session = current_app.extensions.get("authz_session_principal")
    if header is None and scope == "admin" and from_session is not None:
        found = from_session()
        if found is not None:
            g.principal = found
            found.require_scope(scope)
            return
    g.principal = service().authenticate(header)
    g.principal.require_scope(scope)


decisions.before_request(lambda: _authenticate("enforce"))
users_api.before_request(lambda: _authenticate("users"))
admin_api.before_request(lambda: _authenticate("admin"))


def _json(body: Any, status: int = 200) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response


def _change(query: DryRunQuery, use_case: Callable[Concatenate[Admin, P], T], *args: P.args,
            **kwargs: P.kwargs) -> Changed[T] | Previewed[T]:
    """The change, as the caller; with ``dry_run``, its dry run (``Service.preview``)."""
    if query.dry_run:
        return service().preview(principal().name, use_case, *args, **kwargs)
    return service().change(principal().name, use_case, *args, **kwargs)


def _dry_run(done: Previewed[Any]) -> Response:
    """A dry run's answer: the impact, without X-Policy-Version (no policy has that version)."""
    return _json({"dry_run": True, "policy_version": done.policy_version, "impact": done.impact.as_json()})


# -- decisions ----------------------------------------------------------------------------------------
@decisions.post("/enforce", operation_id="enforce", description=(
    "An unknown user of a known CPAS is 200 with allowed: false (reason unknown_user)."), responses={
    200: reply("the decision; explanation only with \"explain\": true", EnforceResponse, example={
        "allowed": False, "policy_version": 33, "explanation": {
            "reason": "missing_prerequisite", "granted_by": [6], "missing_prerequisites": ["dossier.search"]}}),
    **errors(404, 413),
})
def enforce(body: EnforceRequest) -> Response:
    """May this user use this function in this CPAS? A deny is a normal 200."""
    return _json(decide(service(), principal(), body).as_json(explain=body.explain))


@decisions.post("/enforce/batch", operation_id="enforceBatch", description=(
    "An item that is not a valid BatchItem, names a CPAS outside the key's limit, an unknown function or CPAS, or "
    "a min_policy_version not reached in time gets allowed: false and its own error; the others are decided."
), responses={
    200: reply("one result per item, in input order", BatchResponse, example={
        "policy_version": 33, "results": [
            {"id": "a", "allowed": True, "policy_version": 33},
            {"id": "b", "allowed": False, "error": {"code": "unknown_function",
                                                    "message": "unknown function code: no.such",
                                                    "details": {"function": "no.such"}}}]}),
    **errors(413, s413="payload_too_large: a body over AUTHZ_MAX_BODY_BYTES, or more than AUTHZ_BATCH_LIMIT "
                       "(1000) items"),
})
def enforce_batch(body: BatchRequest) -> Response:
    """Up to 1000 decisions on one policy snapshot, in input order, each with its own error."""
    svc, who = service(), principal()
    if len(body.requests) > svc.settings.batch_limit:
        raise PayloadTooLarge(
            f"a batch holds at most {svc.settings.batch_limit} requests ({len(body.requests)} sent)"
        )
    parsed: list[EnforceRequest | ServiceError] = []
    wanted: dict[str, int] = {}  # CPAS -> the highest min_policy_version asked of it
    for item in body.requests:
        try:
            if not isinstance(item, dict):
                raise InvalidRequest("each request must be an object")
            try:
                req = EnforceRequest.model_validate({k: v for k, v in item.items() if k != "id"})
            except ValidationError as exc:
                raise InvalidRequest(first_error(exc), validation_errors(exc)) from None
            admissible(svc, who, req)
            wanted[req.cpas] = max(wanted.get(req.cpas, 0), req.min_policy_version)
            parsed.append(req)
        except ServiceError as err:
            parsed.append(err)
    for cpas, minimum in wanted.items():
        # on VersionNotReached the store's newest is in the snapshot: the items that asked for more get a 503
        with contextlib.suppress(VersionNotReached):
            svc.fresh_policy(cpas, minimum)
    policies = svc.snapshot().policies  # one snapshot for the whole batch
    results: list[dict[str, Any]] = []
    versions: set[int] = set()
    for item, req_or_error in zip(body.requests, parsed, strict=True):
        item_id = item.get("id") if isinstance(item, dict) else None
        try:
            if isinstance(req_or_error, ServiceError):
                raise req_or_error
            decision = decide(svc, who, req_or_error, policies)
            result = {"id": item_id, **decision.as_json(explain=req_or_error.explain)}
            versions.add(decision.policy_version)
        except ServiceError as err:
            result = {"id": item_id, "allowed": False, **envelope(err.code, err.message, err.details)}
        results.append(result)
    # the CPAS's version when every item concerns one CPAS; the highest of them otherwise
    return _json({"policy_version": max(versions, default=0), "results": results})


@decisions.get("/cpas/<cpas>/users/<user>/functions", operation_id="userFunctions", description=(
    "For an application's menu or \"Mes accès\": send the ETag back in If-None-Match to get 304 until what the "
    "user may do changes (another user's change keeps it)."), responses={
    200: reply("everything the user may use (an unknown or inactive user: active false, empty lists)",
               UserFunctionsResponse, headers=("ETag", "Cache-Control"), example={
                   "cpas": "0207196354", "user": "85073003328", "active": True, "policy_version": 33,
                   "profiles": [{"id": 2, "description": "Full"}],
                   "functions": ["care_decision.manage", "care_decision.view", "dossier.search"]}),
    304: reply("Not Modified: If-None-Match holds the answer's ETag (or *); no body", headers=("ETag",)),
    **errors(400, 404, s400=HISTORY_400),
})
def user_functions(path: UserPath, query: FunctionsQuery, header: ConditionalHeaders) -> Response:
    """The user's effective functions (hierarchy and prerequisites applied), with an ETag."""
    svc = service()
    principal().require_cpas(path.cpas)
    answer = user_functions_answer(svc.policy_at(path.cpas, query.at, query.min_policy_version), path.user,
                                   query.lang)
    # private, no-cache: a cached copy is checked again on every use, so it never outlives next_change
    if request.if_none_match.contains(answer.etag):
        response = Response(status=304)
        response.set_etag(answer.etag)
        return response
    response = _json(answer.body)
    response.set_etag(answer.etag)
    response.headers["Cache-Control"] = "private, no-cache"
    return response


# -- users seen at login ------------------------------------------------------------------------------
@users_api.put("/cpas/<cpas>/users/<user>", operation_id="userSeen", responses={
    200: reply("a user seen before: name and language updated", UserResponse, headers=("X-Policy-Version",)),
    201: reply("the first login: the user appears, active, with no profile", UserResponse,
               headers=("X-Policy-Version",)),
    **errors(404, 409, 413),
})
def user_seen(path: UserPath, body: UserSeen) -> Response:
    """An application reports a login: 201 the first time (the user appears with no profile), 200 after."""
    principal().require_cpas(path.cpas)
    done = service().change(principal().name, Admin.user_seen, path.cpas, path.user, name=body.name, lang=body.lang)
    user, created = done.value
    return _changed(user.as_json(body.lang), 201 if created else 200)


def _changed(body: Any, status: int = 200, version: int | None = None) -> Response:
    """A change's answer: its consistency token in the body (when it has one) and in X-Policy-Version."""
    response = _json(body, status) if body is not None else Response(status=status)
    version = version if version is not None else (body or {}).get("policy_version")
    if version is not None:
        response.headers["X-Policy-Version"] = str(version)
    return response


# -- administration -----------------------------------------------------------------------------------
@admin_api.get("/catalog", operation_id="getCatalog", responses={
    200: reply("the function tree in display order", CatalogResponse),
})
def catalog(query: LangQuery) -> Response:
    """The function tree: groups, functions, labels, what each covers, its prerequisites."""
    cat = service().catalog
    return _json({"version": cat.version, "lang": query.lang, "tree": cat.tree(query.lang)})


@admin_api.get("/catalog/templates", operation_id="listTemplates", responses={
    200: reply("the predefined profiles", TemplatesResponse),
})
def templates(query: TemplatesQuery) -> Response:
    """Predefined profiles (templates) with their regional names and functions."""
    cat = service().catalog
    items = []
    for tpl in cat.templates:
        regions = [query.region] if query.region else list(tpl.names)
        items.append({
            "code": tpl.code,
            "names": {r: {"fr": tpl.name(r).fr, "nl": tpl.name(r).nl, "de": tpl.name(r).de} for r in regions},
            "name": tpl.name(query.region).get(query.lang) if query.region else None,
            "functions": list(tpl.functions),
        })
    return _json({"region": query.region, "templates": items})


@admin_api.post("/cpas", operation_id="createCpas", responses={
    200: dry_run_reply(),
    201: reply("the new CPAS", CpasResponse, headers=("X-Policy-Version",)),
    **errors(409, 413, s403="forbidden: not an operator's credential (an admin key without CPAS limit)",
             s409="conflict: the CPAS exists, or a change that collided with a concurrent one (details.retry)"),
})
def create_cpas(query: DryRunQuery, body: CpasCreate) -> Response:
    """Operator only: a new CPAS, with its built-in profile "Tous les accès / Alle toegangen"."""
    principal().require_operator()
    done = _change(query, Admin.create_cpas, body.cpas, body.name_fr, body.name_nl, body.region)
    if isinstance(done, Previewed):
        return _dry_run(done)
    return _changed(done.value.as_json(), 201)


@admin_api.get("/cpas/<cpas>/profiles", operation_id="listProfiles", responses={
    200: reply("the CPAS's profiles, by id", ProfileSummary, many=True),
    **errors(404),
})
def list_profiles(path: CpasPath) -> Response:
    """The CPAS's profiles, with how many functions each grants directly and how many users hold it."""
    principal().require_cpas(path.cpas)
    rows = service().read(lambda store: reads.profile_rows(store, path.cpas, by_description=False))
    return _json([row.as_json() for row in rows])


@admin_api.post("/cpas/<cpas>/profiles", operation_id="createProfile", description=(
    "Functions whose prerequisites the profile lacks are accepted: missing_prerequisites says which (they are "
    "denied until the prerequisites are granted)."), responses={
    200: dry_run_reply(),
    201: reply("the new profile (as GET)", ProfileResponse, headers=("Location", "X-Policy-Version")),
    **errors(404, 409, 413, s409="duplicate_description: another profile of the CPAS has this description; "
                                 "conflict: a concurrent change (details.retry)"),
})
def create_profile(path: CpasPath, query: DryRunQuery, body: ProfileCreate) -> Response:
    """A new profile: descriptions, functions granted directly, included profiles."""
    principal().require_cpas(path.cpas)
    done = _change(query, Admin.create_profile, path.cpas, description_fr=body.description_fr,
                   description_nl=body.description_nl, functions=body.functions, includes=body.includes)
    if isinstance(done, Previewed):
        return _dry_run(done)
    response = _changed(done.value.as_json(), 201)
    response.headers["Location"] = f"/cpas/{path.cpas}/profiles/{done.value.id}"
    return response


@admin_api.get("/cpas/<cpas>/profiles/<int:profile_id>", operation_id="getProfile", responses={
    200: reply("the profile", ProfileResponse),
    **errors(404, s404="unknown_cpas, or not_found: no such profile in the CPAS"),
})
def get_profile(path: ProfilePath) -> Response:
    """One profile: its functions, inclusions, users and what its functions lack."""
    principal().require_cpas(path.cpas)
    svc = service()
    return _json(svc.read(lambda store: reads.profile_detail(store, svc.catalog, path.cpas, path.profile_id)).as_json())


@admin_api.put("/cpas/<cpas>/profiles/<int:profile_id>", operation_id="updateProfile", responses={
    200: reply("the profile, its version one higher", ProfileResponse, headers=("X-Policy-Version",),
               or_dry_run=True),
    **errors(404, 409, 413, s404="unknown_cpas, or not_found: no such profile in the CPAS",
             s409="conflict: version is not the current one (details.current_version) or a concurrent change "
                  "(details.retry); builtin_profile; duplicate_description"),
})
def update_profile(path: ProfilePath, query: DryRunQuery, body: ProfileUpdate) -> Response:
    """Change a profile, given the version last read; functions and includes left out stay as they are."""
    principal().require_cpas(path.cpas)
    done = _change(query, Admin.update_profile, path.cpas, path.profile_id, version=body.version,
                   description_fr=body.description_fr, description_nl=body.description_nl,
                   functions=body.functions, includes=body.includes)
    if isinstance(done, Previewed):
        return _dry_run(done)
    return _changed(done.value.as_json())


@admin_api.delete("/cpas/<cpas>/profiles/<int:profile_id>", operation_id="deleteProfile", responses={
    200: dry_run_reply(),
    204: reply("deleted", headers=("X-Policy-Version",)),
    **errors(404, 409, s404="unknown_cpas, or not_found: no such profile in the CPAS",
             s409="profile_in_use: a user holds it or another profile includes it; builtin_profile; conflict: a "
                  "concurrent change (details.retry)"),
})
def delete_profile(path: ProfilePath, query: DryRunQuery) -> Response:
    """Delete a profile that no user holds and no profile includes."""
    principal().require_cpas(path.cpas)
    done = _change(query, Admin.delete_profile, path.cpas, path.profile_id)
    if isinstance(done, Previewed):
        return _dry_run(done)
    return _changed(None, 204, done.policy_version)


@admin_api.get("/cpas/<cpas>/functions/<function>/users", operation_id="functionUsers", description=(
    "Exactly the users /enforce allows the function now (hierarchy, covering functions and prerequisites "
    "applied; an inactive user is never listed), read from the decision engine's index; with at, as it was then "
    "(the names are today's)."), responses={
    200: reply("every user allowed the function, by user id, with the profiles that grant it",
               FunctionUsersResponse, example={
                   "cpas": "0207196354", "function": "dossier.search", "policy_version": 33,
                   "users": [{"user": "85073003328", "name": "Marie DUBOIS", "granted_by": [2]},
                             {"user": "93061517116", "name": "Thomas GOOSSENS", "granted_by": [6, 7]}]}),
    **errors(400, 404, s400=HISTORY_400),
})
def list_function_users(path: FunctionPath, query: FunctionUsersQuery) -> Response:
    """Who can use this function: the users allowed it, each with the profiles that grant it."""
    return _json(function_users(service(), principal(), path.cpas, path.function,
                                query.min_policy_version, query.at).as_json())


@admin_api.get("/cpas/<cpas>/users", operation_id="listUsers", responses={
    200: reply("one page of users, by name then user id", UsersPage),
    **errors(404),
})
def list_users(path: CpasPath, query: UsersQuery) -> Response:
    """The CPAS's active (or inactive) users, searchable, a page at a time."""
    principal().require_cpas(path.cpas)
    page = service().read(lambda store: reads.users_page(store, path.cpas, query.lang, active=query.status == "active",
                                                         page=query.page, per_page=query.per_page, q=query.q or ""))
    return _json({"items": [row.as_json(query.lang) for row in page.items], "page": page.page,
                  "per_page": page.per_page, "total": page.total})


@admin_api.get("/cpas/<cpas>/users/<user>", operation_id="getUser", responses={
    200: reply("the user", UserResponse),
    **errors(404, s404="unknown_cpas, or not_found: the user never logged in to the CPAS"),
})
def get_user(path: UserPath, query: LangQuery) -> Response:
    """One user of the CPAS with their profiles."""
    principal().require_cpas(path.cpas)
    return _json(service().read(lambda store: reads.user_detail(store, path.cpas, path.user)).as_json(query.lang))


@admin_api.put("/cpas/<cpas>/users/<user>/profiles", operation_id="assignProfiles", responses={
    200: reply("the user with their profiles", UserResponse, headers=("X-Policy-Version",), or_dry_run=True),
    **errors(404, 409, 413, s404="unknown_cpas, or not_found: the user never logged in to the CPAS",
             s409="conflict: the user is inactive (reactivate first), or a concurrent change (details.retry)"),
})
def assign_profiles(path: UserPath, query: DryRunQuery, body: UserProfiles) -> Response:
    """Replace the user's profiles."""
    principal().require_cpas(path.cpas)
    done = _change(query, Admin.set_user_profiles, path.cpas, path.user, body.assignments())
    if isinstance(done, Previewed):
        return _dry_run(done)
    return _changed(done.value.as_json(done.value.lang))


@admin_api.post("/cpas/<cpas>/users/<user>/deactivate", operation_id="deactivateUser", responses={
    200: reply("the user, inactive, with no profile", UserResponse, headers=("X-Policy-Version",), or_dry_run=True),
    **errors(404, 409, s404="unknown_cpas, or not_found: the user never logged in to the CPAS"),
})
def deactivate(path: UserPath, query: DryRunQuery) -> Response:
    """Every profile removed, the user moves to the inactive list."""
    principal().require_cpas(path.cpas)
    done = _change(query, Admin.deactivate_user, path.cpas, path.user)
    if isinstance(done, Previewed):
        return _dry_run(done)
    return _changed(done.value.as_json(done.value.lang))


@admin_api.post("/cpas/<cpas>/users/<user>/reactivate", operation_id="reactivateUser", responses={
    200: reply("the user, active, with no profile", UserResponse, headers=("X-Policy-Version",), or_dry_run=True),
    **errors(404, 409, s404="unknown_cpas, or not_found: the user never logged in to the CPAS"),
})
def reactivate(path: UserPath, query: DryRunQuery) -> Response:
    """Back in the list, with no profile."""
    principal().require_cpas(path.cpas)
    done = _change(query, Admin.reactivate_user, path.cpas, path.user)
    if isinstance(done, Previewed):
        return _dry_run(done)
    return _changed(done.value.as_json(done.value.lang))


@admin_api.get("/cpas/<cpas>/audit", operation_id="listAudit", responses={
    200: reply("one page of the trail, newest first", AuditPage),
    **errors(404),
})
def audit(path: CpasPath, query: AuditQuery) -> Response:
    """Administrative changes of the CPAS, newest first."""
    principal().require_cpas(path.cpas)
    page = service().read(lambda store: reads.audit_page(store, path.cpas, page=query.page, per_page=query.per_page))
    return _json({
        "items": [{"at": iso(r.at), "actor": r.actor, "action": r.action, "target": r.target,
                   "before": r.before, "after": r.after} for r in page.items],
        "page": page.page,
        "per_page": page.per_page,
        "total": page.total,
    })


@admin_api.get("/cpas/<cpas>/policy.csv", operation_id="exportPolicy", responses={
    200: reply("the catalog's p lines, then the CPAS's g lines as they hold at the export's instant (an inactive "
               "user's, and assignments out of their term then, left out)",
               headers=("Content-Disposition",), media_type="text/csv", schema={"type": "string"},
               example="p, function:dossier.search, *, dossier.search, allow\n"
                       "g, user:85073003328, profile:2, 0207196354\n"),
    **errors(404),
})
def export_policy(path: CpasPath) -> Response:
    """The CPAS's policy as Casbin CSV, loadable with model.conf by any Casbin implementation."""
    principal().require_cpas(path.cpas)
    svc = service()
    at = svc.now()  # what holds at the export's instant: time-bound assignments out of their term left out
    response = Response(policy_csv(svc.read(lambda store: reads.policy_lines(store, path.cpas, at))),
                        mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="policy-{path.cpas}.csv"'
    return response


# -- access reviews -----------------------------------------------------------------------------------
REVIEW_404 = "unknown_cpas; review_unknown: the CPAS has no such review (a review of another CPAS is unknown here)"
_SUMMARY_EXAMPLE = {
    "id": 3, "cpas": "0207196354", "due": "2027-03-31", "started_by": "key:manager",
    "started_at": "2027-01-04T08:30:00Z", "closed": False, "closed_by": None, "closed_at": None, "total": 9,
    "decided": 3, "progress": 33}
_ITEM_EXAMPLE = {
    "user": "85073003328", "name": "Marie LEBLANC", "assignments": [
        {"profile_id": 2, "description_fr": "Full", "description_nl": None, "valid_from": None,
         "valid_until": None}],
    "decision": "keep_until", "until": "2027-06-30", "comment": "remplacement jusqu'à fin juin",
    "decided_by": "key:manager", "decided_at": "2027-01-05T10:12:00Z"}


@admin_api.get("/cpas/<cpas>/reviews", operation_id="listReviews", responses={
    200: reply("the CPAS's access reviews, newest first", ReviewSummary, many=True, example=[_SUMMARY_EXAMPLE]),
    **errors(404),
})
def list_reviews(path: CpasPath) -> Response:
    """The CPAS's access reviews, newest first, each with its progress."""
    principal().require_cpas(path.cpas)
    return _json([r.as_json() for r in service().read(lambda store: reads.reviews(store, path.cpas))])


@admin_api.post("/cpas/<cpas>/reviews", operation_id="startReview", description=(
    "Freezes every active user's assignments (profiles with their descriptions and terms), one item per user; "
    "an inactive user is left out. Changes no policy."), responses={
    200: dry_run_reply(),
    201: reply("the review with its items, none decided", Review,
               example={**_SUMMARY_EXAMPLE, "decided": 0, "progress": 0, "items": [
                   {**_ITEM_EXAMPLE, "decision": None, "until": None, "comment": None, "decided_by": None,
                    "decided_at": None}]}),
    **errors(400, 404, 409, 413, s400=ERROR_TEXT[400] + "; the due date is before today (Brussels)",
             s409="review_open: another review of the CPAS is open (details.review); conflict: a concurrent "
                  "change (details.retry)"),
})
def start_review(path: CpasPath, query: DryRunQuery, body: ReviewStart) -> Response:
    """Start an access review of the CPAS, due on a date."""
    principal().require_cpas(path.cpas)
    done = _change(query, Admin.start_review, path.cpas, body.due)
    if isinstance(done, Previewed):
        return _dry_run(done)
    return _json(done.value.as_json(), 201)


@admin_api.get("/cpas/<cpas>/reviews/<int:review_id>", operation_id="getReview", responses={
    200: reply("the review, its progress and every item", Review,
               example={**_SUMMARY_EXAMPLE, "total": 1, "decided": 1, "progress": 100, "items": [_ITEM_EXAMPLE]}),
    **errors(404, s404=REVIEW_404),
})
def get_review(path: ReviewPath) -> Response:
    """One access review with every user's frozen assignments and decision, by name."""
    principal().require_cpas(path.cpas)
    return _json(service().read(lambda store: reads.review_detail(store, path.cpas, path.review_id)).as_json())


@admin_api.post("/cpas/<cpas>/reviews/<int:review_id>/items/<user>", operation_id="decideReviewItem", description=(
    "Final once made. revoke removes the reviewed profiles the user still holds, keep_until bounds them to the end "
    "of until (Brussels), at once and audited as an assignment (user.assign), with a new policy version; the "
    "user's other profiles keep their terms. For a user inactive now, the decision is recorded and nothing else "
    "changes (an inactive user holds nothing usable)."), responses={
    200: reply("the decision, with the review's progress", ReviewDecision, headers=("X-Policy-Version",),
               or_dry_run=True, example={"review": _SUMMARY_EXAMPLE, "item": _ITEM_EXAMPLE, "policy_version": 35}),
    **errors(400, 404, 409, 413,
             s400=ERROR_TEXT[400] + "; keep_until without a date after today, or until with another decision",
             s404=REVIEW_404 + "; review_item_unknown: the user is not in the review",
             s409="review_closed: the review is closed; review_item_decided: the user was decided already "
                  "(details.decision); conflict: a concurrent change (details.retry)"),
})
def decide_review_item(path: ReviewItemPath, query: DryRunQuery, body: ReviewDecide) -> Response:
    """The reviewer's decision on one user of the review: keep, revoke or keep_until."""
    principal().require_cpas(path.cpas)
    done = _change(query, Admin.decide_review_item, path.cpas, path.review_id, path.user, body.decision,
                   body.until, body.comment)
    if isinstance(done, Previewed):
        return _dry_run(done)
    return _changed(done.value.as_json())


@admin_api.post("/cpas/<cpas>/reviews/<int:review_id>/close", operation_id="closeReview", responses={
    200: reply("the review, signed off (closed_by, closed_at)", ReviewSummary, or_dry_run=True,
               example={**_SUMMARY_EXAMPLE, "closed": True, "closed_by": "key:manager",
                        "closed_at": "2027-03-02T16:40:00Z", "decided": 9, "progress": 100}),
    **errors(404, 409, s404=REVIEW_404,
             s409="review_undecided: users still to decide (details.undecided); review_closed: closed already; "
                  "conflict: a concurrent change (details.retry)"),
})
def close_review(path: ReviewPath, query: DryRunQuery) -> Response:
    """Sign the review off once every user is decided; it is read-only from then on."""
    principal().require_cpas(path.cpas)
    done = _change(query, Admin.close_review, path.cpas, path.review_id)
    if isinstance(done, Previewed):
        return _dry_run(done)
    return _json(done.value.as_json())


@admin_api.get("/reviews/overview", operation_id="reviewsOverview", responses={
    200: reply("every CPAS the credential may use, by id", ReviewOverviewRow, many=True, example=[{
        "cpas": "0207196354", "name_fr": "CPAS de Herstappe", "name_nl": "OCMW Herstappe",
        "last_closed_at": "2026-03-02T16:40:00Z", "open_review": _SUMMARY_EXAMPLE, "overdue": False}]),
})
def reviews_overview() -> Response:
    """Where each CPAS stands with its access reviews: last closed, open one, overdue."""
    svc, who = service(), principal()
    today = brussels_day(svc.now())
    rows = svc.read(lambda store: reads.reviews_overview(store, who.cpas, today, svc.settings.review_interval_days))
    return _json([row.as_json() for row in rows])

def first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "body"
    return f"{where}: {err.get('msg', 'invalid')}"


def validation_errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors(include_url=False, include_input=False)
    ]


def validation_error_response(exc: ValidationError) -> Response:
    """flask-openapi3 calls this for a request that fails its model: our envelope, status 400."""
    message = first_error(exc)
    if request.method in ("POST", "PUT", "PATCH") and request.get_json(silent=True) is None:
        message = (
            "the request body must be JSON with Content-Type: application/json"
            if not request.is_json
            else "the request body is not valid JSON"
        )
    response = jsonify(envelope("invalid_request", message, validation_errors(exc)))
    response.status_code = 400
    return response


