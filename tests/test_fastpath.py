"""The lean WSGI path for POST /enforce answers exactly like the Flask route, for good requests and
bad ones alike, and actually serves the good ones."""

from __future__ import annotations

import json
from typing import Any

import pytest
from werkzeug.test import Client
from werkzeug.wrappers import Response

from authz_service.fastpath import EnforceFastPath


def pairs(demo: dict[str, Any]) -> list[tuple[str, Any, dict[str, str] | None]]:
    cpas = demo["cpas"]
    good = [
        {"cpas": cpas, "user": user, "function": function, "explain": explain}
        for user in [*list(demo["users"])[:6], "99999999999"]
        for function in ("dossier.search", "help_request.list", "help_request.add", "notification.alert.view")
        for explain in (False, True)
    ]
    bad: list[Any] = [
        {"cpas": "0212345678", "user": "u", "function": "dossier.search"},  # bad KBO
        {"cpas": "0212345668", "user": "u", "function": "dossier.search"},  # unknown CPAS
        {"cpas": cpas, "user": "u", "function": "no.such"},
        {"cpas": cpas, "user": "u"},
        {"cpas": cpas, "user": 5, "function": "dossier.search"},
        {"cpas": cpas, "user": "u", "function": "dossier.search", "extra": 1},
        "not an object",
        [1, 2],
    ]
    out: list[tuple[str, Any, dict[str, str] | None]] = [("good", b, None) for b in good]
    out += [("bad", b, None) for b in bad]
    out += [("bad", good[0], {"Authorization": "Bearer azk_nope_nope"}), ("bad", good[0], {"Authorization": ""})]
    return out


def handed_to_flask(fast: EnforceFastPath, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """A list that gets an entry each time the fast path hands a request to the Flask app behind it (an
    empty list after a request: the fast path answered it alone)."""
    handed: list[bool] = []
    behind = fast.app

    def spy(environ: dict[str, Any], start_response: Any) -> Any:
        handed.append(True)
        return behind(environ, start_response)

    monkeypatch.setattr(fast, "app", spy)
    return handed


def test_same_answers_with_and_without_the_fast_path(app: Any, operator: Any, demo: dict[str, Any],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    fast = app.wsgi_app
    assert isinstance(fast, EnforceFastPath)
    flask_only = Client(fast.app, Response)
    handed = handed_to_flask(fast, monkeypatch)
    with_fast = Client(app, Response)
    for kind, body, headers in pairs(demo):
        sent = {"Authorization": f"Bearer {operator.key}", **(headers or {})}
        if not sent["Authorization"]:
            del sent["Authorization"]
        data = json.dumps(body)
        handed.clear()
        a = with_fast.post("/enforce", data=data, headers=sent, content_type="application/json")
        b = flask_only.post("/enforce", data=data, headers=sent, content_type="application/json")
        assert (a.status_code, a.get_json()) == (b.status_code, b.get_json()), body
        assert a.headers["Content-Type"] == b.headers["Content-Type"]
        if kind == "good":
            assert handed == [], body  # the fast path answered alone
            assert a.get_data() == b.get_data()  # byte for byte
        else:
            assert a.status_code >= 400 and handed == [True], body


def test_other_routes_and_methods_go_to_flask(app: Any, operator: Any, demo: dict[str, Any]) -> None:
    assert operator.get("/enforce").status_code == 405
    assert operator.post("/enforce", data="x", headers={"Content-Type": "text/plain"}).status_code == 400
    assert app.test_client().get("/healthz").status_code == 200


def edge_cases(demo: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(kind, label, keyword arguments of Client.open) for POST /enforce at the edges of the input rules
    (authz_service/inputs.py). "good": the lean path answers; "bad": it hands over and Flask refuses;
    "same": Flask answers (the lean path leaves it alone), whatever it says."""
    import io

    body = {"cpas": demo["cpas"], "user": next(iter(demo["users"])), "function": "dossier.search"}
    raw = json.dumps(body).encode()
    cases: list[tuple[str, str, dict[str, Any]]] = []
    for content_type in ("application/json", "application/json; charset=utf-8", "application/json;charset=UTF-8",
                         'application/json; charset="utf-8"', "Application/JSON"):
        cases.append(("good", content_type, {"data": raw, "content_type": content_type}))
    for content_type in ("application/jsonp", "application/json-seq", "application/jsonx", "application/vnd.api+json",
                         "application/json; charset=latin-1", "application/json; foo=bar", "text/json",
                         "text/plain"):
        cases.append(("bad", content_type, {"data": raw, "content_type": content_type}))
    deep = 1000
    for label, data in {
        "nested_arrays": b"[" * deep + b"]" * deep,
        "nested_objects": b'{"a":' * deep + b"1" + b"}" * deep,
        "nested_in_a_field": b'{"cpas": ' + b"[" * deep + b"]" * deep + b', "user": "u", "function": "x.y"}',
        "never_closed": b"[" * 5000,
        "33_levels": b"[" * 33 + b"]" * 33,
        "utf16": json.dumps(body).encode("utf-16"),
        "arabic_indic_kbo": json.dumps({**body, "cpas": "0٢07196354"}).encode(),
        "nul_in_user": json.dumps({**body, "user": "u\x00"}).encode(),
    }.items():
        cases.append(("bad", label, {"data": data, "content_type": "application/json"}))
    cases.append(("bad", "query_nul", {"data": raw, "content_type": "application/json", "query_string": "x=%00"}))
    cases.append(("same", "query_plain", {"data": raw, "content_type": "application/json", "query_string": "x=1"}))
    cases.append(("same", "utf8_bom", {"data": b"\xef\xbb\xbf" + raw, "content_type": "application/json"}))
    for label, size in (("chunked", len(raw)), ("chunked_at_limit", 2 * 1024 * 1024),
                        ("chunked_over_limit", 3 * 1024 * 1024)):
        cases.append(("same" if label != "chunked_over_limit" else "bad", label, {
            "input_stream": lambda size=size: io.BytesIO(raw + b" " * (size - len(raw))),
            "headers": {"Transfer-Encoding": "chunked", "Content-Type": "application/json"},
            "environ_overrides": {"wsgi.input_terminated": True},
        }))
    return cases


def test_same_answers_at_the_edges(app: Any, operator: Any, demo: dict[str, Any],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    fast = app.wsgi_app
    assert isinstance(fast, EnforceFastPath)
    flask_only = Client(fast.app, Response)
    handed = handed_to_flask(fast, monkeypatch)
    with_fast = Client(app, Response)
    auth = {"Authorization": f"Bearer {operator.key}"}
    for kind, label, kwargs in edge_cases(demo):
        answers = []
        for client in (with_fast, flask_only):
            sent = {**kwargs, "headers": {**auth, **kwargs.get("headers", {})}}
            if callable(sent.get("input_stream")):
                sent["input_stream"] = sent["input_stream"]()
            handed.clear()
            answers.append(client.post("/enforce", **sent))
            if client is with_fast:
                lean = not handed  # the fast path answered alone
        a, b = answers
        assert (a.status_code, a.get_json()) == (b.status_code, b.get_json()), label
        assert a.headers["Content-Type"] == b.headers["Content-Type"] == "application/json", label
        if kind == "good":
            assert lean and a.status_code == 200 and a.get_data() == b.get_data(), label
        elif kind == "bad":
            assert a.status_code in (400, 413) and a.get_json()["error"]["code"] in (
                "invalid_request", "payload_too_large"), (label, a.get_json())
            assert not lean, label
        else:
            assert a.status_code == 200, (label, a.get_json())
    deep = [c for c in edge_cases(demo) if c[1] in ("nested_arrays", "never_closed")]
    for _, label, kwargs in deep:
        err = with_fast.post("/enforce", headers=auth, **kwargs).get_json()["error"]
        assert "levels deep" in err["message"], label
