"""The one decision: every route that answers "may this user use this function in this CPAS?" (the lean
``POST /enforce`` path, the Flask ``/enforce`` route, each item of ``/enforce/batch``) goes through
:func:`decide`, so that the checks, their order and the count of decisions are written once.

Order of the checks: the credential may use the CPAS (403), the function is in the catalog (400
``unknown_function``), the CPAS's policy is current (the version board and the caller's
``min_policy_version``: see ``Service.fresh_policy``; 503 when it cannot be) and exists (404
``unknown_cpas``). The caller has already checked the ``enforce`` scope.
"""

from __future__ import annotations

from collections.abc import Mapping

from .engine import CpasPolicy, Decision
from .errors import CpasUnknown, UnknownFunction, VersionNotReached
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
    if policy is None:
        raise CpasUnknown(req.cpas)
    decision = policy.decide(req.user, req.function, explain=req.explain)
    service.metrics.decisions.labels("allow" if decision.allowed else "deny").inc()
    return decision
