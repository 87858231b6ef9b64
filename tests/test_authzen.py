"""The OpenID AuthZEN Authorization API 1.0 routes (authzen.py): every answer is /enforce's answer in
AuthZEN's words, on random requests (SQLite and PostgreSQL) and on the specification's own examples
adapted to our identifiers; answers have the specification's shapes (JSON schemas in tests/authzen/,
see its README); the three evaluation semantics; the searches against /enforce for every user and every
function; paging; scopes, CPAS limits, errors, fail-closed 503 and X-Request-ID.

Most cases share one world per module (the demo CPAS of seed/demo.yaml plus two CPAS built through the
API) and change nothing in it; the random comparison builds its own on each backend.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from authz_service import create_app
from authz_service.cli import init_db, seed_demo
from authz_service.config import load_settings
from authz_service.security import new_api_key
from authz_service.service import Service
from authz_service.store import Store

from .conftest import Api

SCHEMAS = Path(__file__).resolve().parent / "authzen"


def kbo(first_eight: str) -> str:
    return f"{first_eight}{97 - int(first_eight) % 97:02d}"


def dotted(number: str) -> str:
    return f"{number[:4]}.{number[4:7]}.{number[7:]}"


DEMO = "0207196354"  # seed/demo.yaml
OTHER = kbo("01234567")  # built in populate(): Marie holds help_request.list there without dossier.search
THIRD = kbo("03000000")  # built in populate(): three users with dossier.search and help_request.list
UNKNOWN = kbo("09876543")  # valid, never created
BAD_KBO = "0212345678"  # fails the mod-97 check

MARIE = "85073003328"  # demo: "Full"
SOPHIE = "79021412462"  # demo: "Tous les accès"
JAN = "82091103760"  # demo: "Tous les accès", deactivated by populate()
LUC = "75081815365"  # demo: no profile
ANNELIES = "96031220418"  # demo: help requests without dossier.search
MICHEL = "77070619530"  # demo: inactive
NOBODY = "99999999999"  # never logged in anywhere
OTHER_USER = "other.user@ocmw"  # OTHER: dossier.search + help_request.list
OTHER_GONE = "other.gone@ocmw"  # OTHER: had them, deactivated
THIRD_USER = "third:user"  # THIRD
SEARCH = "dossier.search"
HELP = "help_request.list"  # requires dossier.search

ROUTES = ("/access/v1/evaluation", "/access/v1/evaluations", "/access/v1/search/subject",
          "/access/v1/search/resource", "/access/v1/search/action")


# -- the world -----------------------------------------------------------------------------------------------
@dataclass
class World:
    app: Any
    service: Service
    keys: dict[str, str]

    def api(self, who: str | None = "operator") -> Api:
        return Api(self.app.test_client(), self.keys[who] if who else None)


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:500])
    return response.get_json()


def refused(response: Any, status: int, code: str) -> dict[str, Any]:
    """The service's error envelope, never an AuthZEN decision."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:500])
    body = response.get_json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    return body["error"]  # type: ignore[no-any-return]


def populate(app: Any, service: Service, settings: Any) -> World:
    assert str(seed_demo(settings)["cpas_id"]) == DEMO
    service.sync()

    def key(scopes: str, cpas: list[str] | None = None) -> str:
        with service.db.transaction() as session:
            return new_api_key(Store(session), f"authzen {scopes} {cpas}", tuple(scopes.split(",")), cpas)

    world = World(app=app, service=service, keys={
        "operator": key("enforce,users,admin"),
        "enforce": key("enforce"),
        "no_enforce": key("users,admin"),
        "only_demo": key("enforce", [DEMO]),
        "only_other": key("enforce", [OTHER, UNKNOWN]),
    })
    op = world.api()
    for cpas, name in ((OTHER, "Ailleurs"), (THIRD, "Tiers")):
        ok(op.post("/cpas", {"cpas": dotted(cpas), "name_fr": f"CPAS {name}", "name_nl": f"OCMW {name}",
                             "region": "wallonia"}), 201)

    def profile(cpas: str, description: str, functions: list[str]) -> int:
        return int(ok(op.post(f"/cpas/{cpas}/profiles", {"description_fr": description, "functions": functions}),
                      201)["id"])

    def user(cpas: str, who: str, profiles: list[int]) -> None:
        ok(op.put(f"/cpas/{cpas}/users/{who}", {"name": who}), 201)
        ok(op.put(f"/cpas/{cpas}/users/{who}/profiles", {"profiles": profiles}))

    helps_only = profile(OTHER, "Aides sans recherche", [HELP])
    searches = profile(OTHER, "Recherche et aides", [SEARCH, HELP])
    user(OTHER, MARIE, [helps_only])
    user(OTHER, OTHER_USER, [searches])
    user(OTHER, OTHER_GONE, [searches])
    ok(op.post(f"/cpas/{OTHER}/users/{OTHER_GONE}/deactivate"))
    third = profile(THIRD, "Recherche et aides", [SEARCH, HELP])
    for who in (MARIE, OTHER_USER, THIRD_USER):
        user(THIRD, who, [third])
    ok(op.post(f"/cpas/{DEMO}/users/{JAN}/deactivate"))  # held every function
    return world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    path = tmp_path_factory.mktemp("authzen") / "authz.sqlite3"
    # a token the store cannot reach is refused after consistency_wait: short here
    overrides = {"database_url": f"sqlite:///{path}", "poll_interval": 0, "secret_key": "test-secret",
                 "consistency_wait": 0.2}
    settings = load_settings(overrides)
    init_db(settings)
    app = create_app(overrides, start_polling=False)
    app.config["TESTING"] = True
    try:
        yield populate(app, app.extensions["authz"], settings)
    finally:
        app.extensions["authz"].close()


# -- JSON schemas (tests/authzen/) ----------------------------------------------------------------------------
@cache
def registry() -> Registry:
    documents = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(SCHEMAS.glob("*.schema.json"))]
    return Registry().with_resources((doc["$id"], Resource.from_contents(doc)) for doc in documents)


@cache
def validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, registry=registry())


def conforms(name: str, document: Any) -> Any:
    validator(name).validate(document)
    return document


SCHEMA_OF = {  # route -> (request schema, answer schema)
    "/access/v1/evaluation": ("evaluation-request", "evaluation-response"),
    "/access/v1/evaluations": ("evaluations-request", "evaluations-response"),
    "/access/v1/search/subject": ("search-subject-request", "search-subject-response"),
    "/access/v1/search/resource": ("search-resource-request", "search-resource-response"),
    "/access/v1/search/action": ("search-action-request", "search-action-response"),
}


def authzen(api: Api, route: str, body: Any, status: int = 200, *, request_id: str | None = None) -> Any:
    """POST an AuthZEN request; a 200 answer is checked against the specification's shapes, and an
    X-Request-ID comes back whatever the status."""
    headers = {"X-Request-ID": request_id} if request_id else None
    response = api.post(route, body, headers=headers)
    if request_id:
        assert response.headers.get("X-Request-ID") == request_id, route
    answer = ok(response, status)
    if status == 200:
        assert response.mimetype == "application/json"
        conforms(SCHEMA_OF[route][1], answer)
    return answer


def evaluation(user: Any, function: Any, cpas: Any, **context: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"subject": {"type": "user", "id": user}, "action": {"name": function},
                            "resource": {"type": "cpas", "id": cpas}}
    if context:
        body["context"] = context
    return body


def enforce_as_authzen(answer: dict[str, Any]) -> dict[str, Any]:
    """What /access/v1/evaluation must say when /enforce said ``answer`` (a 200)."""
    return {"decision": answer["allowed"],
            "context": {"policy_version": answer["policy_version"], **answer.get("explanation", {})}}


def search_all(api: Api, route: str, body: dict[str, Any], limit: int | None = None) -> list[dict[str, Any]]:
    """Every result of a search, page after page."""
    results: list[dict[str, Any]] = []
    page: dict[str, Any] = {} if limit is None else {"limit": limit}
    for _ in range(10_000):
        answer = authzen(api, route, {**body, "page": page})
        assert answer["page"]["count"] == len(answer["results"])
        results += answer["results"]
        if not answer["page"]["next_token"]:
            assert answer["page"]["total"] == len(results)
            return results
        page = {**page, "token": answer["page"]["next_token"]}
    raise AssertionError("the pages never end")


@cache
def catalog_codes() -> tuple[str, ...]:
    import yaml

    data = yaml.safe_load((Path(__file__).resolve().parent.parent / "policies" / "catalog.yaml").read_text("utf-8"))
    return tuple(f["code"] for f in data["functions"])


# -- /enforce and AuthZEN agree --------------------------------------------------------------------------------
def random_request(rng: random.Random, versions: dict[str, int]) -> dict[str, Any]:
    cpas = rng.choice([DEMO, DEMO, DEMO, OTHER, THIRD, dotted(DEMO), UNKNOWN, BAD_KBO])
    user = rng.choice([MARIE, SOPHIE, JAN, LUC, ANNELIES, MICHEL, NOBODY, OTHER_USER, OTHER_GONE, THIRD_USER,
                       "not a user id"])
    function = rng.choice([*rng.sample(catalog_codes(), 3), SEARCH, HELP, "no.such", "Not-A-Code"])
    req: dict[str, Any] = {"cpas": cpas, "user": user, "function": function}
    if rng.random() < 0.5:
        req["explain"] = True
    if rng.random() < 0.2:
        req["min_policy_version"] = rng.choice([0, 1, versions.get(cpas, 1)])
    return req


def as_evaluation(req: dict[str, Any]) -> dict[str, Any]:
    context = {k: req[k] for k in ("explain", "min_policy_version") if k in req}
    return evaluation(req["user"], req["function"], req["cpas"], **context)


def same_item(enforced: dict[str, Any], evaluated: dict[str, Any]) -> None:
    if "error" in enforced:
        assert evaluated["decision"] is False and set(evaluated) == {"decision", "context"}
        error = evaluated["context"]["error"]
        assert error["code"] == enforced["error"]["code"]
        if error["code"] != "invalid_request":  # validation messages name AuthZEN's fields, not ours
            assert evaluated["context"] == {"error": enforced["error"]}
    else:
        assert evaluated == enforce_as_authzen({k: v for k, v in enforced.items() if k != "id"})


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
def test_every_answer_is_the_answer_of_enforce(app: Any, service: Service, settings: Any, backend: str) -> None:
    world = populate(app, service, settings)
    rng = random.Random(20261201)
    versions = {c: service.policy(c).version for c in (DEMO, OTHER, THIRD)}
    for who in ("operator", "only_demo"):
        api = world.api(who)
        requests = [random_request(rng, versions) for _ in range(200)]
        seen: set[Any] = set()
        for req in requests:  # one at a time
            enforced = api.post("/enforce", req)
            evaluated = authzen(api, "/access/v1/evaluation", as_evaluation(req), enforced.status_code)
            seen.add(enforced.status_code if enforced.status_code != 200 else enforced.get_json()["allowed"])
            if enforced.status_code == 200:
                assert evaluated == enforce_as_authzen(enforced.get_json()), req
            else:
                assert evaluated["error"]["code"] == enforced.get_json()["error"]["code"], req
                if evaluated["error"]["code"] != "invalid_request":
                    assert evaluated == enforced.get_json(), req
        assert {True, False, 400, 404 if who == "operator" else 403} <= seen, seen
        # the same requests in one batch each way; the most frequent valid user as the top-level default
        batch = ok(api.post("/enforce/batch", {"requests": [{"id": i, **r} for i, r in enumerate(requests)]}))
        default = max((MARIE, SOPHIE, LUC), key=lambda u: sum(r["user"] == u for r in requests))
        items = [as_evaluation(r) for r in requests]
        for item, req in zip(items, requests, strict=True):
            if req["user"] == default:
                del item["subject"]
        every = authzen(api, "/access/v1/evaluations",
                        {"subject": {"type": "user", "id": default}, "evaluations": items})["evaluations"]
        assert len(every) == len(requests)
        for enforced_item, evaluated_item in zip(batch["results"], every, strict=True):
            same_item(enforced_item, evaluated_item)
        # short-circuits: the answers up to the first deny / the first permit, as execute_all gave them
        for semantic, stop in (("deny_on_first_deny", False), ("permit_on_first_permit", True)):
            cut = next((i for i, e in enumerate(every) if e["decision"] is stop), len(every) - 1)
            short = authzen(api, "/access/v1/evaluations", {"subject": {"type": "user", "id": default},
                                                           "evaluations": items,
                                                           "options": {"evaluations_semantic": semantic}})
            assert short == {"evaluations": every[:cut + 1]}


def test_searches_agree_with_enforce_for_every_user_and_function(world: World) -> None:
    api = world.api()
    codes = catalog_codes()
    for cpas in (DEMO, OTHER, THIRD):
        users = [u["user"] for status in ("active", "inactive")
                 for u in ok(api.get(f"/cpas/{cpas}/users?status={status}&per_page=500"))["items"]]
        users += [NOBODY, OTHER_USER] if cpas == DEMO else [NOBODY]
        pairs = [(u, f) for u in users for f in codes]
        allowed: set[tuple[str, str]] = set()
        for start in range(0, len(pairs), 1000):
            chunk = pairs[start:start + 1000]
            results = ok(api.post("/enforce/batch", {"requests": [
                {"cpas": cpas, "user": u, "function": f} for u, f in chunk]}))["results"]
            allowed |= {pair for pair, r in zip(chunk, results, strict=True) if r["allowed"]}
        assert allowed and any((u, f) not in allowed for u in users for f in codes)
        version = world.service.policy(cpas).version
        for function in codes:  # subject search = the users /enforce allows, inactive ones never
            body = {"subject": {"type": "user"}, "action": {"name": function}, "resource": {"type": "cpas", "id": cpas}}
            answer = authzen(api, "/access/v1/search/subject", body)
            count = len(answer["results"])
            assert answer["page"] == {"next_token": "", "count": count, "total": count}
            assert answer["context"] == {"policy_version": version}
            found = [r["id"] for r in answer["results"]]
            assert found == sorted(u for u in users if (u, function) in allowed), (cpas, function)
        for user in users:  # action search = the functions /enforce allows = the functions route
            body = {"subject": {"type": "user", "id": user}, "resource": {"type": "cpas", "id": cpas}}
            found = [r["name"] for r in search_all(api, "/access/v1/search/action", body, limit=100)]
            assert found == sorted(f for f in codes if (user, f) in allowed), (cpas, user)
            assert found == ok(api.get(f"/cpas/{cpas}/users/{user}/functions"))["functions"], (cpas, user)
    # inactive users, prerequisites: spelled out once
    helpers = authzen(api, "/access/v1/search/subject", {"subject": {"type": "user"}, "action": {"name": HELP},
                                                          "resource": {"type": "cpas", "id": OTHER}})
    assert helpers["results"] == [{"type": "user", "id": OTHER_USER}]  # not Marie (prerequisite), not the gone


def test_resource_search_agrees_with_enforce(world: World) -> None:
    rng = random.Random(7)
    for who, reachable in (("operator", (DEMO, OTHER, THIRD)), ("only_other", (OTHER,))):
        api = world.api(who)
        for user in (MARIE, SOPHIE, JAN, OTHER_USER, OTHER_GONE, THIRD_USER, NOBODY):
            for function in (SEARCH, HELP, *rng.sample(catalog_codes(), 8)):
                body = {"subject": {"type": "user", "id": user}, "action": {"name": function},
                        "resource": {"type": "cpas"}}
                answer = authzen(api, "/access/v1/search/resource", body)
                expected = [c for c in reachable if ok(world.api().post(
                    "/enforce", {"cpas": c, "user": user, "function": function}))["allowed"]]
                assert [r["id"] for r in answer["results"]] == sorted(expected), (who, user, function)
                assert answer["context"] == {"policy_versions": {c: world.service.policy(c).version
                                                                 for c in expected}}


# -- the specification's examples, with our identifiers ---------------------------------------------------------
def test_spec_example_access_evaluation(world: World) -> None:
    """"Example Request" of the Access Evaluation API (and its HTTPS binding, with X-Request-ID)."""
    body = {
        "subject": {"type": "user", "id": MARIE},
        "resource": {"type": "cpas", "id": DEMO},
        "action": {"name": SEARCH, "properties": {"method": "GET"}},
        "context": {"time": "1985-10-26T01:22-07:00"},
    }
    conforms("evaluation-request", body)
    answer = authzen(world.api(), "/access/v1/evaluation", body,
                     request_id="bfe9eb29-ab87-4ca3-be83-a1d5d8305716")
    assert answer == {"decision": True, "context": {"policy_version": world.service.policy(DEMO).version}}
    # a deny is a 200, never an error; the request id comes back as sent, whatever its characters
    deny = authzen(world.api(), "/access/v1/evaluation", evaluation(LUC, SEARCH, DEMO),
                   request_id='a "request" id, with spaces')
    assert deny["decision"] is False


def test_spec_examples_access_evaluations(world: World) -> None:
    """The three requests of "The Access Evaluations API Request" (no defaults; subject and context as
    defaults; a default action overridden by the third item) and the "Errors" answer (an item whose
    resource is not found)."""
    api = world.api()
    ctx = {"time": "2024-05-31T15:22-07:00"}
    resources = [DEMO, OTHER, UNKNOWN]  # the third: "Resource not found"
    no_defaults = {"evaluations": [
        {"subject": {"type": "user", "id": MARIE}, "action": {"name": HELP},
         "resource": {"type": "cpas", "id": c}, "context": ctx} for c in resources]}
    defaults = {"subject": {"type": "user", "id": MARIE}, "context": ctx, "evaluations": [
        {"action": {"name": HELP}, "resource": {"type": "cpas", "id": c}} for c in resources]}
    override = {"subject": {"type": "user", "id": MARIE}, "context": ctx, "action": {"name": HELP},
                "evaluations": [{"resource": {"type": "cpas", "id": DEMO}}, {"resource": {"type": "cpas", "id": OTHER}},
                                {"action": {"name": SEARCH}, "resource": {"type": "cpas", "id": UNKNOWN}}]}
    versions = {c: world.service.policy(c).version for c in (DEMO, OTHER)}
    for body in (no_defaults, defaults, override):
        conforms("evaluations-request", body)
        answer = authzen(api, "/access/v1/evaluations", body, request_id="bfe9eb29")
        first, second, third = answer["evaluations"]
        assert first == {"decision": True, "context": {"policy_version": versions[DEMO]}}
        assert second == {"decision": False, "context": {"policy_version": versions[OTHER]}}  # prerequisite
        assert third["decision"] is False and third["context"]["error"]["code"] == "unknown_cpas"
        assert set(answer) == {"evaluations"}  # no top-level decision (RECOMMENDED)


def test_spec_example_three_semantics(world: World) -> None:
    """"Evaluate read action for three documents using all three semantics": Marie may list help
    requests in DEMO and THIRD, not in OTHER (no dossier.search there)."""
    api = world.api()

    def run(semantic: str | None, resources: list[str]) -> list[bool]:
        body: dict[str, Any] = {"subject": {"type": "user", "id": MARIE}, "action": {"name": HELP},
                                "evaluations": [{"resource": {"type": "cpas", "id": c}} for c in resources]}
        if semantic:
            body["options"] = {"evaluations_semantic": semantic}
        conforms("evaluations-request", body)
        return [e["decision"] for e in authzen(api, "/access/v1/evaluations", body)["evaluations"]]

    documents = [DEMO, OTHER, THIRD]
    assert run("execute_all", documents) == run(None, documents) == [True, False, True]
    assert run("deny_on_first_deny", documents) == [True, False]
    assert run("permit_on_first_permit", documents) == [True]
    # no stop: every item answered
    assert run("deny_on_first_deny", [DEMO, THIRD, DEMO]) == [True, True, True]
    assert run("permit_on_first_permit", [OTHER, UNKNOWN, OTHER]) == [False, False, False]
    # an item that cannot be decided is a deny: it stops deny_on_first_deny, not permit_on_first_permit
    assert run("deny_on_first_deny", [DEMO, UNKNOWN, THIRD]) == [True, False]
    assert run("permit_on_first_permit", [UNKNOWN, OTHER, THIRD, DEMO]) == [False, False, True]
    refused(api.post("/access/v1/evaluations", {"subject": {"type": "user", "id": MARIE}, "action": {"name": HELP},
                                                "resource": {"type": "cpas", "id": DEMO},
                                                "evaluations": [{}], "options": {"evaluations_semantic": "any"}}),
            400, "invalid_request")


def test_spec_examples_searches_and_pagination(world: World) -> None:
    """The Subject, Resource and Action Search examples, and the pagination example (a page limit of two
    for three results: the second request sends the token and the first request's other fields)."""
    api = world.api()
    subject = {"subject": {"type": "user"}, "action": {"name": SEARCH}, "resource": {"type": "cpas", "id": THIRD},
               "context": {"time": "2024-10-26T01:22-07:00"}}
    conforms("search-subject-request", subject)
    assert [r["id"] for r in authzen(api, "/access/v1/search/subject", subject)["results"]] == sorted(
        [MARIE, OTHER_USER, THIRD_USER])
    first = authzen(api, "/access/v1/search/subject", {**subject, "page": {"limit": 2}}, request_id="page-1")
    assert list(first) == ["page", "context", "results"]  # `page` first, as recommended
    assert first["page"]["count"] == 2 and first["page"]["total"] == 3 and first["page"]["next_token"]
    assert first["results"] == [{"type": "user", "id": u} for u in sorted([MARIE, OTHER_USER, THIRD_USER])[:2]]
    second_request = {**subject, "page": {"limit": 2, "token": first["page"]["next_token"]}}
    conforms("search-subject-request", second_request)
    second = authzen(api, "/access/v1/search/subject", second_request)
    assert second["page"] == {"next_token": "", "count": 1, "total": 3}
    assert second["results"] == [{"type": "user", "id": sorted([MARIE, OTHER_USER, THIRD_USER])[2]}]

    resource = {"subject": {"type": "user", "id": MARIE}, "action": {"name": HELP}, "resource": {"type": "cpas"}}
    conforms("search-resource-request", resource)
    assert authzen(api, "/access/v1/search/resource", resource)["results"] == [
        {"type": "cpas", "id": c} for c in sorted([DEMO, THIRD])]

    action = {"subject": {"type": "user", "id": OTHER_USER}, "resource": {"type": "cpas", "id": OTHER},
              "context": {"time": "2024-10-26T01:22-07:00"}}
    conforms("search-action-request", action)
    assert authzen(api, "/access/v1/search/action", action)["results"] == [{"name": SEARCH}, {"name": HELP}]


def test_spec_example_metadata_and_openapi(world: World) -> None:
    """The metadata document: open (no key), every endpoint as an absolute URL under the identifier."""
    response = world.app.test_client().get("/.well-known/authzen-configuration", headers={"X-Request-ID": "m"})
    document = ok(response)
    assert response.mimetype == "application/json" and response.headers["X-Request-ID"] == "m"
    conforms("metadata", document)
    base = "http://localhost"
    assert document == {
        "policy_decision_point": base,
        "access_evaluation_endpoint": f"{base}/access/v1/evaluation",
        "access_evaluations_endpoint": f"{base}/access/v1/evaluations",
        "search_subject_endpoint": f"{base}/access/v1/search/subject",
        "search_resource_endpoint": f"{base}/access/v1/search/resource",
        "search_action_endpoint": f"{base}/access/v1/search/action",
    }
    behind_proxy = ok(world.app.test_client().get("/.well-known/authzen-configuration",
                                                  base_url="https://pdp.example.com"))
    assert behind_proxy["policy_decision_point"] == "https://pdp.example.com"
    assert behind_proxy["search_action_endpoint"] == "https://pdp.example.com/access/v1/search/action"
    spec = ok(world.app.test_client().get("/openapi.json"))
    operations = {op["operationId"]: path for path, item in spec["paths"].items() for op in item.values()
                  if isinstance(op, dict) and "operationId" in op}
    assert {name: operations.get(name) for name in (
        "authzenEvaluation", "authzenEvaluations", "authzenSearchSubject", "authzenSearchResource",
        "authzenSearchAction", "authzenMetadata")} == {
        "authzenEvaluation": "/access/v1/evaluation", "authzenEvaluations": "/access/v1/evaluations",
        "authzenSearchSubject": "/access/v1/search/subject", "authzenSearchResource": "/access/v1/search/resource",
        "authzenSearchAction": "/access/v1/search/action", "authzenMetadata": "/.well-known/authzen-configuration"}
    assert spec["paths"]["/access/v1/evaluation"]["post"]["security"] == [{"api_key": []}]


# -- evaluations: defaults, items, limits ----------------------------------------------------------------------
def test_evaluations_defaults_and_item_errors(world: World) -> None:
    api = world.api("only_demo")
    version = world.service.policy(DEMO).version
    body = {
        "subject": {"type": "user", "id": MARIE},
        "action": {"name": SEARCH},
        "resource": {"type": "cpas", "id": DEMO, "properties": {"ignored": True}},
        "context": {"explain": True},
        "evaluations": [
            {},  # everything from the defaults
            {"subject": {"type": "user", "id": ANNELIES}, "action": {"name": HELP}},
            {"context": {}},  # replaces the default context whole: no explanation
            {"resource": {"type": "cpas", "id": OTHER}},  # outside the key's CPAS
            {"action": {"name": "no.such"}},
            {"resource": {"type": "cpas", "id": UNKNOWN}},  # outside the key's CPAS too, known or not
            {"subject": {"type": "group", "id": "x"}},
            {"subject": None},
            "not an object",
            {"context": {"explain": "yes"}},
            {"unknown_field": 1, "action": {"name": SEARCH, "extra": 2}},  # unknown fields are ignored
        ],
    }
    answers = authzen(api, "/access/v1/evaluations", body, request_id="items")["evaluations"]
    enforced = ok(api.post("/enforce", {"cpas": DEMO, "user": MARIE, "function": SEARCH, "explain": True}))
    granted = {"policy_version": version, **enforced["explanation"]}
    assert granted["reason"] == "granted" and granted["granted_by"]
    assert answers[0] == {"decision": True, "context": granted}
    assert answers[1]["decision"] is False and answers[1]["context"]["reason"] == "missing_prerequisite"
    assert answers[1]["context"]["missing_prerequisites"] == [SEARCH]
    assert answers[2] == {"decision": True, "context": {"policy_version": version}}
    codes = [a["context"].get("error", {}).get("code") for a in answers[3:]]
    assert codes == ["forbidden", "unknown_function", "forbidden", "invalid_request", "invalid_request",
                     "invalid_request", "invalid_request", None]
    assert all(a["decision"] is False for a in answers[3:10]) and answers[10]["decision"] is True
    assert answers[6]["context"]["error"]["details"][0]["loc"] == ["subject", "type"]
    # without evaluations (or with none): one evaluation, answered as /access/v1/evaluation does
    single = {k: v for k, v in body.items() if k != "evaluations"}
    expected = authzen(api, "/access/v1/evaluation", single)
    assert authzen(api, "/access/v1/evaluations", single) == expected
    assert authzen(api, "/access/v1/evaluations", {**single, "evaluations": []}) == expected
    assert expected == {"decision": True, "context": granted}
    # then what is missing is a 400, as on /access/v1/evaluation
    error = refused(api.post("/access/v1/evaluations", {"action": {"name": SEARCH},
                                                        "resource": {"type": "cpas", "id": DEMO}}),
                    400, "invalid_request")
    assert error["message"] == "subject: Field required"
    # a malformed default is the whole request's error
    refused(api.post("/access/v1/evaluations", {**body, "resource": {"type": "cpas", "id": BAD_KBO}}),
            400, "invalid_request")


def test_evaluations_batch_limit(world: World) -> None:
    api = world.api()
    limit = world.service.settings.batch_limit
    base = {"subject": {"type": "user", "id": MARIE}, "action": {"name": SEARCH},
            "resource": {"type": "cpas", "id": DEMO}}
    answers = authzen(api, "/access/v1/evaluations", {**base, "evaluations": [{}] * limit})["evaluations"]
    assert len(answers) == limit and all(a["decision"] for a in answers)
    response = api.post("/access/v1/evaluations", {**base, "evaluations": [{}] * (limit + 1)},
                        headers={"X-Request-ID": "too-many"})
    refused(response, 413, "payload_too_large")
    assert response.headers["X-Request-ID"] == "too-many"


def test_evaluations_one_snapshot_and_tokens(world: World) -> None:
    """A token above what the store has: 503 for those items only, never an older decision."""
    api = world.api()
    version = world.service.policy(DEMO).version
    answers = authzen(api, "/access/v1/evaluations", {
        "subject": {"type": "user", "id": MARIE}, "action": {"name": SEARCH},
        "evaluations": [{"resource": {"type": "cpas", "id": DEMO}},
                        {"resource": {"type": "cpas", "id": DEMO}, "context": {"min_policy_version": version}},
                        {"resource": {"type": "cpas", "id": DEMO}, "context": {"min_policy_version": version + 50}},
                        {"resource": {"type": "cpas", "id": THIRD}}]})["evaluations"]
    assert [a["decision"] for a in answers] == [True, True, False, True]
    assert answers[2]["context"]["error"]["code"] == "unavailable"
    assert answers[2]["context"]["error"]["details"] == {"policy_version": version, "min_policy_version": version + 50}
    refused(api.post("/access/v1/evaluation", evaluation(MARIE, SEARCH, DEMO, min_policy_version=version + 50)),
            503, "unavailable")


# -- searches --------------------------------------------------------------------------------------------------
def test_search_paging(world: World) -> None:
    api = world.api()
    body = {"subject": {"type": "user"}, "action": {"name": SEARCH}, "resource": {"type": "cpas", "id": DEMO}}
    everyone = authzen(api, "/access/v1/search/subject", body)["results"]
    assert len(everyone) >= 6
    for limit in (1, 2, 5, len(everyone), 1000):
        assert search_all(api, "/access/v1/search/subject", body, limit=limit) == everyone
    first = authzen(api, "/access/v1/search/subject", {**body, "page": {"limit": 2}})
    token = first["page"]["next_token"]
    # another request with the token, or a token of nobody: 400
    for changed in ({**body, "page": {"limit": 3, "token": token}},
                    {**body, "action": {"name": HELP}, "page": {"limit": 2, "token": token}},
                    {**body, "context": {"min_policy_version": 1}, "page": {"limit": 2, "token": token}},
                    {**body, "page": {"limit": 2, "token": "bm90IGEgdG9rZW4"}},
                    {**body, "page": {"limit": 2, "token": "%%%"}}):
        refused(api.post("/access/v1/search/subject", changed), 400, "invalid_request")
    # the same token twice: the same page
    again = {**body, "page": {"limit": 2, "token": token}}
    assert authzen(api, "/access/v1/search/subject", again) == authzen(api, "/access/v1/search/subject", again)
    # limit 0: no result, the place kept; an empty token is no token
    none = authzen(api, "/access/v1/search/subject", {**body, "page": {"limit": 0}})
    assert none["results"] == [] and none["page"]["count"] == 0 and none["page"]["total"] == len(everyone)
    token = none["page"]["next_token"]
    after = authzen(api, "/access/v1/search/subject", {**body, "page": {"limit": 0, "token": token}})
    assert after == none
    assert authzen(api, "/access/v1/search/subject", {**body, "page": {"token": ""}})["results"] == everyone
    refused(api.post("/access/v1/search/subject", {**body, "page": {"limit": -1}}), 400, "invalid_request")
    refused(api.post("/access/v1/search/subject", {**body, "page": {"limit": "2"}}), 400, "invalid_request")


def test_search_unknowns_find_nothing(world: World) -> None:
    """Unknown entity ids and types: an empty result, not an error (the certification scenario's "Empty
    results"), with why in the context; the searched entity's id is ignored."""
    api = world.api()
    subject_search = {"subject": {"type": "user"}, "action": {"name": SEARCH},
                      "resource": {"type": "cpas", "id": DEMO}}
    full = authzen(api, "/access/v1/search/subject", subject_search)
    with_id = {**subject_search, "subject": {"type": "user", "id": MARIE}}
    assert authzen(api, "/access/v1/search/subject", with_id) == full
    cases = [
        ("/access/v1/search/subject", {**subject_search, "subject": {"type": "spaceship"}}, "unknown_type"),
        ("/access/v1/search/subject", {**subject_search, "resource": {"type": "record", "id": "record-1"}},
         "unknown_type"),
        ("/access/v1/search/subject", {**subject_search, "action": {"name": "no.such"}}, "unknown_function"),
        ("/access/v1/search/subject", {**subject_search, "resource": {"type": "cpas", "id": UNKNOWN}}, "unknown_cpas"),
        ("/access/v1/search/action", {"subject": {"type": "user", "id": "nonexistent-user"},
                                      "resource": {"type": "cpas", "id": DEMO}}, None),
        ("/access/v1/search/action", {"subject": {"type": "user", "id": MARIE},
                                      "resource": {"type": "cpas", "id": UNKNOWN}}, "unknown_cpas"),
        ("/access/v1/search/action", {"subject": {"type": "robot", "id": MARIE},
                                      "resource": {"type": "cpas", "id": DEMO}}, "unknown_type"),
        ("/access/v1/search/resource", {"subject": {"type": "user", "id": NOBODY}, "action": {"name": SEARCH},
                                        "resource": {"type": "cpas"}}, None),
        ("/access/v1/search/resource", {"subject": {"type": "user", "id": MARIE}, "action": {"name": "no.such"},
                                        "resource": {"type": "cpas"}}, "unknown_function"),
        ("/access/v1/search/resource", {"subject": {"type": "user", "id": MARIE}, "action": {"name": SEARCH},
                                        "resource": {"type": "record"}}, "unknown_type"),
    ]
    for route, body, reason in cases:
        answer = authzen(api, route, body)
        assert answer["results"] == [] and answer["page"] == {"next_token": "", "count": 0, "total": 0}, body
        assert answer["context"].get("reason") == reason, body
    # the resource search's id is ignored too
    resource_search = {"subject": {"type": "user", "id": MARIE}, "action": {"name": SEARCH},
                       "resource": {"type": "cpas"}}
    assert authzen(api, "/access/v1/search/resource", {**resource_search, "resource": {"type": "cpas", "id": 5}}) \
        == authzen(api, "/access/v1/search/resource", resource_search)


def test_search_tokens(world: World) -> None:
    api = world.api()
    version = world.service.policy(DEMO).version
    body = {"subject": {"type": "user", "id": MARIE}, "resource": {"type": "cpas", "id": DEMO}}
    assert authzen(api, "/access/v1/search/action", {**body, "context": {"min_policy_version": version}})["results"]
    refused(api.post("/access/v1/search/action", {**body, "context": {"min_policy_version": version + 50}}),
            503, "unavailable")
    resource = {"subject": {"type": "user", "id": MARIE}, "action": {"name": SEARCH}, "resource": {"type": "cpas"}}
    assert authzen(api, "/access/v1/search/resource",
                   {**resource, "context": {"min_policy_versions": {dotted(DEMO): version}}})["results"]
    refused(api.post("/access/v1/search/resource", {**resource, "context": {"min_policy_versions": {
        DEMO: version + 50}}}), 503, "unavailable")
    error = refused(api.post("/access/v1/search/resource", {**resource, "context": {"min_policy_version": 1}}),
                    400, "invalid_request")
    assert "min_policy_versions" in error["message"]
    # a limited key may not name another CPAS, even in a token
    refused(world.api("only_demo").post("/access/v1/search/resource", {
        **resource, "context": {"min_policy_versions": {OTHER: 1}}}), 403, "forbidden")


# -- credentials, CPAS limits, errors --------------------------------------------------------------------------
def bodies() -> dict[str, dict[str, Any]]:
    return {
        "/access/v1/evaluation": evaluation(MARIE, SEARCH, DEMO),
        "/access/v1/evaluations": {"evaluations": [evaluation(MARIE, SEARCH, DEMO)]},
        "/access/v1/search/subject": {"subject": {"type": "user"}, "action": {"name": SEARCH},
                                      "resource": {"type": "cpas", "id": DEMO}},
        "/access/v1/search/resource": {"subject": {"type": "user", "id": MARIE}, "action": {"name": SEARCH},
                                       "resource": {"type": "cpas"}},
        "/access/v1/search/action": {"subject": {"type": "user", "id": MARIE},
                                     "resource": {"type": "cpas", "id": DEMO}},
    }


def test_keys_scopes_and_cpas_limits(world: World) -> None:
    for route, body in bodies().items():
        for who, status, code in ((None, 401, "unauthenticated"), ("no_enforce", 403, "forbidden")):
            response = world.api(who).post(route, body, headers={"X-Request-ID": f"{who}-{route}"})
            refused(response, status, code)
            assert response.headers["X-Request-ID"] == f"{who}-{route}"
            if status == 401:
                assert response.headers["WWW-Authenticate"] == 'Bearer realm="authz-service"'
        # even a body that is not JSON: the credential first
        refused(world.api(None).post(route, data="{", headers={"Content-Type": "application/json"}),
                401, "unauthenticated")
        authzen(world.api("enforce"), route, body)  # the enforce scope is enough
        authzen(world.api("only_demo"), route, body)
    limited = world.api("only_other")
    refused(limited.post("/access/v1/evaluation", evaluation(MARIE, SEARCH, DEMO)), 403, "forbidden")
    refused(limited.post("/access/v1/evaluation", evaluation(MARIE, SEARCH, UNKNOWN)), 404, "unknown_cpas")
    refused(limited.post("/access/v1/search/subject", bodies()["/access/v1/search/subject"]), 403, "forbidden")
    refused(limited.post("/access/v1/search/action", bodies()["/access/v1/search/action"]), 403, "forbidden")
    assert authzen(limited, "/access/v1/search/resource", {
        "subject": {"type": "user", "id": OTHER_USER}, "action": {"name": SEARCH}, "resource": {"type": "cpas"},
    })["results"] == [{"type": "cpas", "id": OTHER}]  # THIRD would be found with every CPAS
    # the admin UI's session is never a credential here
    anonymous = world.app.test_client().post("/access/v1/evaluation", json=evaluation(MARIE, SEARCH, DEMO))
    assert anonymous.status_code == 401


def bad_evaluations(good: dict[str, Any], cpas: str) -> list[Any]:
    """Evaluation bodies that are 400 invalid_request, made from a good one of ``cpas`` (also replayed through
    the lean path by tests/test_lean_routes.py)."""
    return [
        {k: v for k, v in good.items() if k != "subject"},
        {k: v for k, v in good.items() if k != "action"},
        {k: v for k, v in good.items() if k != "resource"},
        {**good, "subject": {"id": MARIE}},
        {**good, "subject": {"type": "user"}},
        {**good, "action": {}},
        {**good, "resource": {"id": cpas}},
        {**good, "resource": {"type": "cpas"}},
        {**good, "subject": MARIE},
        {**good, "action": {"name": 123}},
        {**good, "subject": {"type": "group", "id": "g"}},
        {**good, "resource": {"type": "cpas", "id": BAD_KBO}},
        {**good, "subject": {"type": "user", "id": "a b"}},
        {**good, "action": {"name": "Dossier.Search"}},
        {**good, "context": {"explain": "yes"}},
        {**good, "context": {"min_policy_version": "3"}},
        {**good, "context": None},
        [good],
        "text",
    ]


def test_bad_requests_are_400_and_unknown_fields_are_ignored(world: World) -> None:
    """The certification scenario's "Error Handling" cases, with our identifiers; a request that breaks
    our identifier rules is a 400 too (as on /enforce)."""
    api = world.api()
    good = evaluation(MARIE, SEARCH, DEMO)
    assert authzen(api, "/access/v1/evaluation", {**good, "foo": "bar", "futureField": {"nested": True}})["decision"]
    assert authzen(api, "/access/v1/evaluation", {
        **good, "subject": {"type": "user", "id": MARIE, "properties": {"department": "Sales"}},
        "context": {"time": "2025-06-27T18:03-07:00", "ip": "192.168.1.1"}})["decision"]
    for body in bad_evaluations(good, DEMO):
        response = api.post("/access/v1/evaluation", body, headers={"X-Request-ID": "bad"})
        refused(response, 400, "invalid_request")
        assert response.headers["X-Request-ID"] == "bad"
    for route in ROUTES:
        for data, content_type in (("{", "application/json"), ("", "application/json"),
                                   (json.dumps(bodies()[route]), "text/plain")):
            refused(api.post(route, data=data, headers={"Content-Type": content_type}), 400, "invalid_request")
    refused(api.post("/access/v1/evaluation", evaluation(MARIE, "no.such", DEMO)), 400, "unknown_function")
    searches = [
        ("/access/v1/search/subject", {"subject": {"type": "user"}, "resource": {"type": "cpas", "id": DEMO}}),
        ("/access/v1/search/subject", {"subject": {"type": "user"}, "action": {"name": SEARCH},
                                       "resource": {"type": "cpas"}}),
        ("/access/v1/search/resource", {"action": {"name": SEARCH}, "resource": {"type": "cpas"}}),
        ("/access/v1/search/resource", {"subject": {"type": "user"}, "action": {"name": SEARCH},
                                        "resource": {"type": "cpas"}}),
        ("/access/v1/search/action", {"subject": {"type": "user", "id": MARIE}}),
        ("/access/v1/search/action", {"subject": {"type": "user"}, "resource": {"type": "cpas", "id": DEMO}}),
        ("/access/v1/search/action", {"subject": {"type": "user", "id": MARIE},
                                      "resource": {"type": "cpas", "id": BAD_KBO}}),
        ("/access/v1/search/action", {"subject": {"type": "user", "id": "a b"},
                                      "resource": {"type": "cpas", "id": DEMO}}),
    ]
    for route, body in searches:
        refused(api.post(route, body), 400, "invalid_request")
    response = api.get("/access/v1/evaluation", headers={"X-Request-ID": "get"})
    refused(response, 405, "method_not_allowed")
    assert response.headers["X-Request-ID"] == "get"


def test_fail_closed_when_the_policy_is_stale(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    service = world.service
    api = world.api()
    authzen(api, "/access/v1/evaluation", evaluation(MARIE, SEARCH, DEMO))  # the key is cached
    # no poller and no notifications here, so the engine never calls itself stale: as if polling were on
    monkeypatch.setattr(service.engine, "max_staleness", service.settings.max_staleness)
    ahead = service.settings.max_staleness + 1
    monkeypatch.setattr(service.engine, "clock", lambda: time.monotonic() + ahead)
    for route, body in bodies().items():
        response = api.post(route, body, headers={"X-Request-ID": "stale"})
        refused(response, 503, "unavailable")
        assert response.headers["X-Request-ID"] == "stale"
    limited = world.api("only_demo")
    refused(limited.post("/access/v1/search/resource", bodies()["/access/v1/search/resource"]), 503, "unavailable")
    ok(world.app.test_client().get("/.well-known/authzen-configuration"))  # no decision: still answered
