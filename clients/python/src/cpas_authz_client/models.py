"""Typed values of the client: what goes in (CheckRequest), what comes out (Decision, UserFunctions) and
the one exception (AuthzError). Parsing of the service's JSON lives here too, strict on purpose: a body
that does not have the documented shape is an error, never a guess (and never ``allowed``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Codes the client itself produces (the service's own codes, e.g. "unknown_cpas", pass through).
CONNECTION_ERROR = "connection_error"
TIMEOUT = "timeout"
MALFORMED_RESPONSE = "malformed_response"
UNEXPECTED_STATUS = "unexpected_status"
CLIENT_ERROR = "client_error"


class AuthzError(Exception):
    """A call to the authorization service failed: no decision was made.

    ``code`` is the service's error code (``unknown_cpas``, ``unauthenticated``...) or one of the client's
    (``connection_error``, ``timeout``, ``malformed_response``, ``unexpected_status``); ``status`` is the
    HTTP status, or None when no usable answer arrived."""

    def __init__(self, code: str, message: str, status: int | None = None, details: Any = None) -> None:
        super().__init__(f"{code}: {message}" if status is None else f"{code} ({status}): {message}")
        self.code = code
        self.message = message
        self.status = status
        self.details = details

    def __repr__(self) -> str:
        return f"AuthzError(code={self.code!r}, message={self.message!r}, status={self.status!r})"


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """The error of one item of a batch (the others were still decided)."""

    code: str
    message: str
    details: Any = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class CheckRequest:
    """One question: may ``user`` use ``function`` in ``cpas``?"""

    cpas: str
    user: str
    function: str
    explain: bool = False
    min_policy_version: int | None = None  # answer from this policy version or newer


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a decision came out as it did (asked with ``explain=True``).

    ``reason`` is one of granted, not_granted, missing_prerequisite, user_inactive, unknown_user,
    assignment_expired, assignment_not_started."""

    reason: str
    granted_by: tuple[int, ...] = ()
    missing_prerequisites: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    """An answer. ``allowed`` is False whenever ``error`` is set."""

    allowed: bool
    policy_version: int | None = None
    explanation: Explanation | None = None
    error: ErrorInfo | None = None


@dataclass(frozen=True, slots=True)
class ProfileRef:
    id: int
    description: str | None


@dataclass(frozen=True, slots=True)
class UserFunctions:
    """A user's effective functions in one CPAS (what an application builds its menu from).

    ``not_modified`` is True when this came from the client's cache after a 304 answer; ``policy_version`` is
    then the version of the last full answer (the service's ETag covers the functions, not the version)."""

    cpas: str
    user: str
    active: bool
    policy_version: int
    profiles: tuple[ProfileRef, ...]
    functions: tuple[str, ...]
    etag: str | None = None
    not_modified: bool = False

    def allows(self, function: str) -> bool:
        return self.active and function in self.functions


# -- parsing ----------------------------------------------------------------------------------------------
def _malformed(what: str, status: int | None) -> AuthzError:
    return AuthzError(MALFORMED_RESPONSE, f"the service's answer is malformed: {what}", status)


def _object(body: Any, what: str, status: int | None) -> Mapping[str, Any]:
    if not isinstance(body, dict):
        raise _malformed(f"{what} is not a JSON object", status)
    return body


def _bool(body: Mapping[str, Any], key: str, status: int | None) -> bool:
    value = body.get(key)
    if not isinstance(value, bool):  # 1, "true", null... are not a yes
        raise _malformed(f"'{key}' is not a boolean", status)
    return value


def _int(body: Mapping[str, Any], key: str, status: int | None) -> int:
    value = body.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise _malformed(f"'{key}' is not an integer", status)
    return value


def _str(body: Mapping[str, Any], key: str, status: int | None) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise _malformed(f"'{key}' is not a string", status)
    return value


def _list(body: Mapping[str, Any], key: str, status: int | None) -> list[Any]:
    value = body.get(key, [])
    if not isinstance(value, list):
        raise _malformed(f"'{key}' is not a list", status)
    return value


def parse_explanation(body: Mapping[str, Any], status: int | None) -> Explanation | None:
    raw = body.get("explanation")
    if raw is None:
        return None
    obj = _object(raw, "'explanation'", status)
    granted = _list(obj, "granted_by", status)
    missing = _list(obj, "missing_prerequisites", status)
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in granted):
        raise _malformed("'granted_by' holds a non-integer", status)
    if not all(isinstance(f, str) for f in missing):
        raise _malformed("'missing_prerequisites' holds a non-string", status)
    return Explanation(reason=_str(obj, "reason", status), granted_by=tuple(granted),
                       missing_prerequisites=tuple(missing))


def parse_decision(body: Any, status: int | None) -> Decision:
    obj = _object(body, "the body", status)
    return Decision(allowed=_bool(obj, "allowed", status), policy_version=_int(obj, "policy_version", status),
                    explanation=parse_explanation(obj, status))


def parse_error_info(raw: Any, status: int | None) -> ErrorInfo:
    obj = _object(raw, "'error'", status)
    return ErrorInfo(code=_str(obj, "code", status), message=str(obj.get("message", "")), details=obj.get("details"))


def parse_batch_item(raw: Any, batch_version: int, status: int | None) -> Decision:
    """One result of /enforce/batch. An item that carries an error, or whose shape is wrong, is a deny."""
    obj = _object(raw, "a batch result", status)
    version = obj.get("policy_version", batch_version)
    if not isinstance(version, int) or isinstance(version, bool):
        version = batch_version
    if obj.get("error") is not None:
        return Decision(allowed=False, policy_version=version, error=parse_error_info(obj["error"], status))
    try:
        return Decision(allowed=_bool(obj, "allowed", status), policy_version=version,
                        explanation=parse_explanation(obj, status))
    except AuthzError as err:
        return Decision(allowed=False, policy_version=version, error=ErrorInfo(err.code, err.message))


def parse_user_functions(body: Any, status: int | None, etag: str | None) -> UserFunctions:
    obj = _object(body, "the body", status)
    profiles = []
    for raw in _list(obj, "profiles", status):
        item = _object(raw, "a profile", status)
        description = item.get("description")
        profiles.append(ProfileRef(id=_int(item, "id", status),
                                   description=description if isinstance(description, str) else None))
    functions = _list(obj, "functions", status)
    if not all(isinstance(f, str) for f in functions):
        raise _malformed("'functions' holds a non-string", status)
    return UserFunctions(
        cpas=_str(obj, "cpas", status),
        user=_str(obj, "user", status),
        active=_bool(obj, "active", status),
        policy_version=_int(obj, "policy_version", status),
        profiles=tuple(profiles),
        functions=tuple(functions),
        etag=etag,
    )
