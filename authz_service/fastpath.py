"""A lean WSGI path for ``POST /enforce``, the one route a calling application hits on every page.

It answers the common case — a well-formed request with a valid key — with the same validation model
(``EnforceRequest``), the same authentication, the same engine call and the same JSON body as the Flask
route, but without Flask's per-request machinery (routing, contexts, hooks, response objects), which
costs more than the decision itself. Anything else (a bad body, a missing key, an unknown CPAS or
function, an unavailable engine, another method or path) is handed, body and all, to the Flask app,
which stays the only place errors are produced. tests/test_fastpath.py checks that both give the same
answer for good and bad requests alike.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from pydantic import ValidationError

from .decisions import decide
from .errors import ServiceError
from .inputs import is_json_content_type
from .schemas import EnforceRequest
from .service import Service

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
HEADERS = [("Content-Type", "application/json"), ("X-Content-Type-Options", "nosniff")]


class EnforceFastPath:
    def __init__(self, app: WSGIApp, service: Service) -> None:
        self.app = app
        self.service = service
        self.max_body = service.settings.max_body_bytes

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/enforce" or environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        started = time.perf_counter()
        try:
            length = int(environ.get("CONTENT_LENGTH") or -1)
        except ValueError:
            length = -1
        # the common case only: a declared length within the limit (a chunked body is buffered further in),
        # the one body type of the API (application/jsonp & co. are refused by Flask, as on every JSON
        # route), no query string (Flask refuses control characters in one; /enforce takes none)
        if (
            not 0 < length <= self.max_body
            or not is_json_content_type(environ.get("CONTENT_TYPE"))
            or environ.get("QUERY_STRING")
        ):
            return self.app(environ, start_response)
        raw = environ["wsgi.input"].read(length)
        body = self._answer(raw, environ.get("HTTP_AUTHORIZATION"))
        if body is None:  # let Flask say what is wrong, from the same bytes
            environ["wsgi.input"] = io.BytesIO(raw)
            return self.app(environ, start_response)
        start_response("200 OK", [*HEADERS, ("Content-Length", str(len(body)))])
        self.service.metrics.requests.labels("POST", "decisions.enforce", 200).observe(time.perf_counter() - started)
        return [body]

    def _answer(self, raw: bytes, authorization: str | None) -> bytes | None:
        """The decision's body, or None for anything but a plain 200 (Flask then answers, from scratch)."""
        try:
            req = EnforceRequest.model_validate_json(raw)
            principal = self.service.authenticate(authorization)
            principal.require_scope("enforce")
            decision = decide(self.service, principal, req)
        except (ValidationError, ServiceError, ValueError):
            return None
        # byte for byte what Flask's jsonify writes
        return (json.dumps(decision.as_json(explain=req.explain), separators=(",", ":"), sort_keys=True)
                + "\n").encode()
