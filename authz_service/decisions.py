"""The one decision: every route that answers "may this user use this function in this CPAS?" (the lean
``POST /enforce`` path, the Flask ``/enforce`` route, each item of ``/enforce/batch``, AuthZEN's
``/access/v1/evaluation`` and each item of ``/access/v1/evaluations``) goes through
:func:`decide`, so that the checks, their order and the count of decisions are written once.

Order of the checks: the credential may use the CPAS (403), the function is in the catalog (400
``unknown_function``), the CPAS's policy is current (the version board and the caller's
``min_policy_version``: see ``Service.fresh_policy``; 503 when it cannot be) and exists (404
``unknown_cpas``). The caller has already checked the ``enforce`` scope. With ``AUTHZ_DECISION_LOG`` on,
each decision is also a line of the ``authz.decisions`` log, with its explanation (``logs.py``).

Many decisions on one snapshot (``/enforce/batch``, AuthZEN's ``/access/v1/evaluations``):
:func:`bring_up_to_date`, then ``decide`` on what it returns. The AuthZEN searches ask the same index the
other way round (:func:`permitted_functions`, :func:`permitted_users`, :func:`permitted_cpas`), with the
same checks in the same order; they are not decisions and are not counted as such.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from . import reads
from .engine import CpasPolicy, Decision
from .errors import CpasUnknown, UnknownFunction, VersionNotReached
from .logs import log_decision
from .models import iso
from .schemas import EnforceRequest
from .security import Principal
from .service import Service


def admissible(service: Service, principal: Principal, req: EnforceRequest) -> None:
    """What can be refused before any policy is looked at."""
    principal.require_cpas(req.cpas)
    if req.function not in service.catalog:
        raise UnknownFunction(f"unknown function code: {req.function}", {"function": req.function})


def decide(
    service: Service,
    principal: Principal,
    req: EnforceRequest,
    policies: Mapping[str, CpasPolicy] | None = None,
) -> Decision:
    """The decision on ``req``, or the ServiceError that refuses it. ``policies``: one snapshot for a
    batch, whose CPAS the caller brought up to date first; else the CPAS's current policy."""
    admissible(service, principal, req)
    if policies is None:
        policy = service.fresh_policy(req.cpas, req.min_policy_version)
    else:
        policy = policies.get(req.cpas)
        if policy is not None and policy.version < req.min_policy_version:
            raise VersionNotReached(req.cpas, req.min_policy_version, policy.version)
        if policy is not None and policy.next_change != math.inf and policy.next_change <= service.engine.wall():
            policy = policy.at_instant(service.engine.wall())  # a term began or ended since it was built
    if policy is None:
        raise CpasUnknown(req.cpas)
    logged = service.settings.decision_log  # AUTHZ_DECISION_LOG: every decision, explained, on authz.decisions
    decision = policy.decide(req.user, req.function, explain=req.explain or logged)
    service.metrics.decisions.labels("allow" if decision.allowed else "deny").inc()
    if logged:
        log_decision(principal, req, decision)
    return decision


class Question(Protocol):
    """What a decision reads of a request: an ``EnforceRequest``, or the lean path's ``lean.Asked``."""

    @property
    def cpas(self) -> str: ...
    @property
    def user(self) -> str: ...
    @property
    def function(self) -> str: ...
    @property
    def explain(self) -> bool: ...
    @property
    def min_policy_version(self) -> int: ...


def decide_many(service: Service, principal: Principal, requests: Sequence[Question],
                policies: Mapping[str, CpasPolicy], *, stop_at: bool | None = None) -> list[Decision]:
    """``decide(service, principal, req, policies)`` for each request, in order, on one snapshot: the same
    checks and the same decisions, but the count of decisions made once for the lot (the lean path's
    batches, at the speed of their parsing). ``stop_at``: no request is decided after the first decision
    that is this (AuthZEN's deny_on_first_deny: False). Raises the first refusal, before anything is counted.
    With ``AUTHZ_DECISION_LOG`` on, simply ``decide`` one by one (each decision is a log line)."""
    if service.settings.decision_log:
        logged: list[Decision] = []
        for req in requests:
            logged.append(decide(service, principal, req, policies))  # type: ignore[arg-type]
            if logged[-1].allowed is stop_at:
                break
        return logged
    functions = service.catalog.functions  # what ``in service.catalog`` looks a code up in
    now = service.engine.wall()
    # CPAS -> its policy, as decide() takes it, and the Decision without explanation of each outcome: a bare
    # decision is the engine's CpasPolicy.allows at the policy's version, so one Decision (immutable), made
    # by policy.decide(), serves every request of the CPAS with that outcome
    ready: dict[str, tuple[CpasPolicy, list[Decision | None]]] = {}
    decisions: list[Decision] = []
    allowed = 0
    for req in requests:
        cpas, function = req.cpas, req.function
        found = ready.get(cpas)
        if found is None:
            principal.require_cpas(cpas)  # admissible(), once per CPAS
        if function not in functions:
            raise UnknownFunction(f"unknown function code: {function}", {"function": function})
        if found is None:
            policy = policies.get(cpas)
            if policy is None:
                raise CpasUnknown(cpas)
            if policy.next_change <= now:
                policy = policy.at_instant(now)  # a term began or ended since it was built
            found = ready[cpas] = (policy, [None, None])
        policy, bare = found
        if policy.version < req.min_policy_version:
            raise VersionNotReached(cpas, req.min_policy_version, policy.version)
        if req.explain:
            decision = policy.decide(req.user, function, explain=True)
        else:
            outcome = policy.allows(req.user, function)
            known = bare[outcome]
            if known is None:
                known = bare[outcome] = policy.decide(req.user, function)
            decision = known
        allowed += decision.allowed
        decisions.append(decision)
        if decision.allowed is stop_at:
            break
    for result, count in (("allow", allowed), ("deny", len(decisions) - allowed)):
        if count:
            service.metrics.decisions.labels(result).inc(count)
    return decisions


def bring_up_to_date(service: Service, requests: Iterable[EnforceRequest]) -> Mapping[str, CpasPolicy]:
    """One policy snapshot for many decisions: each CPAS the requests name is brought up to date first (to
    the highest ``min_policy_version`` asked of it), then every request is decided on the snapshot this
    returns (``decide(..., policies)``). A CPAS that did not reach a version stays as the store has it:
    ``decide`` refuses, with 503, only the requests that asked for more. Unavailable (503) when the policy
    is not loaded or stale, or the store does not answer."""
    wanted: dict[str, int] = {}
    for req in requests:
        wanted[req.cpas] = max(wanted.get(req.cpas, 0), req.min_policy_version)
    for cpas, minimum in wanted.items():
        with contextlib.suppress(VersionNotReached):
            service.fresh_policy(cpas, minimum)
    return service.snapshot().policies


# -- searches: the same index and the same checks as decide(), turned around ------------------------------
@dataclass(frozen=True)
class Found:
    """What a search found: identifiers sorted, the policy version each CPAS was read at, and, when
    nothing can match because an identifier is unknown, why (``unknown_function``, ``unknown_cpas``)."""

    ids: tuple[str, ...]
    versions: Mapping[str, int] = field(default_factory=dict)
    reason: str | None = None


def permitted_functions(service: Service, principal: Principal, cpas: str, user: str, minimum: int = 0) -> Found:
    """Every function ``decide`` allows this user in this CPAS (the user's effective functions)."""
    principal.require_cpas(cpas)
    policy = service.fresh_policy(cpas, minimum)
    if policy is None:
        return Found((), reason="unknown_cpas")
    # a code of rule rows newer than this process's catalog would be refused by decide(): left out here too
    codes = sorted(code for code in policy.view(user).functions if code in service.catalog)
    return Found(tuple(codes), {cpas: policy.version})


def permitted_users(service: Service, principal: Principal, cpas: str, function: str, minimum: int = 0) -> Found:
    """Every user ``decide`` allows to use this function in this CPAS; the checks in decide's order."""
    principal.require_cpas(cpas)
    if function not in service.catalog:
        return Found((), reason="unknown_function")
    policy = service.fresh_policy(cpas, minimum)
    if policy is None:
        return Found((), reason="unknown_cpas")
    return Found(policy.users_allowed(function), {cpas: policy.version})


@dataclass(frozen=True)
class Holder:
    """A user ``decide`` allows a function, with the profiles assigned to them that grant it."""

    user: str
    name: str
    granted_by: tuple[int, ...]


@dataclass(frozen=True)
class FunctionUsers:
    """Who may use a function of a CPAS, from one policy (its version) and the users' names."""

    cpas: str
    function: str
    policy: CpasPolicy
    users: tuple[Holder, ...]

    def as_json(self) -> dict[str, object]:
        return {"cpas": self.cpas, "function": self.function, "policy_version": self.policy.version,
                "users": [{"user": h.user, "name": h.name, "granted_by": list(h.granted_by)} for h in self.users]}


def function_users(service: Service, principal: Principal, cpas: str, function: str,
                   minimum: int = 0, at: datetime | None = None) -> FunctionUsers:
    """Every user ``decide`` allows ``function`` in ``cpas`` now, from the engine's index (the checks in
    decide's order: 403, 400 ``unknown_function``, 503, 404 ``unknown_cpas``), with each user's name (one read
    of the store for them all) and the profiles that grant it. ``at``: as it was then, from the policy's history
    (``Service.policy_at``); the names are today's."""
    principal.require_cpas(cpas)
    if function not in service.catalog:
        raise UnknownFunction(f"unknown function code: {function}", {"function": function})
    policy = service.policy_at(cpas, at, minimum)
    grants = policy.grants_of(function)
    names = service.read(lambda store: reads.user_names(store, cpas))
    return FunctionUsers(cpas, function, policy,
                         tuple(Holder(user, names.get(user, ""), granted_by) for user, granted_by in grants))


def permitted_cpas(service: Service, principal: Principal, user: str, function: str,
                   minimums: Mapping[str, int] | None = None) -> Found:
    """Every CPAS, among those the credential may use, where ``decide`` allows this user this function.
    ``minimums``: a consistency token per CPAS (403 for a CPAS outside the credential's limit). A key
    limited to some CPAS searches those; another key every CPAS this instance knows, plus those named in
    ``minimums`` (a CPAS created on another host since the last poll is found once this one hears of it)."""
    minimums = minimums or {}
    for cpas in minimums:
        principal.require_cpas(cpas)
    if function not in service.catalog:
        return Found((), reason="unknown_function")
    known = service.snapshot().policies  # fail closed (503) even when there is nothing to look at
    candidates = set(principal.cpas) if principal.cpas is not None else set(known)
    ids: list[str] = []
    versions: dict[str, int] = {}
    for cpas in sorted(candidates.union(minimums)):
        policy = service.fresh_policy(cpas, minimums.get(cpas, 0))
        if policy is None:
            continue
        versions[cpas] = policy.version
        if policy.allows(user, function):
            ids.append(cpas)
    return Found(tuple(ids), versions)


# -- what a user may use: the functions route, on the lean path and in Flask --------------------------------
@dataclass(frozen=True)
class FunctionsAnswer:
    """The user-functions route's answer: its body, and its ETag over the body without ``policy_version``
    (another user's change keeps it; a term that begins or ends changes ``functions`` and ``next_change``)."""

    body: dict[str, object]
    etag: str


def user_functions_answer(policy: CpasPolicy, user: str, lang: str) -> FunctionsAnswer:
    """Everything the user may use at the policy's instant, the profiles in force (with their term when they
    have one) and ``next_change``: when a term alone next changes this answer (ISO, null: never)."""
    view = policy.view(user)
    terms = policy.terms_of(user)
    profiles = []
    for pid in view.profiles:
        term = terms.get(pid)
        profiles.append({"id": pid, "description": policy.description(pid, lang),
                         **(reads.term_json(term) if term is not None else {})})
    upcoming = policy.next_change_of(user)
    body: dict[str, object] = {
        "cpas": policy.cpas,
        "user": user,
        "active": view.active,
        "policy_version": policy.version,
        "profiles": profiles,
        "functions": sorted(view.functions),
        "next_change": None if upcoming is None else iso(datetime.fromtimestamp(upcoming, UTC)),
    }
    etag = hashlib.sha256(
        json.dumps({k: v for k, v in body.items() if k != "policy_version"}, sort_keys=True).encode()
    ).hexdigest()[:32]
    return FunctionsAnswer(body, etag)
