"""JSON request and response models (pydantic). flask-openapi3 validates requests with them and builds
``/openapi.json`` from the same classes. Request bodies are strict: wrong types are refused, not coerced.
"""

from __future__ import annotations

import copy
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from .catalog import REGIONS
from .inputs import CONTROL, clean_text

# ASCII only, and \Z rather than $ (which also matches before a final newline) for callers using .match
USER_RE = re.compile(r"^[A-Za-z0-9._:@-]{1,128}\Z")
FUNCTION_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*\Z")
KBO_RE = re.compile(r"^([01][0-9]{3})\.?([0-9]{3})\.?([0-9]{3})\Z")  # [0-9]: \d would take "٢" (Arabic-Indic)


def parse_kbo(value: str) -> str:
    """``0212345678`` or ``0212.345.678`` -> ``0212345678``; checks the mod-97 control digits."""
    match = KBO_RE.fullmatch(value) if isinstance(value, str) else None
    if not match:
        raise ValueError("a CPAS is a 10-digit KBO/BCE number starting with 0 or 1 (e.g. 0212.345.678)")
    digits = "".join(match.groups())
    if 97 - int(digits[:8]) % 97 != int(digits[8:]):
        raise ValueError(f"{value} is not a valid KBO/BCE number (mod-97 check failed)")
    return digits


def _user(value: str) -> str:
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


Kbo = Annotated[str, AfterValidator(parse_kbo)]
UserId = Annotated[str, AfterValidator(_user)]
FunctionCode = Annotated[str, AfterValidator(_function)]
Description = Annotated[str | None, Field(default=None, max_length=200), AfterValidator(_text)]
Name = Annotated[str, Field(max_length=200), AfterValidator(_name)]
RequiredName = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_required_name)]
Id = Annotated[int, Field(ge=1, le=2**31 - 1)]
Lang = Literal["fr", "nl", "de"]
# the consistency token: the CPAS's policy_version from a change's answer (or a decision's)
MinVersion = Annotated[int, Field(ge=0, le=2**62, description="answer from this policy version or newer "
                                  "(the policy_version of a change's answer); 503 if not reachable in time")]
Region = Literal[REGIONS]  # type: ignore[valid-type]


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


# -- bodies -----------------------------------------------------------------------------------------
class EnforceRequest(Body):
    cpas: Kbo
    user: UserId
    function: FunctionCode
    explain: bool = False
    min_policy_version: MinVersion = 0


class BatchItem(BaseModel):
    """Documented shape of one item; each item is validated on its own as an EnforceRequest, so that
    one bad item gets its own error."""

    model_config = ConfigDict(extra="allow")
    id: str | int | None = None
    cpas: str | None = None
    user: str | None = None
    function: str | None = None
    min_policy_version: int | None = None


class BatchRequest(Body):
    # items are checked one by one in the route, so that one bad item (even a non-object) gets its own error
    requests: list[Any] = Field(description="at most AUTHZ_BATCH_LIMIT (1000) items, each a BatchItem")


class UserSeen(Body):
    name: Name = ""
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
    version: int = Field(ge=1)  # compared in Python, never sent to the database
    description_fr: Description
    description_nl: Description
    functions: list[FunctionCode] | None = Field(default=None, max_length=2000)
    includes: list[Id] | None = Field(default=None, max_length=200)


class UserProfiles(Body):
    profiles: list[Id] = Field(max_length=200)


# -- responses (documentation) ----------------------------------------------------------------------
class ErrorBody(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class Explanation(BaseModel):
    reason: Literal["granted", "not_granted", "missing_prerequisite", "user_inactive", "unknown_user"]
    granted_by: list[int]
    missing_prerequisites: list[str]


class EnforceResponse(BaseModel):
    allowed: bool
    policy_version: int
    explanation: Explanation | None = None


class BatchResult(BaseModel):
    id: Any = None
    allowed: bool
    policy_version: int | None = None
    error: ErrorBody | None = None


class BatchResponse(BaseModel):
    policy_version: int
    results: list[BatchResult]


class ProfileRef(BaseModel):
    id: int
    description: str


class UserFunctionsResponse(BaseModel):
    cpas: str
    user: str
    active: bool
    policy_version: int
    profiles: list[ProfileRef]
    functions: list[str]


class UserResponse(BaseModel):
    user: str
    name: str
    lang: str
    active: bool
    profiles: list[ProfileRef]
    policy_version: int = Field(description="the CPAS's policy version after the change (consistency token)")
