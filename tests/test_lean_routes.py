"""The lean WSGI path (fastpath.py, lean.py) answers POST /enforce/batch and AuthZEN's evaluation and
evaluations byte for byte as the Flask routes do — status, body, and the headers that matter — and hands
everything else to Flask: the bad-input corpus of tests/test_api_bad_input.py and tests/test_authzen.py,
replayed through both paths, must get the same answers, and never from the lean path alone.

Each case goes to the app (the lean path in front) and to Flask alone, with the same bytes and headers;
``lean`` cases must be answered by the lean path alone (200), ``flask`` cases handed over. Both with the
request log on (``ObservedEnforceFastPath``, the default) and off (the plain ``EnforceFastPath``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.test import Client
from werkzeug.wrappers import Response

from authz_service import create_app
from authz_service.admin import Admin
from authz_service.fastpath import EnforceFastPath
from tests.test_api_bad_input import BAD_ITEMS, BATCH_INVALID, ENFORCE_INVALID
from tests.test_authzen import bad_evaluations

MARIE = "85073003328"  # demo: "Full"
ANNELIES = "96031220418"  # demo: help requests without dossier.search
LUC = "75081815365"  # demo: no profile
MICHEL = "77070619530"  # demo: inactive
UNKNOWN = "0987654334"  # a valid KBO, never created
SEARCH, HELP = "dossier.search", "help_request.list"
# what an answer must carry alike on both paths (Date and Server are the server's)
COMPARED = ("Content-Type", "Content-Length", "X-Content-Type-Options", "X-Request-ID", "ETag", "Cache-Control")

Case = tuple[str, str, str, Any, dict[str, str]]  # (kind, label, path, body: bytes or a JSON value, headers)


@pytest.fixture
def overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    return {**overrides, "consistency_wait": 0.1}  # a min_policy_version never reached: a 503 soon


@pytest.fixture(params=["observed", "plain"])
def lean_app(request: pytest.FixtureRequest, app: Any, overrides: dict[str, Any],
             demo: dict[str, Any]) -> Iterator[Any]:
    """The app with the request log on (the test's ``app``) or off (one more app on the same database)."""
    if request.param == "observed":
        yield app
        return
    plain = create_app({**overrides, "access_log": False}, start_polling=False)
    plain.config["TESTING"] = True
    assert type(plain.wsgi_app) is EnforceFastPath
    try:
        yield plain
    finally:
        plain.extensions["authz"].close()


def replay(app: Any, key: str, cases: list[Case], monkeypatch: pytest.MonkeyPatch, method: str = "POST") -> None:
    lean = app.wsgi_app
    assert isinstance(lean, EnforceFastPath)
    flask_only = Client(lean.app, Response)
    handed: list[bool] = []
    behind = lean.app

    def spy(environ: dict[str, Any], start_response: Any) -> Any:
        handed.append(True)
        return behind(environ, start_response)

    monkeypatch.setattr(lean, "app", spy)
    if hasattr(lean, "flask"):  # ObservedEnforceFastPath: where what is not its routes goes
        monkeypatch.setattr(lean, "flask", spy)
    with_lean = Client(app, Response)
    for kind, label, path, body, headers in cases:
        data = body if isinstance(body, bytes) else None if body is None else json.dumps(body).encode()
        sent = {"Authorization": f"Bearer {key}", "X-Request-ID": "req-1",
                **({} if data is None else {"Content-Type": "application/json"}), **headers}
        sent = {k: v for k, v in sent.items() if v is not None}
        handed.clear()
        a = with_lean.open(path, method=method, data=data, headers=sent)
        by_lean = not handed
        b = flask_only.open(path, method=method, data=data, headers=sent)
        assert a.status == b.status, (label, a.get_data(), b.get_data())
        assert a.get_data() == b.get_data(), label  # byte for byte
        compared = COMPARED if "X-Request-ID" in sent else COMPARED[:3] + COMPARED[4:]  # else one made up each
        assert {h: a.headers.get(h) for h in compared} == {h: b.headers.get(h) for h in compared}, label
        assert ("X-Request-ID" in a.headers) == ("X-Request-ID" in b.headers), label
        if kind == "lean":
            assert by_lean and a.status_code in (200, 304), (label, a.get_data())
        else:
            assert not by_lean, (label, a.status_code, a.get_data())


# -- POST /enforce ------------------------------------------------------------------------------------------
def test_enforce_corpus_on_both_paths(lean_app: Any, operator: Any, demo: dict[str, Any], service: Any,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """tests/test_api_bad_input.py's corpus of bad /enforce bodies, and good ones, through both paths."""
    cpas = demo["cpas"]
    version = service.policy(cpas).version
    cases: list[Case] = [("flask", label, "/enforce", body, {}) for label, body in ENFORCE_INVALID.items()]
    cases += [("lean", f"{user} {function} {explain}", "/enforce", item(cpas, user, function, explain=explain), {})
              for user in [MARIE, ANNELIES, LUC, MICHEL, "99999999999"] for function in (SEARCH, HELP)
              for explain in (False, True)]
    cases += [("lean", "dotted", "/enforce", item(f"{cpas[:4]}.{cpas[4:7]}.{cpas[7:]}"), {}),
              ("lean", "min_version", "/enforce", item(cpas, min_policy_version=version), {}),
              ("flask", "version_not_reached", "/enforce", item(cpas, min_policy_version=version + 50), {}),
              ("flask", "unknown_cpas", "/enforce", item(UNKNOWN), {}),
              ("flask", "unknown_function", "/enforce", item(cpas, function="no.such"), {}),
              ("flask", "float_version", "/enforce", item(cpas, min_policy_version=1.0), {})]
    replay(lean_app, operator.key, cases, monkeypatch)


# -- POST /enforce/batch ------------------------------------------------------------------------------------
def item(cpas: str, user: str = MARIE, function: str = SEARCH, **extra: Any) -> dict[str, Any]:
    return {"cpas": cpas, "user": user, "function": function, **extra}


def batch_cases(cpas: str, users: list[str], version: int) -> list[Case]:
    dotted = f"{cpas[:4]}.{cpas[4:7]}.{cpas[7:]}"
    mixed = [item(cpas, user, function, id=f"{user}/{function}", explain=explain)
             for user in [*users, "99999999999"] for function in (SEARCH, HELP, "help_request.add")
             for explain in (False, True)]
    ids: list[Any] = ["a", 7, -3, 10**30, None, "é", "日本", 'quote"back\\slash', "tab\tnul\x00", "\x7f", "\u2028"]
    good: dict[str, Any] = {
        "mixed": {"requests": mixed},
        "ids": {"requests": [item(cpas, id=i) for i in ids] + [item(cpas)]},
        "dotted_kbo": {"requests": [item(dotted), item(cpas, LUC)]},
        "empty": {"requests": []},
        "min_version": {"requests": [item(cpas, min_policy_version=version), item(cpas, min_policy_version=0)]},
        "limit": {"requests": [item(cpas, users[n % len(users)], id=n) for n in range(1000)]},
        "explained_only": {"requests": [item(cpas, ANNELIES, HELP, explain=True)]},
        "duplicate_key": b'{"requests": [{"cpas": "x", "cpas": "%s", "user": "%s", "function": "%s"}]}' % (
            cpas.encode(), MARIE.encode(), SEARCH.encode()),
    }
    cases: list[Case] = [("lean", f"good {k}", "/enforce/batch", v, {}) for k, v in good.items()]
    bad: dict[str, Any] = {f"corpus {k}": v for k, v in BATCH_INVALID.items()}
    for label, (bad_item, _) in BAD_ITEMS.items():  # one bad item among good ones: its own error, from Flask
        bad[f"item {label}"] = {"requests": [item(cpas, id="a"), bad_item, item(cpas, LUC, id=2)]}
    for label, body in ENFORCE_INVALID.items():
        if isinstance(body, dict) and label != "extra_id_field":  # an item may have an id
            bad[f"enforce corpus {label}"] = {"requests": [item(cpas), body]}
    for label, value in {"object": {"a": 1}, "list": [1], "float": 1.5, "true": True}.items():
        bad[f"id {label}"] = {"requests": [item(cpas, id=value)]}
    bad.update({
        "too_many": {"requests": [item(cpas, id=n) for n in range(1001)]},
        "version_not_reached": {"requests": [item(cpas), item(cpas, min_policy_version=version + 50)]},
        "unknown_cpas": {"requests": [item(cpas), item(UNKNOWN)]},
        "unknown_function": {"requests": [item(cpas), item(cpas, function="no.such")]},
        "negative_version": {"requests": [item(cpas, min_policy_version=-1)]},
        "huge_version": {"requests": [item(cpas, min_policy_version=2**62 + 1)]},
        "float_version": b'{"requests": [{"cpas": "%s", "user": "u", "function": "%s", "min_policy_version": 1.0}]}'
                         % (cpas.encode(), SEARCH.encode()),
        "nan_id": b'{"requests": [{"id": NaN, "cpas": "%s", "user": "u", "function": "%s"}]}'
                  % (cpas.encode(), SEARCH.encode()),
        "long_int_id": b'{"requests": [{"id": %s, "cpas": "%s", "user": "u", "function": "%s"}]}'
                       % (b"9" * 5000, cpas.encode(), SEARCH.encode()),
        "lone_surrogate_id": b'{"requests": [{"id": "\\ud800", "cpas": "%s", "user": "u", "function": "%s"}]}'
                             % (cpas.encode(), SEARCH.encode()),
        "bom": b"\xef\xbb\xbf" + json.dumps({"requests": [item(cpas)]}).encode(),
        "deep": b'{"requests": [{"id": ' + b"[" * 40 + b"]" * 40 + b', "cpas": "%s", "user": "u", "function": "%s"}]}'
                % (cpas.encode(), SEARCH.encode()),
        "not_utf8": b'{"requests": [{"id": "\xff", "cpas": "%s", "user": "u", "function": "%s"}]}'
                    % (cpas.encode(), SEARCH.encode()),
    })
    cases += [("flask", k, "/enforce/batch", v, {}) for k, v in bad.items()]
    body = {"requests": [item(cpas)]}
    for label, headers in {"no_key": {"Authorization": None}, "bad_key": {"Authorization": "Bearer azk_no_pe"},
                           "text_plain": {"Content-Type": "text/plain"}}.items():
        cases.append(("flask", label, "/enforce/batch", body, headers))
    cases.append(("flask", "query", "/enforce/batch?x=1", body, {}))
    return cases


def test_batch_same_answers_on_both_paths(lean_app: Any, operator: Any, demo: dict[str, Any], service: Any,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    cases = batch_cases(demo["cpas"], list(demo["users"])[:6], service.policy(demo["cpas"]).version)
    replay(lean_app, operator.key, cases, monkeypatch)


def test_batch_keys_limited_or_without_the_scope(lean_app: Any, make_key: Any, demo: dict[str, Any],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    cpas = demo["cpas"]
    body = {"requests": [item(cpas, id="a"), item(cpas, LUC, id="b")]}
    replay(lean_app, make_key("enforce", [cpas]), [("lean", "limited_here", "/enforce/batch", body, {})], monkeypatch)
    replay(lean_app, make_key("enforce", [UNKNOWN]), [("flask", "limited_elsewhere", "/enforce/batch", body, {})],
           monkeypatch)
    replay(lean_app, make_key("users,admin"), [("flask", "no_enforce_scope", "/enforce/batch", body, {})],
           monkeypatch)


# -- AuthZEN ------------------------------------------------------------------------------------------------
def evaluation(user: str, function: str, cpas: str, **context: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"subject": {"type": "user", "id": user}, "action": {"name": function},
                            "resource": {"type": "cpas", "id": cpas}}
    if context:
        body["context"] = context
    return body


def evaluation_cases(cpas: str, users: list[str], version: int) -> list[Case]:
    path = "/access/v1/evaluation"
    good = evaluation(MARIE, SEARCH, cpas)
    goods: dict[str, Any] = {
        f"{user} {function} {explain}": evaluation(user, function, cpas, explain=explain)
        for user in [*users, "99999999999"] for function in (SEARCH, HELP) for explain in (False, True)
    }
    goods.update({
        "no_context": good,
        "dotted_kbo": evaluation(MARIE, SEARCH, f"{cpas[:4]}.{cpas[4:7]}.{cpas[7:]}"),
        "unknown_fields": {**good, "foo": "bar", "futureField": {"nested": [1, {"a": None}]}},
        "properties": {**good, "subject": {"type": "user", "id": MARIE, "properties": {"department": "Sales"}},
                       "context": {"time": "2025-06-27T18:03-07:00", "ip": "192.168.1.1", "explain": True}},
        "min_version": evaluation(MARIE, SEARCH, cpas, min_policy_version=version),
        "null_properties": {**good, "subject": {"type": "user", "id": MARIE, "properties": None}},
        "big_float_ignored": b'{"subject": {"type": "user", "id": "%s"}, "action": {"name": "%s"}, '
                             b'"resource": {"type": "cpas", "id": "%s"}, "zz": 1e999}'
                             % (MARIE.encode(), SEARCH.encode(), cpas.encode()),
    })
    cases: list[Case] = [("lean", f"good {k}", path, v, {}) for k, v in goods.items()]
    cases.append(("lean", "odd_request_id", path, good, {"X-Request-ID": "not a plain token ü"}))
    cases.append(("lean", "no_request_id", path, good, {"X-Request-ID": None}))
    bad: list[Any] = [
        *bad_evaluations(good, cpas),
        {**good, "context": {"min_policy_version": -1}},
        {**good, "subject": {"type": "user", "id": MARIE, "properties": [1]}},
        evaluation(MARIE, "no.such", cpas),
        evaluation(MARIE, SEARCH, UNKNOWN),
        evaluation(MARIE, SEARCH, cpas, min_policy_version=version + 50),
        {**good, "deep": json.loads("[" * 40 + "]" * 40)},  # Flask: too deep; msgspec would skip it
        {**good, "properties_nan": {"x": float("nan")}},  # Python's JSON reads NaN, msgspec does not
    ]
    cases += [("flask", f"bad {n}", path, body, {}) for n, body in enumerate(bad)]
    raw = json.dumps(good).encode()
    cases += [
        ("flask", "long_number", path, raw[:-1] + b', "zz": ' + b"9" * 5000 + b"}", {}),
        ("flask", "raw_tab_in_unknown", path, raw[:-1] + b', "zz": "a\tb"}', {}),
        ("flask", "lone_surrogate_unknown", path, raw[:-1] + b', "zz": "\\ud800"}', {}),
        ("flask", "bom", path, b"\xef\xbb\xbf" + raw, {}),
        ("flask", "no_key", path, good, {"Authorization": None}),
        ("flask", "text_plain", path, good, {"Content-Type": "text/plain"}),
        ("flask", "query", path + "?x=1", good, {}),
    ]
    return cases


def evaluations_cases(cpas: str, users: list[str]) -> list[Case]:
    path = "/access/v1/evaluations"
    subject = {"type": "user", "id": MARIE}
    resource = {"type": "cpas", "id": cpas}
    items = [{"action": {"name": function}, "subject": {"type": "user", "id": user}}
             for user in users for function in (SEARCH, HELP, "help_request.add")]
    goods: dict[str, Any] = {
        "defaults": {"subject": subject, "resource": resource, "evaluations": items},
        "explained": {"resource": resource, "context": {"explain": True}, "evaluations": items},
        "item_context": {"resource": resource, "evaluations": [
            {**items[1], "context": {"explain": True}}, items[0], {**items[2], "context": {"min_policy_version": 0}}]},
        "single_no_evaluations": {**evaluation(ANNELIES, HELP, cpas, explain=True)},
        "single_empty": {**evaluation(MARIE, SEARCH, cpas), "evaluations": []},
        "single_null": {**evaluation(MARIE, SEARCH, cpas), "evaluations": None},
        "null_defaults": {"subject": None, "context": None, "resource": resource,
                          "evaluations": [{"subject": subject, "action": {"name": SEARCH}}]},
        "options_other_keys": {"resource": resource, "options": {"x": 1}, "evaluations": items},
        "limit": {"resource": resource, "evaluations": [items[n % len(items)] for n in range(1000)]},
    }
    for semantic in ("execute_all", "deny_on_first_deny", "permit_on_first_permit"):
        goods[semantic] = {"resource": resource, "options": {"evaluations_semantic": semantic},
                           "evaluations": [items[3], items[0], items[1], items[4]]}
    cases: list[Case] = [("lean", f"good {k}", path, v, {}) for k, v in goods.items()]
    bads: dict[str, Any] = {
        "item_not_object": {"resource": resource, "evaluations": [items[0], 5]},
        "item_null_subject": {"subject": subject, "resource": resource, "evaluations": [{"subject": None,
                                                                                         "action": {"name": SEARCH}}]},
        "item_missing_resource": {"evaluations": items[:2]},
        "item_bad_user": {"resource": resource,
                          "evaluations": [{**items[0], "subject": {"type": "user", "id": "a b"}}]},
        "item_unknown_function": {"subject": subject, "resource": resource,
                                  "evaluations": [{"action": {"name": "no.such"}}]},
        "item_unknown_cpas": {"subject": subject, "evaluations": [
            {"action": {"name": SEARCH}, "resource": {"type": "cpas", "id": UNKNOWN}}]},
        "semantic_unknown": {"resource": resource, "options": {"evaluations_semantic": "first"}, "evaluations": items},
        "too_many": {"resource": resource, "evaluations": [items[0]] * 1001},
        "single_missing": {"subject": subject, "resource": resource},
        "single_unknown_cpas": {**evaluation(MARIE, SEARCH, UNKNOWN), "evaluations": []},
        "evaluations_object": {"resource": resource, "evaluations": {"a": items[0]}},
        "deep_unknown": {"resource": resource, "evaluations": items, "x": json.loads("[" * 40 + "]" * 40)},
        # a default every item replaces is still checked (Flask refuses the whole request)
        "bad_default_resource": {"resource": {"type": "cpas", "id": "0212345678"}, "evaluations": [
            {**items[0], "resource": resource}]},
        "bad_default_subject": {"subject": {"type": "user", "id": "a b"}, "resource": resource, "evaluations": items},
        "bad_default_action": {"action": {"name": "A"}, "resource": resource, "evaluations": items},
    }
    cases += [("flask", k, path, v, {}) for k, v in bads.items()]
    return cases


def test_authzen_same_answers_on_both_paths(lean_app: Any, operator: Any, demo: dict[str, Any], service: Any,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    cpas, users = demo["cpas"], list(demo["users"])[:6]
    cases = evaluation_cases(cpas, users, service.policy(cpas).version) + evaluations_cases(cpas, users)
    replay(lean_app, operator.key, cases, monkeypatch)


def test_non_ascii_and_every_reason(lean_app: Any, operator: Any, demo: dict[str, Any], service: Any,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Inactive and unknown users, missing prerequisites: every explanation both paths write, after a change
    (a new policy version) made with non-ASCII descriptions."""
    cpas = demo["cpas"]
    service.change("test", Admin.create_profile, cpas, description_fr="Accès é ü 日本", description_nl="Tōegang",
                   functions=[HELP])
    users = [MARIE, ANNELIES, LUC, MICHEL, "99999999999"]
    batch = {"requests": [item(cpas, user, function, id=f"{user} ⇒ {function}", explain=True)
                          for user in users for function in (SEARCH, HELP)]}
    evaluations = {"resource": {"type": "cpas", "id": cpas}, "context": {"explain": True}, "evaluations": [
        {"subject": {"type": "user", "id": user}, "action": {"name": function}} for user in users
        for function in (SEARCH, HELP)]}
    replay(lean_app, operator.key, [("lean", "batch", "/enforce/batch", batch, {}),
                                    ("lean", "evaluations", "/access/v1/evaluations", evaluations, {})], monkeypatch)


# -- GET /cpas/<cpas>/users/<user>/functions ----------------------------------------------------------------
def functions_cases(app: Any, key: str, cpas: str, users: list[str]) -> list[Case]:
    def etag(user: str, query: str = "") -> str:
        answer = Client(app, Response).get(f"/cpas/{cpas}/users/{user}/functions{query}",
                                           headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 200
        return str(answer.headers["ETag"])

    dotted = f"{cpas[:4]}.{cpas[4:7]}.{cpas[7:]}"
    cases: list[Case] = []
    for user in [*users, "99999999999", "a.b:c@d-e_f"]:
        for query in ("", "?lang=fr", "?lang=nl", "?lang=de"):
            path = f"/cpas/{cpas}/users/{user}/functions{query}"
            cases.append(("lean", f"200 {user}{query}", path, None, {}))
            tag = etag(user, query)
            cases.append(("lean", f"304 {user}{query}", path, None, {"If-None-Match": tag}))
            cases.append(("lean", f"304 list {user}{query}", path, None, {"If-None-Match": f'"x", {tag}'}))
            cases.append(("lean", f"304 star {user}{query}", path, None, {"If-None-Match": "*"}))
            cases.append(("lean", f"200 stale {user}{query}", path, None, {"If-None-Match": '"0123"'}))
            cases.append(("lean", f"200 weak {user}{query}", path, None, {"If-None-Match": "W/" + tag}))
    marie = f"/cpas/{cpas}/users/{MARIE}/functions"
    cases.append(("lean", "dotted_kbo", f"/cpas/{dotted}/users/{MARIE}/functions", None, {}))
    for label, path in {
        "lang_en": marie + "?lang=en", "lang_empty": marie + "?lang=", "lang_twice": marie + "?lang=fr&lang=nl",
        "min_version": marie + "?min_policy_version=0", "at": marie + "?at=2026-01-01T00:00:00Z",
        "unknown_param": marie + "?x=1", "query_nul": marie + "?lang=%00", "user_too_long": marie.replace(
            MARIE, "1" * 129), "user_space": marie.replace(MARIE, "marie%20leblanc"),
        "user_accent": marie.replace(MARIE, "jos%C3%A9"), "user_newline": marie.replace(MARIE, MARIE + "%0A"),
        "bad_kbo": marie.replace(cpas, "0212345678"), "unknown_cpas": marie.replace(cpas, UNKNOWN),
        "trailing_slash": marie + "/", "double_slash": marie.replace("/users/", "//users/"),
    }.items():
        cases.append(("flask", label, path, None, {}))
    cases.append(("flask", "no_key", marie, None, {"Authorization": None}))
    cases.append(("flask", "bad_key", marie, None, {"Authorization": "Bearer azk_no_pe"}))
    cases.append(("flask", "with_a_body", marie, b"{}", {}))
    return cases


def test_functions_same_answers_on_both_paths(lean_app: Any, operator: Any, demo: dict[str, Any], service: Any,
                                              make_key: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    cpas = demo["cpas"]
    # non-ASCII descriptions, in both languages, on a profile Marie holds
    profile = service.change("test", Admin.create_profile, cpas, description_fr="Accès complet — été 日本 😀",
                             description_nl="Tōegang «vol»", functions=[HELP]).value
    service.change("test", Admin.set_user_profiles, cpas, MARIE, [demo["profiles"]["full"], profile.id]
                   if "full" in demo["profiles"] else [profile.id])
    cases = functions_cases(lean_app, operator.key, cpas, [MARIE, ANNELIES, LUC, MICHEL])
    replay(lean_app, operator.key, cases, monkeypatch, "GET")
    marie = f"/cpas/{cpas}/users/{MARIE}/functions"
    replay(lean_app, make_key("enforce", [cpas]), [("lean", "limited_here", marie, None, {})], monkeypatch, "GET")
    others = {"limited_elsewhere": make_key("enforce", [UNKNOWN]), "no_scope": make_key("users,admin")}
    for label, key in others.items():
        replay(lean_app, key, [("flask", label, marie, None, {})], monkeypatch, "GET")
    replay(lean_app, operator.key, [("flask", "head", marie, None, {})], monkeypatch, "HEAD")


def test_functions_answer_follows_changes(lean_app: Any, operator: Any, demo: dict[str, Any], service: Any,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The ETag kept by the lean path belongs to the policy it was made from: after a change of the user's
    profiles the old ETag gets a 200 with the new answer, on both paths alike."""
    cpas = demo["cpas"]
    path = f"/cpas/{cpas}/users/{LUC}/functions"
    client = Client(lean_app, Response)
    auth = {"Authorization": f"Bearer {operator.key}"}
    before = client.get(path, headers=auth)
    assert client.get(path, headers={**auth, "If-None-Match": before.headers["ETag"]}).status_code == 304
    service.change("test", Admin.set_user_profiles, cpas, LUC, [demo["profiles"]["builtin"]])
    cases: list[Case] = [("lean", "old_etag", path, None, {"If-None-Match": before.headers["ETag"]}),
                         ("lean", "no_etag", path, None, {})]
    replay(lean_app, operator.key, cases, monkeypatch, "GET")
    after = client.get(path, headers={**auth, "If-None-Match": before.headers["ETag"]})
    assert after.status_code == 200 and after.headers["ETag"] != before.headers["ETag"]
    assert after.get_json()["functions"] != before.get_json()["functions"]


def test_decisions_counted_alike(app: Any, operator: Any, demo: dict[str, Any], service: Any) -> None:
    """authz_decisions_total grows by as much on both paths: a batch counts every item, an evaluations request
    cut short by its semantic only the items it answered."""
    cpas = demo["cpas"]
    resource = {"type": "cpas", "id": cpas}
    items = [{"subject": {"type": "user", "id": user}, "action": {"name": SEARCH}} for user in (MARIE, LUC, MARIE)]
    requests = [
        ("/enforce/batch", {"requests": [item(cpas, user, function) for user in (MARIE, LUC, MICHEL, "nobody")
                                         for function in (SEARCH, HELP)]}),
        ("/access/v1/evaluations", {"resource": resource, "evaluations": items,
                                    "options": {"evaluations_semantic": "deny_on_first_deny"}}),
        ("/access/v1/evaluations", {"resource": resource, "evaluations": items[1:],
                                    "options": {"evaluations_semantic": "permit_on_first_permit"}}),
        ("/access/v1/evaluation", {**items[0], "resource": resource}),
        ("/enforce", item(cpas, LUC)),
    ]
    registry = service.metrics.registry

    def counted() -> tuple[float, ...]:
        return tuple(registry.get_sample_value("authz_decisions_total", {"result": result}) or 0.0
                     for result in ("allow", "deny"))

    lean = app.wsgi_app
    for path, body in requests:
        grown = []
        for wsgi in (lean, lean.app):
            before = counted()
            answer = Client(wsgi, Response).post(path, json=body, headers={"Authorization": f"Bearer {operator.key}"})
            assert answer.status_code == 200, answer.get_data()
            grown.append(tuple(after - was for after, was in zip(counted(), before, strict=True)))
        assert grown[0] == grown[1] and sum(grown[0]) > 0, (path, grown)
