"""Request-level input guards, shared by the JSON API, the lean ``POST /enforce`` path and the web UI.

``install(app, max_body)`` (called once from ``create_app``) puts three of them in place:

* JSON bodies are read by :class:`GuardedRequest`: only ``Content-Type: application/json`` (optionally
  ``; charset=utf-8``) counts as JSON, the body must be UTF-8, and it may nest at most
  :data:`MAX_JSON_DEPTH` arrays/objects (checked by a byte scan before parsing: Python's parser
  recurses, and ~1,000 levels in a 2 KB body would raise RecursionError).
* query parameters, path segments and form fields must not hold control characters (Unicode Cc) or
  lone surrogates (Cs): PostgreSQL refuses NUL in strings, and none of them is ever meant; a number in
  the path is written with 0-9 only. The JSON API answers 400 ``invalid_request``; the web UI its HTML
  400 page.
* a chunked body (no Content-Length; gunicorn and Werkzeug's server de-chunk it and set
  ``wsgi.input_terminated``) is buffered up to the body limit (:class:`ChunkedBodyBuffer`), so that
  an oversize one gets the same 413 as a declared one instead of being cut at the limit.

The text rules of descriptions and names (:func:`clean_text`) and the comparison key of descriptions
(:func:`comparison_key`) live here too, so that the JSON schemas, the web forms and the admin use
cases apply the same ones.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from flask import Flask, Request, abort, request
from flask import json as flask_json

from .errors import InvalidRequest

MAX_JSON_DEPTH = 32
TEXT_MAX_LENGTH = 200  # descriptions and names (the columns are String(200))
KEY_MAX_LENGTH = 200  # Profile.key_fr / key_nl

# application/json, optionally with charset=utf-8 (names case-insensitive, the value maybe quoted)
_JSON_CONTENT_TYPE = re.compile(r'[ \t]*application/json[ \t]*(?:;[ \t]*charset=("?)utf-8\1[ \t]*)?',
                                re.IGNORECASE | re.ASCII)
# Unicode category Cc (C0, DEL, C1) and Cs (surrogates: only a JSON "\ud800" escape can make one)
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# a JSON string, escapes included (possessive: no backtracking on an unterminated one)
_JSON_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"', re.DOTALL)
_BRACKETS = b"[]{}"
_NOT_BRACKETS = bytes(b for b in range(256) if b not in _BRACKETS)
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 / -1 once read as signed bytes


# -- JSON bodies ----------------------------------------------------------------------------------------
def is_json_content_type(value: str | None) -> bool:
    """``application/json`` with at most a ``charset=utf-8`` parameter: the one body type of the API."""
    return value is not None and _JSON_CONTENT_TYPE.fullmatch(value) is not None


def json_too_deep(raw: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the UTF-8 JSON text ``raw`` nests more than ``limit`` arrays/objects. A byte scan, no
    parsing: strings are dropped (in UTF-8 a quote, backslash or bracket byte is always that ASCII
    character), then the depth is the highest running sum of +1 per opening and -1 per closing bracket.
    Malformed text may be over-counted (it is refused either way), valid JSON never is."""
    if raw.count(b"[") + raw.count(b"{") <= limit:  # the common case: too few brackets to matter
        return False
    steps = _JSON_STRING.sub(b"", raw).translate(_STEPS, _NOT_BRACKETS)
    if len(steps) <= limit:
        return False
    return max(itertools.accumulate(memoryview(steps).cast("b"))) > limit


def depth_error(limit: int = MAX_JSON_DEPTH) -> InvalidRequest:
    return InvalidRequest(f"the JSON body nests arrays/objects more than {limit} levels deep")


class _GuardedJson:
    """What :meth:`GuardedRequest.get_json` parses with: UTF-8 text (a leading byte-order mark is
    ignored) of at most MAX_JSON_DEPTH levels, then the app's own JSON loader. A body that is not UTF-8
    is not valid JSON (ValueError); one that nests too deep is refused outright (InvalidRequest), even
    when the caller asked for ``silent``."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def loads(self, data: str | bytes, **kwargs: Any) -> Any:
        if isinstance(data, str):
            text, raw = data, data.encode("utf-8", "surrogatepass")
        else:
            raw = bytes(data)
            text = raw.decode("utf-8-sig")  # UnicodeDecodeError is a ValueError: "not valid JSON"
        if json_too_deep(raw):
            raise depth_error()
        return self.loader.loads(text, **kwargs)

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return str(self.loader.dumps(obj, **kwargs))


class GuardedRequest(Request):
    """Flask's request, reading JSON bodies only as the API documents them (see the module text).
    Flask sets ``json_module`` to the app's JSON provider on every request: it is kept, behind the
    checks."""

    @property
    def json_module(self) -> Any:
        return _GuardedJson(self.__dict__.get("_json_loader", flask_json))

    @json_module.setter
    def json_module(self, loader: Any) -> None:
        self.__dict__["_json_loader"] = loader

    @property
    def is_json(self) -> bool:
        return is_json_content_type(self.environ.get("CONTENT_TYPE"))


# -- control characters in query, path and form -----------------------------------------------------
_FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
_NON_ASCII_DIGIT = re.compile(r"(?![0-9])\d")


def _fields(req: Request) -> Iterator[tuple[str, str, Any]]:
    """(where, name, value) of every query parameter, path segment and form field."""
    for name, value in req.args.items(multi=True):
        yield "query parameter", name, value
    for name, value in (req.view_args or {}).items():
        yield "path segment", name, value
    if req.mimetype in _FORM_TYPES:
        for name, value in req.form.items(multi=True):
            yield "form field", name, value


def field_problem(req: Request) -> str | None:
    """A message naming the first field that holds a control character or a surrogate, else None.
    Also refused: a number in the path written with other digits than 0-9 (Werkzeug's int converter
    reads "/profiles/١" as profile 1)."""
    for where, name, value in _fields(req):
        if CONTROL.search(name):
            return f"a {where} name contains a control character"
        if isinstance(value, str) and CONTROL.search(value):
            return f"{where} {name!r} contains a control character; control characters are not allowed"
        if isinstance(value, int) and where == "path segment" and _NON_ASCII_DIGIT.search(req.path):
            return f"path segment {name!r} must be written with the digits 0-9"
    return None


def refuse_bad_fields() -> None:
    """before_request: 400 for a control character anywhere in the query, the path or a form."""
    problem = field_problem(request)
    if problem is None:
        return
    if request.blueprint == "web":
        abort(400, problem)  # the web UI's own HTML error page
    raise InvalidRequest(problem)


# -- chunked bodies -----------------------------------------------------------------------------------
StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class ChunkedBodyBuffer:
    """WSGI middleware for bodies sent with ``Transfer-Encoding: chunked``. The server de-chunks them
    (gunicorn and Werkzeug's server set ``wsgi.input_terminated`` and leave CONTENT_LENGTH unset);
    Werkzeug then reads such a stream only up to MAX_CONTENT_LENGTH and silently stops there, so an
    oversize body reached the route cut short (400 "not valid JSON") instead of being refused (413).
    This reads at most ``limit + 1`` bytes: a body that fits goes on as an ordinary body with its
    CONTENT_LENGTH; a longer one goes on with CONTENT_LENGTH ``limit + 1``, so Werkzeug refuses it
    with 413 as soon as the route reads it, exactly as a declared oversize body. Without
    ``wsgi.input_terminated`` the stream is not known to end, and is left alone (Werkzeug reads it as
    empty)."""

    def __init__(self, app: WSGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("wsgi.input_terminated") and "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            body = self._read(environ["wsgi.input"])
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            del environ["HTTP_TRANSFER_ENCODING"]  # Werkzeug ignores CONTENT_LENGTH beside it
        return self.app(environ, start_response)

    def _read(self, stream: Any) -> bytes:
        parts: list[bytes] = []
        size = 0
        while size <= self.limit:
            part = stream.read(min(64 * 1024, self.limit + 1 - size))
            if not part:
                break
            parts.append(part)
            size += len(part)
        return b"".join(parts)


def install(app: Flask, max_body: int) -> None:
    """Put the guards of this module in place on ``app`` (before the lean /enforce path wraps it)."""
    app.request_class = GuardedRequest
    app.before_request(refuse_bad_fields)
    app.wsgi_app = ChunkedBodyBuffer(app.wsgi_app, max_body)  # type: ignore[method-assign]


# -- descriptions and names -----------------------------------------------------------------------------
def clean_text(value: str, *, max_length: int = TEXT_MAX_LENGTH) -> str:
    """A description or a name as stored: NFC, runs of white space made one space, ends trimmed.
    ValueError for control characters, surrogates, invisible formatting characters (Unicode Cf:
    zero-width characters, bidi controls, soft hyphen...) and a text longer than ``max_length``."""
    if CONTROL.search(value):
        raise ValueError("control characters are not allowed")
    value = unicodedata.normalize("NFC", value)
    for char in value:
        if unicodedata.category(char) == "Cf":
            raise ValueError(
                f"invisible formatting characters (zero-width characters, text direction controls) are not "
                f"allowed: U+{ord(char):04X}"
            )
    value = " ".join(value.split())
    if len(value) > max_length:
        raise ValueError(f"at most {max_length} characters")
    return value


def comparison_key(text: str) -> str:
    """What two descriptions must not share: NFKC + case folding (ligatures, full-width letters,
    decomposed accents and case all compare equal), invisible formatting characters dropped, runs of
    white space one space. A key longer than the key column keeps its start and gets a hash of the
    whole, so that it fits and stays distinct."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    visible = "".join(c for c in folded if unicodedata.category(c) != "Cf")
    key = " ".join(visible.split())
    if len(key) > KEY_MAX_LENGTH:
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        key = f"{key[:KEY_MAX_LENGTH - len(digest) - 1]}~{digest}"
    return key
