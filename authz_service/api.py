"""JSON routes of docs/api.md. Thin: parse (flask-openapi3 + pydantic), authorize, one call, serialize."""

from __future__ import annotations

import contextlib
import hashlib
import json
from typing import Any

from flask import Response, current_app, g, jsonify, request
from flask_openapi3 import APIBlueprint, Tag
from pydantic import ValidationError

from . import reads
from .admin import Admin
from .decisions import admissible, decide
from .errors import (
    InvalidRequest,
    PayloadTooLarge,
    ServiceError,
    VersionNotReached,
    envelope,
)
from .models import iso
from .schemas import (
    AuditQuery,
    BatchRequest,
    BatchResponse,
    CpasCreate,
    CpasPath,
    EnforceRequest,
    EnforceResponse,
    ErrorResponse,
    FunctionsQuery,
    LangQuery,
    ProfileCreate,
    ProfilePath,
    ProfileUpdate,
    TemplatesQuery,
    UserFunctionsResponse,
    UserPath,
    UserProfiles,
    UserResponse,
    UserSeen,
    UsersQuery,
)
from .security import Principal
from .service import Service
from .store import policy_csv

SECURITY: list[dict[str, list[str]]] = [{"api_key": []}]
ERRORS: dict[Any, Any] = {
    400: ErrorResponse, 401: ErrorResponse, 403: ErrorResponse, 404: ErrorResponse, 503: ErrorResponse
}

decisions = APIBlueprint("decisions", __name__, abp_tags=[Tag(name="decisions")], abp_security=SECURITY,
                         abp_responses=ERRORS)
users_api = APIBlueprint("users", __name__, abp_tags=[Tag(name="users")], abp_security=SECURITY,
                         abp_responses=ERRORS)
admin_api = APIBlueprint("admin", __name__, abp_tags=[Tag(name="administration")], abp_security=SECURITY,
                         abp_responses=ERRORS)


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


# -- decisions ----------------------------------------------------------------------------------------
@decisions.post("/enforce", responses={200: EnforceResponse})
def enforce(body: EnforceRequest) -> Response:
    """May this user use this function in this CPAS? A deny is a normal 200."""
    return _json(decide(service(), principal(), body).as_json(explain=body.explain))


@decisions.post("/enforce/batch", responses={200: BatchResponse, 413: ErrorResponse})
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
                raise InvalidRequest(_first_error(exc), _errors(exc)) from None
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


@decisions.get("/cpas/<cpas>/users/<user>/functions", responses={200: UserFunctionsResponse})
def user_functions(path: UserPath, query: FunctionsQuery) -> Response:
    """The user's effective functions (hierarchy and prerequisites applied), with an ETag."""
    svc = service()
    principal().require_cpas(path.cpas)
    policy = svc.policy(path.cpas, query.min_policy_version)
    view = policy.view(path.user)
    body = {
        "cpas": path.cpas,
        "user": path.user,
        "active": view.active,
        "policy_version": policy.version,
        "profiles": [{"id": pid, "description": policy.description(pid, query.lang)} for pid in view.profiles],
        "functions": sorted(view.functions),
    }
    # The ETag covers what the user may do, not the CPAS's version: another user's change keeps it.
    etag = hashlib.sha256(
        json.dumps({k: v for k, v in body.items() if k != "policy_version"}, sort_keys=True).encode()
    ).hexdigest()[:32]
    if request.if_none_match.contains(etag):
        response = Response(status=304)
        response.set_etag(etag)
        return response
    response = _json(body)
    response.set_etag(etag)
    response.headers["Cache-Control"] = "private, no-cache"
    return response


# -- users seen at login ------------------------------------------------------------------------------
@users_api.put("/cpas/<cpas>/users/<user>", responses={200: UserResponse, 201: UserResponse})
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
@admin_api.get("/catalog")
def catalog(query: LangQuery) -> Response:
    """The function tree: groups, functions, labels, what each covers, its prerequisites."""
    cat = service().catalog
    return _json({"version": cat.version, "lang": query.lang, "tree": cat.tree(query.lang)})


@admin_api.get("/catalog/templates")
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


@admin_api.post("/cpas", responses={201: None})
def create_cpas(body: CpasCreate) -> Response:
    """Operator only: a new CPAS, with its built-in profile "Tous les accès / Alle toegangen"."""
    principal().require_operator()
    done = service().change(principal().name, Admin.create_cpas, body.cpas, body.name_fr, body.name_nl, body.region)
    return _changed(done.value.as_json(), 201)


@admin_api.get("/cpas/<cpas>/profiles")
def list_profiles(path: CpasPath) -> Response:
    principal().require_cpas(path.cpas)
    rows = service().read(lambda store: reads.profile_rows(store, path.cpas, by_description=False))
    return _json([row.as_json() for row in rows])


@admin_api.post("/cpas/<cpas>/profiles", responses={201: None, 409: ErrorResponse})
def create_profile(path: CpasPath, body: ProfileCreate) -> Response:
    principal().require_cpas(path.cpas)
    done = service().change(principal().name, Admin.create_profile, path.cpas, description_fr=body.description_fr,
                            description_nl=body.description_nl, functions=body.functions, includes=body.includes)
    response = _changed(done.value.as_json(), 201)
    response.headers["Location"] = f"/cpas/{path.cpas}/profiles/{done.value.id}"
    return response


@admin_api.get("/cpas/<cpas>/profiles/<int:profile_id>")
def get_profile(path: ProfilePath) -> Response:
    principal().require_cpas(path.cpas)
    svc = service()
    return _json(svc.read(lambda store: reads.profile_detail(store, svc.catalog, path.cpas, path.profile_id)).as_json())


@admin_api.put("/cpas/<cpas>/profiles/<int:profile_id>", responses={409: ErrorResponse})
def update_profile(path: ProfilePath, body: ProfileUpdate) -> Response:
    principal().require_cpas(path.cpas)
    done = service().change(principal().name, Admin.update_profile, path.cpas, path.profile_id, version=body.version,
                            description_fr=body.description_fr, description_nl=body.description_nl,
                            functions=body.functions, includes=body.includes)
    return _changed(done.value.as_json())


@admin_api.delete("/cpas/<cpas>/profiles/<int:profile_id>", responses={204: None, 409: ErrorResponse})
def delete_profile(path: ProfilePath) -> Response:
    principal().require_cpas(path.cpas)
    done = service().change(principal().name, Admin.delete_profile, path.cpas, path.profile_id)
    return _changed(None, 204, done.policy_version)


@admin_api.get("/cpas/<cpas>/users")
def list_users(path: CpasPath, query: UsersQuery) -> Response:
    principal().require_cpas(path.cpas)
    page = service().read(lambda store: reads.users_page(store, path.cpas, query.lang, active=query.status == "active",
                                                         page=query.page, per_page=query.per_page, q=query.q or ""))
    return _json({"items": [row.as_json(query.lang) for row in page.items], "page": page.page,
                  "per_page": page.per_page, "total": page.total})


@admin_api.get("/cpas/<cpas>/users/<user>")
def get_user(path: UserPath, query: LangQuery) -> Response:
    principal().require_cpas(path.cpas)
    return _json(service().read(lambda store: reads.user_detail(store, path.cpas, path.user)).as_json(query.lang))


@admin_api.put("/cpas/<cpas>/users/<user>/profiles", responses={409: ErrorResponse})
def assign_profiles(path: UserPath, body: UserProfiles) -> Response:
    """Replace the user's profiles."""
    principal().require_cpas(path.cpas)
    user = service().change(principal().name, Admin.set_user_profiles, path.cpas, path.user, body.profiles).value
    return _changed(user.as_json(user.lang))


@admin_api.post("/cpas/<cpas>/users/<user>/deactivate")
def deactivate(path: UserPath) -> Response:
    """Every profile removed, the user moves to the inactive list."""
    principal().require_cpas(path.cpas)
    user = service().change(principal().name, Admin.deactivate_user, path.cpas, path.user).value
    return _changed(user.as_json(user.lang))


@admin_api.post("/cpas/<cpas>/users/<user>/reactivate")
def reactivate(path: UserPath) -> Response:
    """Back in the list, with no profile."""
    principal().require_cpas(path.cpas)
    user = service().change(principal().name, Admin.reactivate_user, path.cpas, path.user).value
    return _changed(user.as_json(user.lang))


@admin_api.get("/cpas/<cpas>/audit")
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


@admin_api.get("/cpas/<cpas>/policy.csv", responses={200: None})
def export_policy(path: CpasPath) -> Response:
    """The CPAS's policy as Casbin CSV, loadable with model.conf by any Casbin implementation."""
    principal().require_cpas(path.cpas)
    response = Response(policy_csv(service().read(lambda store: reads.policy_lines(store, path.cpas))),
                        mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="policy-{path.cpas}.csv"'
    return response


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "body"
    return f"{where}: {err.get('msg', 'invalid')}"


def _errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors(include_url=False, include_input=False)
    ]


def validation_error_response(exc: ValidationError) -> Response:
    """flask-openapi3 calls this for a request that fails its model: our envelope, status 400."""
    message = _first_error(exc)
    if request.method in ("POST", "PUT", "PATCH") and request.get_json(silent=True) is None:
        message = (
            "the request body must be JSON with Content-Type: application/json"
            if not request.is_json
            else "the request body is not valid JSON"
        )
    response = jsonify(envelope("invalid_request", message, _errors(exc)))
    response.status_code = 400
    return response


