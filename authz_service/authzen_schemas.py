"""Models (pydantic) of the OpenID AuthZEN Authorization API 1.0 routes (``authzen.py``): requests, checked
with the identifier rules of ``schemas.py``, and the documented answers. flask-openapi3 validates requests
with them and puts them in ``/openapi.json``.

Our identifiers in AuthZEN's information model: a subject ``{"type": "user", "id": <user id>}``, a resource
``{"type": "cpas", "id": <KBO>}``, an action ``{"name": <function code>}``. Types are never coerced
(``"explain": "yes"`` is a 400) but, unlike the other routes, a field the route does not know is ignored:
the specification says receivers MUST ignore unknown fields ("JSON Serialization"). Every entity's
``properties`` is accepted and plays no part in a decision.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from .schemas import (
    ErrorBody,
    FunctionCode,
    Kbo,
    MinVersion,
    ShownAs,
    UserId,
    omitted,  # a field an answer leaves out, rather than sends as null
    parse_kbo,
    user_id_rule,  # the rule of UserId, for an id whose type says it is a user
)

SUBJECT_TYPE = "user"
RESOURCE_TYPE = "cpas"
PAGE_MAX = 1000  # results in one search answer, whatever page.limit asks
Semantic = Literal["execute_all", "deny_on_first_deny", "permit_on_first_permit"]
PROPERTIES = "accepted and ignored: decisions depend on the CPAS's profiles only"


class Strict(BaseModel):
    """No coercion; unknown fields ignored (AuthZEN 1.0, "JSON Serialization")."""

    model_config = ConfigDict(strict=True, extra="ignore")


class Open(BaseModel):
    """An AuthZEN object whose other keys are free (``context``, ``options``): the keys we read are typed."""

    model_config = ConfigDict(strict=True, extra="allow")


# -- the information model, with our identifiers ----------------------------------------------------------
class Subject(Strict):
    type: Literal["user"] = Field(description="always `user`")
    id: UserId = Field(description="the user id, as on POST /enforce")
    properties: dict[str, Any] | None = Field(default=None, description=PROPERTIES)


class Resource(Strict):
    type: Literal["cpas"] = Field(description="always `cpas`")
    id: Kbo = Field(description="the CPAS's KBO/BCE number (mod-97 checked; dots allowed)")
    properties: dict[str, Any] | None = Field(default=None, description=PROPERTIES)


class Action(Strict):
    name: FunctionCode = Field(description="a function code of the catalog, e.g. `dossier.search`")
    properties: dict[str, Any] | None = Field(default=None, description=PROPERTIES)


class EvaluationContext(Open):
    """Any keys; two are ours."""

    explain: bool = Field(default=False, description="add reason, granted_by, missing_prerequisites to the "
                          "answer's context (as `explain` on POST /enforce)")
    min_policy_version: MinVersion = 0


# -- Access Evaluation API ----------------------------------------------------------------------------------
class EvaluationRequest(Strict):
    subject: Subject
    action: Action
    resource: Resource
    context: EvaluationContext = Field(default_factory=EvaluationContext)


class EvaluationItem(BaseModel):
    """Documented shape of one item of ``evaluations``: each key it leaves out is taken whole from the
    request's top level. Each item is checked on its own, so that a bad one gets its own answer."""

    model_config = ConfigDict(extra="allow")
    subject: Subject | None = None
    action: Action | None = None
    resource: Resource | None = None
    context: EvaluationContext | None = None


class EvaluationsOptions(Open):
    evaluations_semantic: Semantic = Field(
        default="execute_all",
        description="execute_all: every item answered; deny_on_first_deny: the answers up to the first deny "
        "(an item that cannot be decided is a deny); permit_on_first_permit: up to the first permit",
    )


class EvaluationsRequest(Strict):
    """Top-level ``subject``, ``action``, ``resource``, ``context``: defaults of every item. Without
    ``evaluations`` (or with an empty list) the request is one evaluation, answered as
    ``/access/v1/evaluation`` answers it."""

    subject: Subject | None = None
    action: Action | None = None
    resource: Resource | None = None
    context: EvaluationContext | None = None
    # items are checked one by one in the route, so that one bad item (even a non-object) gets its own answer
    evaluations: Annotated[list[Any], ShownAs(list[EvaluationItem])] | None = Field(
        default=None, description="at most AUTHZ_BATCH_LIMIT (1000) items"
    )
    options: EvaluationsOptions = Field(default_factory=EvaluationsOptions)


# -- Search APIs --------------------------------------------------------------------------------------------
class Searched(Strict):
    """The entity searched for: its ``type`` says what is sought (another type than ours finds nothing);
    an ``id``, if sent, is ignored, as the specification requires."""

    type: str = Field(max_length=200)
    id: Any = Field(default=None, description="ignored")
    properties: dict[str, Any] | None = Field(default=None, description=PROPERTIES)


class InputSubject(Strict):
    """A subject the search starts from: a user (another type finds nothing)."""

    type: str = Field(max_length=200)
    id: str = Field(max_length=200)
    properties: dict[str, Any] | None = Field(default=None, description=PROPERTIES)

    @field_validator("id")
    @classmethod
    def _ours(cls, value: str, info: ValidationInfo) -> str:
        return user_id_rule(value) if info.data.get("type") == SUBJECT_TYPE else value


class InputResource(Strict):
    """A resource the search starts from: a CPAS (another type finds nothing)."""

    type: str = Field(max_length=200)
    id: str = Field(max_length=200)
    properties: dict[str, Any] | None = Field(default=None, description=PROPERTIES)

    @field_validator("id")
    @classmethod
    def _ours(cls, value: str, info: ValidationInfo) -> str:
        return parse_kbo(value) if info.data.get("type") == RESOURCE_TYPE else value


class SearchContext(Open):
    min_policy_version: MinVersion = 0


class ResourceSearchContext(Open):
    """A resource search reads several CPAS, each at its own version: its consistency token is per CPAS."""

    min_policy_versions: Annotated[dict[Kbo, MinVersion], ShownAs(dict[str, MinVersion])] = Field(
        default_factory=dict, max_length=1000,
        description="CPAS -> the policy_version to answer from or newer (503 if not reachable in time)",
    )

    @model_validator(mode="after")
    def _one_token_per_cpas(self) -> ResourceSearchContext:
        if "min_policy_version" in (self.model_extra or {}):
            raise ValueError("a resource search reads several CPAS: give min_policy_versions, "
                             "an object from CPAS to version, instead of min_policy_version")
        return self


class PageRequest(Strict):
    token: str | None = Field(default=None, max_length=1000, description="the next_token of the previous "
                              "answer; every other field of the request must be the same as then")
    limit: int | None = Field(default=None, ge=0, le=2**62,
                              description=f"at most this many results (and never more than {PAGE_MAX})")
    properties: dict[str, Any] | None = Field(default=None, description="accepted and ignored")


class SubjectSearchRequest(Strict):
    """Which users may use this function in this CPAS now."""

    subject: Searched
    action: Action
    resource: InputResource
    context: SearchContext = Field(default_factory=SearchContext)
    page: PageRequest = Field(default_factory=PageRequest)


class ResourceSearchRequest(Strict):
    """In which CPAS (among those the credential may use) may this user use this function."""

    subject: InputSubject
    action: Action
    resource: Searched
    context: ResourceSearchContext = Field(default_factory=ResourceSearchContext)
    page: PageRequest = Field(default_factory=PageRequest)


class ActionSearchRequest(Strict):
    """What may this user use in this CPAS: the user's effective functions."""

    subject: InputSubject
    resource: InputResource
    context: SearchContext = Field(default_factory=SearchContext)
    page: PageRequest = Field(default_factory=PageRequest)


# -- answers (documentation) ----------------------------------------------------------------------------
# Fields that an answer leaves out (rather than sends as null): ``X | SkipJsonSchema[None]`` with ``omitted``,
# as in schemas.py.
class DecisionContext(BaseModel):
    policy_version: int | SkipJsonSchema[None] = Field(
        default=None, json_schema_extra=omitted, description="the CPAS's version the decision was made at")
    reason: Literal["granted", "not_granted", "missing_prerequisite", "user_inactive", "unknown_user",
                    "assignment_expired", "assignment_not_started"] | SkipJsonSchema[None] = Field(
        default=None, json_schema_extra=omitted, description="with context.explain in the request, as on /enforce")
    granted_by: list[int] | SkipJsonSchema[None] = Field(default=None, json_schema_extra=omitted)
    missing_prerequisites: list[str] | SkipJsonSchema[None] = Field(default=None, json_schema_extra=omitted)
    error: ErrorBody | SkipJsonSchema[None] = Field(
        default=None, json_schema_extra=omitted, description="an item of evaluations that could not be decided")


class EvaluationResponse(BaseModel):
    decision: bool
    context: DecisionContext


class EvaluationsResponse(BaseModel):
    evaluations: list[EvaluationResponse] | SkipJsonSchema[None] = Field(
        default=None, json_schema_extra=omitted,
        description="in the order of the request's evaluations (cut short by the semantic)",
    )
    decision: bool | SkipJsonSchema[None] = Field(default=None, json_schema_extra=omitted,
                                                  description="only for a request without evaluations")
    context: DecisionContext | SkipJsonSchema[None] = Field(default=None, json_schema_extra=omitted,
                                                            description="only for a request without evaluations")


class PageResponse(BaseModel):
    next_token: str = Field(description="empty when this page is the last one")
    count: int
    total: int


class SearchResponseContext(BaseModel):
    policy_version: int | SkipJsonSchema[None] = Field(
        default=None, json_schema_extra=omitted, description="subject and action searches: the CPAS's version")
    policy_versions: dict[str, int] | SkipJsonSchema[None] = Field(
        default=None, json_schema_extra=omitted, description="resource search: the version of each CPAS found")
    reason: Literal["unknown_type", "unknown_function", "unknown_cpas"] | SkipJsonSchema[None] = Field(
        default=None, json_schema_extra=omitted, description="why nothing can match")


class UserEntity(BaseModel):
    type: Literal["user"]
    id: str


class CpasEntity(BaseModel):
    type: Literal["cpas"]
    id: str


class FunctionEntity(BaseModel):
    name: str


class SubjectSearchResponse(BaseModel):
    page: PageResponse
    context: SearchResponseContext
    results: list[UserEntity]


class ResourceSearchResponse(BaseModel):
    page: PageResponse
    context: SearchResponseContext
    results: list[CpasEntity]


class ActionSearchResponse(BaseModel):
    page: PageResponse
    context: SearchResponseContext
    results: list[FunctionEntity]


class PdpMetadata(BaseModel):
    policy_decision_point: str = Field(description="this service's base URL, as the metadata was asked for")
    access_evaluation_endpoint: str
    access_evaluations_endpoint: str
    search_subject_endpoint: str
    search_resource_endpoint: str
    search_action_endpoint: str
