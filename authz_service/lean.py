"""The lean path's JSON codec (``fastpath.py``): request bodies decoded and type-checked in C by msgspec
structs that mirror the pydantic models, the identifier rules of ``schemas.py`` on top, and answers written
byte for byte as the Flask routes write them.

Strictness is one-sided on purpose: what :func:`enforce`, :func:`batch`, :func:`evaluation` and
:func:`evaluations` accept, the pydantic models accept too, with the same values (types never coerced,
unknown fields of ``/enforce`` and the batch refused, the KBO, user id and function code rules of
``schemas.py``, ``min_policy_version`` within 0..2**62). They may refuse more (a batch item ``id`` that is
not a string, an integer or null, a body Python's parser would read and msgspec does not): anything they
refuse returns None and the lean path hands the request to Flask, which answers it, errors included.
Two things msgspec would let through that Flask refuses are checked here: bodies nesting more than 32
arrays/objects in fields the structs skip (AuthZEN ignores unknown fields) and integers longer than
Python's 4,300-digit conversion limit there.

The answers: Flask's ``jsonify`` is ``json.dumps(..., sort_keys=True, separators=(",", ":"),
ensure_ascii=True) + "\\n"``; AuthZEN's ``_json`` the same with keys in the order written and the default
separators (``", "``, ``": "``). :func:`jsonify` writes with msgspec, whose escapes are json's, then
escapes what ``ensure_ascii`` escapes beyond them (DEL and non-ASCII, as ``\\u00e9``).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Annotated, Any, Literal

import msgspec

from .inputs import json_too_deep
from .schemas import FUNCTION_RE, USER_RE, parse_kbo

MinVersion = Annotated[int, msgspec.Meta(ge=0, le=2**62)]
# integers Python's json refuses to convert (sys.int_info.default_max_str_digits), in fields msgspec skips
_LONG_NUMBER = re.compile(rb"[0-9]{4301}")


# -- bodies ------------------------------------------------------------------------------------------------
class Enforce(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """``schemas.EnforceRequest``: the same fields, types and defaults; strings checked by :func:`plain`."""

    cpas: str
    user: str
    function: str
    explain: bool = False
    min_policy_version: MinVersion = 0


class BatchItem(Enforce, forbid_unknown_fields=True, gc=False):
    """``schemas.BatchItem``, whose ``id`` is any JSON value: here only the common ones (else Flask)."""

    id: str | int | None = None


class Batch(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    requests: list[BatchItem]


class Subject(msgspec.Struct, gc=False):  # AuthZEN: unknown fields are ignored
    type: Literal["user"]
    id: str
    properties: dict[str, Any] | None = None


class Resource(msgspec.Struct, gc=False):
    type: Literal["cpas"]
    id: str
    properties: dict[str, Any] | None = None


class Action(msgspec.Struct, gc=False):
    name: str
    properties: dict[str, Any] | None = None


class Context(msgspec.Struct, gc=False):
    explain: bool = False
    min_policy_version: MinVersion = 0


class Evaluation(msgspec.Struct, gc=False):
    subject: Subject
    action: Action
    resource: Resource
    context: Context = msgspec.field(default_factory=Context)


class EvaluationItem(msgspec.Struct, gc=False):
    """An item of ``evaluations``: a key it sends replaces the top-level default whole; null is not absent
    (Flask refuses the item), hence UNSET rather than None."""

    subject: Subject | msgspec.UnsetType = msgspec.UNSET
    action: Action | msgspec.UnsetType = msgspec.UNSET
    resource: Resource | msgspec.UnsetType = msgspec.UNSET
    context: Context | msgspec.UnsetType = msgspec.UNSET


Semantic = Literal["execute_all", "deny_on_first_deny", "permit_on_first_permit"]


class Options(msgspec.Struct, gc=False):
    evaluations_semantic: Semantic = "execute_all"


class Evaluations(msgspec.Struct, gc=False):
    subject: Subject | None = None
    action: Action | None = None
    resource: Resource | None = None
    context: Context | None = None
    evaluations: list[EvaluationItem] | None = None
    options: Options = msgspec.field(default_factory=Options)


_ENFORCE = msgspec.json.Decoder(Enforce)
_BATCH = msgspec.json.Decoder(Batch)
_EVALUATION = msgspec.json.Decoder(Evaluation)
_EVALUATIONS = msgspec.json.Decoder(Evaluations)


class Asked(msgspec.Struct, gc=False):
    """One decision asked, its identifiers checked and the CPAS normalized: what ``decide`` reads of an
    ``EnforceRequest``."""

    cpas: str
    user: str
    function: str
    explain: bool
    min_policy_version: int


def kbo(value: str) -> str | None:
    """``parse_kbo`` (``0207.196.354`` -> ``0207196354``), None for what it refuses; remembered for the
    last few thousand numbers (a number is at most 12 characters: a longer text is never kept)."""
    return _kbo(value) if len(value) <= 12 else None


@lru_cache(maxsize=4096)
def _kbo(value: str) -> str | None:
    try:
        return parse_kbo(value)
    except ValueError:
        return None


def plain(cpas: str, user: str, function: str, explain: bool, min_policy_version: int) -> Asked | None:
    """The identifier rules of ``schemas.py`` (Kbo, UserId, FunctionCode), or None."""
    number = kbo(cpas)
    if number is None or not _user_and_function(user, function):
        return None
    return Asked(number, user, function, explain, min_policy_version)


def _user_and_function(user: str, function: str) -> bool:
    return USER_RE.fullmatch(user) is not None and len(function) <= 200 and FUNCTION_RE.fullmatch(function) is not None


def enforce(raw: bytes) -> Enforce | None:
    """The body, checked, its CPAS normalized, or None."""
    try:
        body = _ENFORCE.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None
    number = kbo(body.cpas)
    if number is None or not _user_and_function(body.user, body.function):
        return None
    body.cpas = number
    return body


def batch(raw: bytes) -> list[BatchItem] | None:
    """The items, checked, each CPAS normalized (``0207196354``), or None when the body or any item is not
    plain."""
    try:
        items = _BATCH.decode(raw).requests
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None
    # a batch names few CPAS and functions, and often users more than once: each is checked once
    numbers: dict[str, str | None] = {}
    users: set[str] = set()
    functions: set[str] = set()
    for item in items:
        cpas, user, function = item.cpas, item.user, item.function
        number = numbers.get(cpas)
        if number is None:
            number = numbers[cpas] = kbo(cpas)
            if number is None:
                return None
        if user not in users:
            if USER_RE.fullmatch(user) is None:
                return None
            users.add(user)
        if function not in functions:
            if len(function) > 200 or FUNCTION_RE.fullmatch(function) is None:
                return None
            functions.add(function)
        item.cpas = number
    return items


def _skippable(raw: bytes) -> bool:
    """What Flask's reading of a body refuses in fields these structs skip (AuthZEN's unknown fields)."""
    return not json_too_deep(raw) and (len(raw) < 4301 or _LONG_NUMBER.search(raw) is None)


def _evaluation(subject: Subject, action: Action, resource: Resource, context: Context) -> Asked | None:
    return plain(resource.id, subject.id, action.name, context.explain, context.min_policy_version)


def evaluation(raw: bytes) -> Asked | None:
    if not _skippable(raw):
        return None
    try:
        body = _EVALUATION.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None
    return _evaluation(body.subject, body.action, body.resource, body.context)


def evaluations(raw: bytes) -> tuple[list[Asked], Semantic, bool] | None:
    """The evaluations (each with the top-level defaults it leaves out), the semantic, and whether the
    request is one evaluation (no ``evaluations``, or an empty list: answered as ``/access/v1/evaluation``);
    None when anything is not plain."""
    if not _skippable(raw):
        return None
    try:
        body = _EVALUATIONS.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None
    subject, action, resource = body.subject, body.action, body.resource
    context = body.context or Context()
    # the defaults are checked whole, even where every item replaces them (Flask refuses the request then)
    if (subject is not None and USER_RE.fullmatch(subject.id) is None) or (
            action is not None and (len(action.name) > 200 or FUNCTION_RE.fullmatch(action.name) is None)) or (
            resource is not None and kbo(resource.id) is None):
        return None
    if not body.evaluations:
        if subject is None or action is None or resource is None:
            return None
        one = _evaluation(subject, action, resource, context)
        return None if one is None else ([one], "execute_all", True)
    asked: list[Asked] = []
    for item in body.evaluations:
        s = subject if item.subject is msgspec.UNSET else item.subject
        a = action if item.action is msgspec.UNSET else item.action
        r = resource if item.resource is msgspec.UNSET else item.resource
        c = context if item.context is msgspec.UNSET else item.context
        if s is None or a is None or r is None:
            return None
        one = _evaluation(s, a, r, c)
        if one is None:
            return None
        asked.append(one)
    return asked, body.options.evaluations_semantic, False


# -- answers -----------------------------------------------------------------------------------------------
_ENCODE = msgspec.json.Encoder(order="sorted").encode
# what json's ensure_ascii escapes beyond what msgspec escapes (its escapes of quotes, backslashes and control
# characters are json's, character for character): DEL and everything past ASCII
_PAST_ASCII = re.compile("[\x7f-\U0010ffff]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match[0])
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 | (code >> 10):04x}\\u{0xDC00 | (code & 0x3FF):04x}"


def ascii_json(out: bytes) -> bytes:
    """msgspec's UTF-8 JSON text as json's ``ensure_ascii`` writes it (``é`` -> ``\\u00e9``)."""
    if out.isascii() and b"\x7f" not in out:
        return out
    return _PAST_ASCII.sub(_escaped, out.decode()).encode()


def jsonify(obj: Any) -> bytes:
    """Byte for byte Flask's ``jsonify(obj)`` body: keys sorted, compact, non-ASCII escaped, a newline."""
    try:
        return ascii_json(_ENCODE(obj)) + b"\n"
    except (TypeError, ValueError, msgspec.EncodeError):  # a lone surrogate, a type msgspec does not write
        return (json.dumps(obj, sort_keys=True, separators=(",", ":")) + "\n").encode()


def json_value(value: str | int | None) -> bytes:
    """One value as ``jsonify`` writes it inside a body (a batch item's id)."""
    if value is None:
        return b"null"
    if isinstance(value, int):
        return b"%d" % value
    return ascii_json(_ENCODE(value))
