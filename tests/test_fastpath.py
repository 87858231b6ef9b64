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


def test_same_answers_with_and_without_the_fast_path(app: Any, operator: Any, demo: dict[str, Any],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    fast = app.wsgi_app
    assert isinstance(fast, EnforceFastPath)
    served: list[bool] = []
    answer = EnforceFastPath._answer

    def spy(self: EnforceFastPath, raw: bytes, authorization: str | None) -> bytes | None:
        result = answer(self, raw, authorization)
        served.append(result is not None)
        return result

    monkeypatch.setattr(EnforceFastPath, "_answer", spy)
    flask_only = Client(fast.app, Response)
    with_fast = Client(app, Response)
    for kind, body, headers in pairs(demo):
        sent = {"Authorization": f"Bearer {operator.key}", **(headers or {})}
        if not sent["Authorization"]:
            del sent["Authorization"]
        data = json.dumps(body)
        served.clear()
        a = with_fast.post("/enforce", data=data, headers=sent, content_type="application/json")
        b = flask_only.post("/enforce", data=data, headers=sent, content_type="application/json")
        assert (a.status_code, a.get_json()) == (b.status_code, b.get_json()), body
        assert a.headers["Content-Type"] == b.headers["Content-Type"]
        if kind == "good":
            assert served == [True], body
            assert a.get_data() == b.get_data()  # byte for byte
        else:
            assert a.status_code >= 400 and served in ([], [False]), body


def test_other_routes_and_methods_go_to_flask(app: Any, operator: Any, demo: dict[str, Any]) -> None:
    assert operator.get("/enforce").status_code == 405
    assert operator.post("/enforce", data="x", headers={"Content-Type": "text/plain"}).status_code == 400
    assert app.test_client().get("/healthz").status_code == 200
