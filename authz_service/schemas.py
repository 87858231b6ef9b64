"""JSON request and response models (pydantic). flask-openapi3 validates requests with them and builds
``/openapi.json`` from the same classes. Request bodies are strict: wrong types are refused, not coerced.

The response models are documentation only: the routes answer the dicts of ``reads.py``'s ``as_json``
methods (and of ``api.py``), and these models mirror them field for field (tests/test_openapi_client.py
and tests/test_openapi_fuzz.py check the answers against the served document). JSON-schema extras
(``pattern``, ``example``) describe what the validators accept without adding a validation of their own,
so that the error messages stay ours.
"""

from __future__ import annotations

import copy
import re
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    GetJsonSchemaHandler,
    Tag,
    TypeAdapter,
    WithJsonSchema,
)
from pydantic.json_schema import JsonSchemaValue, SkipJsonSchema
from pydantic_core import CoreSchema
from typing_extensions import TypeAliasType

from .catalog import REGIONS
from .inputs import CONTROL, clean_text
from .terms import Assignment, parse_bound

# ASCII only, and \Z rather than $ (which also matches before a final newline) for callers using .match
USER_RE = re.compile(r"^[A-Za-z0-9._:@-]{1,128}\Z")
FUNCTION_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*\Z")
KBO_RE = re.compile(r"^([01][0-9]{3})\.?([0-9]{3})\.?([0-9]{3})\Z")  # [0-9]: \d would take "٢" (Arabic-Indic)
# the same rules as JSON-schema patterns (ECMA-262: "$" is the end of the text)
KBO_PATTERN = r"^[01][0-9]{3}\.?[0-9]{3}\.?[0-9]{3}$"
USER_PATTERN = r"^[A-Za-z0-9._:@-]{1,128}$"
FUNCTION_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$"


def parse_kbo(value: str) -> str:
    """``0212345678`` or ``0212.345.678`` -> ``0212345678``; checks the mod-97 control digits."""
    match = KBO_RE.fullmatch(value) if isinstance(value, str) else None
    if not match:
        raise ValueError("a CPAS is a 10-digit KBO/BCE number starting with 0 or 1 (e.g. 0212.345.678)")
    digits = "".join(match.groups())
    if 97 - int(digits[:8]) % 97 != int(digits[8:]):
        raise ValueError(f"{value} is not a valid KBO/BCE number (mod-97 check failed)")
    return digits


def user_id_rule(value: str) -> str:
    if not USER_RE.fullmatch(value):
        raise ValueError("a user id is 1-128 characters of A-Z a-z 0-9 . _ : @ -")
    return value


def _function(value: str) -> str:
    if len(value) > 200 or not FUNCTION_RE.fullmatch(value):
        raise ValueError("a function code looks like 'dossier.search'")
    return value


def _no_control(value: str) -> str:
    """Refuses control characters (Unicode Cc) and lone surrogates (Cs): PostgreSQL refuses NUL."""
    if CONTROL.search(value):
        raise ValueError("control characters are not allowed")
    return value


def _search(value: str | None) -> str | None:
    return None if value is None else _no_control(value)


def _text(value: str | None) -> str | None:
    """A description: see inputs.clean_text (NFC, no invisible characters, white space collapsed);
    blank is None."""
    if value is None:
        return None
    return clean_text(value) or None


def _name(value: str) -> str:
    return clean_text(value)


def _required_name(value: str) -> str:
    value = clean_text(value)
    if not value:
        raise ValueError("a name cannot be blank")
    return value


def omitted(schema: dict[str, Any]) -> None:
    """For a field that is left out rather than null: no ``default: null`` in its schema."""
    schema.pop("default", None)


class ShownAs:
    """``Annotated[T, ShownAs(U)]``: validated as ``T``, documented as ``U`` (e.g. the items of a batch,
    each validated on its own by the route, documented as BatchItem)."""

    def __init__(self, shown: Any) -> None:
        self.shown = shown

    def __get_pydantic_json_schema__(self, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return handler(TypeAdapter(self.shown).core_schema)


Kbo = Annotated[str, AfterValidator(parse_kbo), Field(json_schema_extra={
    "pattern": KBO_PATTERN, "example": "0207196354",
    "description": "a Belgian enterprise number (KBO/BCE): 10 ASCII digits, the first 0 or 1, optionally "
                   "written with dots (0207.196.354); the last two digits must equal 97 - (the first eight "
                   "mod 97), which the pattern cannot say (0212345678 is refused with 400)",
})]
UserId = Annotated[str, AfterValidator(user_id_rule), Field(json_schema_extra={
    "pattern": USER_PATTERN, "example": "85073003328",
    "description": "the identity provider's subject id: 1 to 128 ASCII characters of A-Z a-z 0-9 . _ : @ - "
                   "(case-sensitive)",
})]
FunctionCode = Annotated[str, AfterValidator(_function), Field(json_schema_extra={
    "pattern": FUNCTION_PATTERN, "maxLength": 200, "example": "dossier.search",
    "description": "a function code of the catalog (GET /catalog); another code is 400 unknown_function",
})]
Description = Annotated[str | None, Field(default=None, max_length=200), AfterValidator(_text)]
Name = Annotated[str, Field(max_length=200), AfterValidator(_name)]
RequiredName = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_required_name)]
Id = Annotated[int, Field(ge=1, le=2**31 - 1)]
# named, so that the document (and a client generated from it) has one Lang and one Region
Lang = TypeAliasType("Lang", Literal["fr", "nl", "de"])
# the consistency token: the CPAS's policy_version from a change's answer (or a decision's)
MinVersion = Annotated[int, Field(ge=0, le=2**62, description="answer from this policy version or newer "
                                  "(the policy_version of a change's answer); 503 if not reachable in time")]
Region = TypeAliasType("Region", Literal[REGIONS])  # type: ignore[valid-type]


class Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class Params(BaseModel):
    """Path and query models. flask-openapi3 asks for a query model's JSON schema on every request;
    it never changes, so it is made once per class and handed out as a copy."""

    model_config = ConfigDict(extra="forbid")

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        key = (cls, args, tuple(sorted(kwargs.items())))
        if key not in _SCHEMAS:
            _SCHEMAS[key] = super().model_json_schema(*args, **kwargs)
        return copy.deepcopy(_SCHEMAS[key])


_SCHEMAS: dict[tuple[Any, ...], dict[str, Any]] = {}


def _utc(value: datetime | None) -> datetime | None:
    """The instant in UTC (refused when UTC cannot hold it: year 1 with a positive offset, year 9999 with a
    negative one)."""
    if value is None:
        return None
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("the instant is out of range") from None


At = Annotated[AwareDatetime | None, AfterValidator(_utc), Field(description=(
    "an ISO 8601 instant with its offset (2026-03-01T09:30:00+01:00, ...Z; encode + as %2B): the answer the "
    "service gave then, with the policy_version then, rebuilt from the policy's history (min_policy_version is "
    "then moot); an instant before the history begins (migration 0007, the CPAS's creation, the last "
    "purge-history) is 400 history_unavailable"))]


# -- path and query ---------------------------------------------------------------------------------
class CpasPath(Params):
    cpas: Kbo


class ProfilePath(Params):
    cpas: Kbo
    profile_id: Id


class UserPath(Params):
    cpas: Kbo
    user: UserId


class LangQuery(Params):
    lang: Lang = "fr"


class FunctionsQuery(Params):
    lang: Lang = "fr"
    min_policy_version: MinVersion = 0
    at: At = None


class FunctionPath(Params):
    cpas: Kbo
    function: FunctionCode


class FunctionUsersQuery(Params):
    min_policy_version: MinVersion = 0
    at: At = None


class TemplatesQuery(Params):
    region: Region | None = None
    lang: Lang = "fr"


class UsersQuery(Params):
    status: Literal["active", "inactive"] = "active"
    page: int = Field(default=1, ge=1, le=1_000_000)
    per_page: int = Field(default=50, ge=1, le=500)
    q: Annotated[str | None, Field(max_length=100), AfterValidator(_search)] = None
    lang: Lang = "fr"


class AuditQuery(Params):
    page: int = Field(default=1, ge=1, le=1_000_000)
    per_page: int = Field(default=50, ge=1, le=500)


class DryRunQuery(Params):
    dry_run: bool = Field(default=False, description=(
        "true: run the change in its transaction, answer 200 with its impact (DryRunResponse) or the error the "
        "change would get, and roll everything back: nothing is written or audited, no version is used"))


class ConditionalHeaders(Params):
    """The functions route's conditional request header, for the document: the route reads it through
    Werkzeug (``request.if_none_match``); every other header goes through untouched."""

    model_config = ConfigDict(extra="ignore")
    if_none_match: str | SkipJsonSchema[None] = Field(
        default=None, alias="If-None-Match", json_schema_extra=omitted,
        description="an ETag of an earlier answer (or *): 304 Not Modified, with no body, while it still holds",
    )


# -- bodies -----------------------------------------------------------------------------------------
_ENFORCE_EXAMPLE = {"cpas": "0207196354", "user": "96031220418", "function": "help_request.list", "explain": True}


class EnforceRequest(Body):
    model_config = ConfigDict(strict=True, extra="forbid", openapi_extra={  # type: ignore[typeddict-unknown-key]
        "example": _ENFORCE_EXAMPLE,
    })
    cpas: Kbo
    user: UserId
    function: FunctionCode
    explain: bool = Field(default=False, description="add an explanation of the decision")
    min_policy_version: MinVersion = 0


class BatchItem(EnforceRequest):
    """One item of a batch: the fields of POST /enforce and an optional id. Each item is checked on its
    own: one that breaks these rules (or is not an object) gets allowed: false and its own error in the
    results, and the other items are decided."""

    model_config = ConfigDict(strict=True, extra="forbid")
    id: Any = Field(default=None, description="any JSON value, echoed back in the item's result (null when absent)")


class BatchRequest(Body):
    model_config = ConfigDict(strict=True, extra="forbid", openapi_extra={  # type: ignore[typeddict-unknown-key]
        "example": {"requests": [
            {"id": "a", "cpas": "0207196354", "user": "85073003328", "function": "dossier.search"},
            {"id": "b", "cpas": "0207196354", "user": "85073003328", "function": "no.such"},
        ]},
    })
    # items are checked one by one in the route, so that one bad item (even a non-object) gets its own error
    requests: Annotated[list[Any], ShownAs(list[BatchItem]), Field(
        description="at most AUTHZ_BATCH_LIMIT (1000) items (413 past it), answered in this order; an item that "
                    "is not a valid BatchItem gets allowed: false and its own error, without failing the others",
    )]


class UserSeen(Body):
    model_config = ConfigDict(strict=True, extra="forbid", openapi_extra={  # type: ignore[typeddict-unknown-key]
        "example": {"name": "Marie LEBLANC", "lang": "fr"},
    })
    name: Name = Field(default="", description="a blank name keeps the stored one")
    lang: Lang = "fr"


class CpasCreate(Body):
    cpas: Kbo
    name_fr: RequiredName
    name_nl: RequiredName
    region: Region


class ProfileCreate(Body):
    description_fr: Description
    description_nl: Description
    functions: list[FunctionCode] = Field(default_factory=list, max_length=2000)
    includes: list[Id] = Field(default_factory=list, max_length=200)


class ProfileUpdate(Body):
    version: int = Field(ge=1, description="the version last read (409 conflict when it is no longer current)")
    description_fr: Description
    description_nl: Description
    functions: list[FunctionCode] | None = Field(default=None, max_length=2000, description="null: unchanged")
    includes: list[Id] | None = Field(default=None, max_length=200, description="null: unchanged")


def _bound(end: bool) -> Any:
    def parse(value: object) -> datetime:
        if not isinstance(value, str) or len(value) > 40:
            raise ValueError("a date (2027-01-31, Brussels time) or an instant with its offset "
                             "(2027-01-31T17:00:00+01:00)")
        try:
            return parse_bound(value, end=end)
        except ValueError as exc:
            raise ValueError(f"{value!r} is neither a date (2027-01-31) nor an instant with its offset "
                             "(2027-01-31T17:00:00+01:00)") from exc
    return parse


_BOUND_SCHEMA = {"type": "string", "maxLength": 40, "examples": ["2027-01-31", "2027-01-31T17:00:00+01:00"]}
StartBound = Annotated[datetime, BeforeValidator(_bound(end=False)), WithJsonSchema({
    **_BOUND_SCHEMA, "description": "from when the assignment holds (included): a date means midnight starting "
                                    "it, Brussels time; an instant needs its offset"})]
EndBound = Annotated[datetime, BeforeValidator(_bound(end=True)), WithJsonSchema({
    **_BOUND_SCHEMA, "description": "until when the assignment holds (excluded): a date means the whole of that "
                                    "day, Brussels time (it ends at the next midnight); an instant needs its "
                                    "offset"})]


class TimedProfile(Body):
    """A profile assigned for a time: from ``valid_from`` and/or until ``valid_until``."""

    id: Id
    valid_from: StartBound | None = None
    valid_until: EndBound | None = None


def _assigned_kind(value: object) -> str:
    return "timed" if isinstance(value, dict | TimedProfile) else "id"


# a dict is a TimedProfile and anything else an id, so that a refusal names what was wrong with the item as
# written (not "should be a valid integer" for an object with a bad date)
AssignedItem = Annotated[Annotated[Id, Tag("id")] | Annotated[TimedProfile, Tag("timed")],
                         Discriminator(_assigned_kind)]


class UserProfiles(Body):
    profiles: list[AssignedItem] = Field(max_length=200, description=(
        "profile ids (assigned with no end), or {id, valid_from, valid_until} for an assignment that holds "
        "only for a time; the user's profiles become exactly these"))

    def assignments(self) -> list[int | Assignment]:
        return [p if isinstance(p, int) else Assignment(p.id, p.valid_from, p.valid_until) for p in self.profiles]


# -- responses (documentation) ----------------------------------------------------------------------
# Fields that an answer leaves out (rather than sends as null) are typed ``X | SkipJsonSchema[None]``
# with ``omitted``: optional in the document, never null.
Version = Annotated[int, Field(description="the CPAS's policy version (consistency token: pass it as "
                                           "min_policy_version)")]


class ErrorBody(BaseModel):
    code: str = Field(description="stable, machine-readable: invalid_request, unknown_function, unauthenticated, "
                                  "forbidden, unknown_cpas, not_found, profile_in_use, builtin_profile, conflict, "
                                  "duplicate_description, payload_too_large, unavailable...")
    message: str = Field(description="human text; may change")
    details: Any = Field(default=None, json_schema_extra=omitted,
                         description="present only when there is something to add")


class ErrorResponse(BaseModel):
    """The error envelope of every answer outside 2xx and 304."""

    error: ErrorBody


class Explanation(BaseModel):
    reason: Literal["granted", "not_granted", "missing_prerequisite", "user_inactive", "unknown_user",
                    "assignment_expired", "assignment_not_started"]
    granted_by: list[int]
    missing_prerequisites: list[str]


class EnforceResponse(BaseModel):
    allowed: bool
    policy_version: Version
    explanation: Explanation | SkipJsonSchema[None] = Field(
        default=None, json_schema_extra=omitted, description='present only with "explain": true')


class BatchResult(BaseModel):
    """A decided item has ``policy_version`` (and ``explanation`` when asked); a refused one has
    ``allowed: false`` and ``error``."""

    id: Any = Field(description="the item's id as given, null when absent")
    allowed: bool
    policy_version: int | SkipJsonSchema[None] = Field(default=None, json_schema_extra=omitted)
    explanation: Explanation | SkipJsonSchema[None] = Field(default=None, json_schema_extra=omitted)
    error: ErrorBody | SkipJsonSchema[None] = Field(default=None, json_schema_extra=omitted)


class BatchResponse(BaseModel):
    policy_version: int = Field(description="the CPAS's version when the decided items concern one CPAS, the "
                                            "highest of their versions otherwise, 0 when no item was decided")
    results: list[BatchResult]


class ProfileRef(BaseModel):
    id: int
    description: str


class AssignedProfile(ProfileRef):
    """A profile as assigned to a user: with its term when the assignment has one."""

    valid_from: str | None = Field(default=None, json_schema_extra=omitted, description=(
        "ISO instant (UTC) from which the assignment holds, null: since it was made; left out when the "
        "assignment has no term"))
    valid_until: str | None = Field(default=None, json_schema_extra=omitted, description=(
        "ISO instant (UTC) at which the assignment ends, null: no end; left out when the assignment has no term"))


class UserFunctionsResponse(BaseModel):
    cpas: str
    user: str
    active: bool
    policy_version: Version
    profiles: list[AssignedProfile] = Field(description="the profiles assigned to the user and in force now")
    functions: list[str] = Field(description="the effective function codes, sorted")
    next_change: str | None = Field(description=(
        "ISO instant (UTC) at which a time-bound assignment of the user begins or ends, and so this answer "
        "changes without any write (null: no such instant); the caching headers never outlive it"))


class FunctionUser(BaseModel):
    user: str
    name: str = Field(description="as last reported at login (empty when never reported)")
    granted_by: list[int] = Field(description="the user's profiles that grant the function, directly or through "
                                              "what they include or cover (the explanation's granted_by)")


class FunctionUsersResponse(BaseModel):
    cpas: str
    function: str
    policy_version: Version
    users: list[FunctionUser] = Field(description="every active user /enforce allows the function now, by user id")


class UserResponse(BaseModel):
    user: str
    name: str
    lang: Lang
    active: bool
    profiles: list[AssignedProfile]
    policy_version: int = Field(description="the CPAS's policy version after the change (consistency token)")


class UserItem(BaseModel):
    """A line of the users list."""

    user: str
    name: str
    lang: Lang
    active: bool
    profiles: list[AssignedProfile]


class UsersPage(BaseModel):
    items: list[UserItem]
    page: int
    per_page: int
    total: int = Field(description="every match, on every page")


class CpasResponse(BaseModel):
    cpas: str
    name_fr: str
    name_nl: str
    region: Region
    policy_version: Version


class ProfileSummary(BaseModel):
    """A line of the profiles list."""

    id: int
    description_fr: str | None
    description_nl: str | None
    builtin: bool
    version: int
    functions_count: int
    users_count: int


class ProfileUser(BaseModel):
    user: str
    name: str


class ProfileResponse(BaseModel):
    id: int
    description_fr: str | None
    description_nl: str | None
    builtin: bool
    version: int = Field(description="the profile's own edit counter (send it back with PUT)")
    functions: list[str]
    includes: list[int]
    users: list[ProfileUser]
    missing_prerequisites: dict[str, list[str]]
    policy_version: Version


class Prerequisite(BaseModel):
    code: str
    reason: str


class CatalogFunction(BaseModel):
    type: Literal["function"]
    code: str
    label: str
    selectable: bool
    covers: list[str]
    requires: list[Prerequisite]
    in_manual: bool


class CatalogGroup(BaseModel):
    type: Literal["group"]
    code: str
    label: str
    implied: bool
    in_manual: bool
    children: list[CatalogNode]


CatalogNode = Annotated[CatalogGroup | CatalogFunction, Field(discriminator="type")]
CatalogGroup.model_rebuild()


class CatalogResponse(BaseModel):
    version: str
    lang: Lang
    tree: list[CatalogNode]


class TemplateName(BaseModel):
    fr: str
    nl: str
    de: str | None


class Template(BaseModel):
    code: str
    names: dict[str, TemplateName] = Field(description="by region: the asked region only, or every region")
    name: str | None = Field(description="the name in the asked region and language; null without a region")
    functions: list[str]


class TemplatesResponse(BaseModel):
    region: Region | None
    templates: list[Template]


class AuditItem(BaseModel):
    at: str = Field(json_schema_extra={"format": "date-time"})
    actor: str
    action: str
    target: str
    before: Any = Field(description="what changed, before (null on creation)")
    after: Any = Field(description="what changed, after (null on deletion)")


class AuditPage(BaseModel):
    items: list[AuditItem]
    page: int
    per_page: int
    total: int


class UnusableFunction(BaseModel):
    function: str
    missing_prerequisites: list[str] = Field(description="the prerequisites the user would not hold, sorted")


class UserImpact(BaseModel):
    user: str
    name: str
    gains: list[str] = Field(description="the functions the user would be allowed and is not now, sorted")
    loses: list[str] = Field(description="the functions the user is allowed now and would not be, sorted")
    unusable: list[UnusableFunction] = Field(description=(
        "after the change, the functions the user would hold through a profile but be denied for a missing "
        "prerequisite, by code"))


class ImpactSummary(BaseModel):
    users_affected: int
    functions_gained: int = Field(description="how many functions at least one user would gain")
    functions_lost: int = Field(description="how many functions at least one user would lose")


class Impact(BaseModel):
    users: list[UserImpact] = Field(description=(
        "each user of the CPAS whose effective functions (what POST /enforce allows) would change, by user id"))
    summary: ImpactSummary


class DryRunResponse(BaseModel):
    """The answer of a change sent with dry_run=true: nothing was changed."""

    dry_run: Literal[True]
    policy_version: int = Field(description=(
        "the CPAS's policy version the change would produce (the current one when it would change nothing); "
        "not a consistency token: no policy has this version until a change is made"))
    impact: Impact


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready"]
    cpas_loaded: int


class NotReady(BaseModel):
    status: Literal["unavailable"]
    problems: list[str]


# -- access reviews ---------------------------------------------------------------------------------
_DAY_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")


def _day(value: Any) -> date:
    """A calendar date written YYYY-MM-DD (a JSON string; nothing else is taken for one)."""
    if not isinstance(value, str) or not _DAY_RE.fullmatch(value):
        raise ValueError("a date is written YYYY-MM-DD (e.g. 2027-03-31)")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value} is not a date of the calendar") from None


Day = Annotated[date, BeforeValidator(_day), WithJsonSchema({
    "type": "string", "format": "date", "example": "2027-03-31",
    "description": "a date, YYYY-MM-DD, as a day in Brussels"})]
Comment = Annotated[str | None, Field(default=None, max_length=500), AfterValidator(_text)]
Decision = TypeAliasType("Decision", Literal["keep", "revoke", "keep_until"])
# what the answers carry: ISO 8601 text
Instant = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]
DayText = Annotated[str, WithJsonSchema({"type": "string", "format": "date"})]


class ReviewPath(Params):
    cpas: Kbo
    review_id: Id


class ReviewItemPath(Params):
    cpas: Kbo
    review_id: Id
    user: UserId


class ReviewStart(Body):
    model_config = ConfigDict(strict=True, extra="forbid", openapi_extra={  # type: ignore[typeddict-unknown-key]
        "example": {"due": "2027-03-31"},
    })
    due: Day = Field(description="when the review must be closed: today or later (Brussels), else 400")


class ReviewDecide(Body):
    model_config = ConfigDict(strict=True, extra="forbid", openapi_extra={  # type: ignore[typeddict-unknown-key]
        "example": {"decision": "keep_until", "until": "2027-06-30", "comment": "remplacement jusqu'à fin juin"},
    })
    decision: Decision = Field(description=(
        "keep: nothing changes; revoke: the reviewed profiles the user still holds are removed now; keep_until: "
        "they end at the end of until (Brussels), an earlier end they already have stays"))
    until: Day | SkipJsonSchema[None] = Field(default=None, json_schema_extra=omitted, description=(
        "keep_until only (and required there): a date after today"))
    comment: Comment = Field(description="up to 500 characters")


class FrozenAssignment(BaseModel):
    """A profile the user held when the review started, as it was then."""

    profile_id: int
    description_fr: str | None
    description_nl: str | None
    valid_from: Instant | None = Field(description="the assignment's term then (null: none)")
    valid_until: Instant | None


class ReviewSummary(BaseModel):
    id: int
    cpas: str
    due: DayText
    started_by: str
    started_at: Instant
    closed: bool
    closed_by: str | None = Field(description="who signed it off (null while open)")
    closed_at: Instant | None
    total: int = Field(description="users in the review (the active users when it started)")
    decided: int
    progress: int = Field(ge=0, le=100, description="decided * 100 // total, rounded down (100 with no user)")


class ReviewItem(BaseModel):
    user: str
    name: str
    assignments: list[FrozenAssignment] = Field(description="what the user held when the review started, by id")
    decision: Decision | None = Field(description="null: still to decide")
    until: DayText | None = Field(description="keep_until's date")
    comment: str | None
    decided_by: str | None
    decided_at: Instant | None


class Review(ReviewSummary):
    items: list[ReviewItem] = Field(description="one per user, by name then user id")


class ReviewDecision(BaseModel):
    review: ReviewSummary
    item: ReviewItem
    policy_version: Version


class ReviewOverviewRow(BaseModel):
    cpas: str
    name_fr: str
    name_nl: str
    last_closed_at: Instant | None = Field(description="when the CPAS last closed a review (null: never)")
    open_review: ReviewSummary | None
    overdue: bool = Field(description=(
        "its open review is past its due date, or no review was closed within AUTHZ_REVIEW_INTERVAL_DAYS (365) "
        "days, counted from the CPAS's creation when it never closed one"))
