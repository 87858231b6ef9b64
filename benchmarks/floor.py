"""The floor of the HTTP figures: a raw WSGI app that does nothing but what any answer costs under the same
gunicorn settings. It reads the whole body and answers a fixed JSON body of the size the service's answer
to that path has (``AUTHZ_FLOOR_ANSWERS``: a JSON object of path to size in bytes, set by ``run.py`` from
the service's real answers); a GET that sends ``If-None-Match`` gets a bodiless 304, as the functions route
does. No authentication, no routing beyond a dict lookup, no JSON parsing: what is left is gunicorn's.

    AUTHZ_FLOOR_ANSWERS='{"/enforce": 40}' gunicorn -w 2 -k gthread --threads 4 --chdir benchmarks floor:app
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any

JSON = [("Content-Type", "application/json")]


def _answer(size: int) -> bytes:
    head, tail = b'{"floor": "', b'"}'
    return head + b"x" * max(0, size - len(head) - len(tail)) + tail


ANSWERS = {path: _answer(int(size)) for path, size in json.loads(os.environ.get("AUTHZ_FLOOR_ANSWERS", "{}")).items()}
DEFAULT = _answer(64)


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    length = environ.get("CONTENT_LENGTH")
    if length:
        environ["wsgi.input"].read(int(length))
    if environ.get("HTTP_IF_NONE_MATCH"):
        start_response("304 Not Modified", [("ETag", environ["HTTP_IF_NONE_MATCH"])])
        return [b""]
    body = ANSWERS.get(environ.get("PATH_INFO", ""), DEFAULT)
    start_response("200 OK", [*JSON, ("Content-Length", str(len(body)))])
    return [body]
