"""Bad input on every route of docs/api.md: the documented 4xx with the error envelope
``{"error": {"code", "message", ...}}`` (never a 500, never HTML, never a stack trace or SQL text),
nothing written to the database and the engine's decisions unchanged.

Every case runs against ONE world per module (the demo CPAS of seed/demo.yaml, a second CPAS created
through the API, a few extra profiles and users, and API keys of every shape): building a fresh
database per case would cost ~0.5 s each, and these cases must not change anything anyway. Each case
snapshots the database (every table) and the engine (every decision for every known user and every
catalog function) before the request and compares after, so a case that did write is caught by the
case itself and not blamed on a later one.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from authz_service import create_app, reads
from authz_service.cli import init_db, seed_demo
from authz_service.config import load_settings
from authz_service.models import AdminAccount, ApiKey, AuditEntry, CasbinRule, CatalogState, Cpas, Profile, User
from authz_service.security import new_api_key
from authz_service.service import Service
from authz_service.store import Store

IN_USE_FR = (
    "Le profil que vous voulez supprimer est affecté à un ou plusieurs utilisateurs. "
    "Veuillez d'abord le désaffecter."
)


def kbo(first_eight: str) -> str:
    """A valid KBO/BCE number from its first eight digits (check = 97 - n mod 97)."""
    return f"{first_eight}{97 - int(first_eight) % 97:02d}"


def dotted(number: str) -> str:
    return f"{number[:4]}.{number[4:7]}.{number[7:]}"


DEMO = "0207196354"  # seed/demo.yaml
OTHER = kbo("01234567")  # created through POST /cpas in the world fixture
UNKNOWN = kbo("09876543")  # valid, never created
UNKNOWN_1 = kbo("10000000")  # valid, first digit 1, never created
FIRST_DIGIT_2 = kbo("22071963")  # passes mod-97, but a KBO starts with 0 or 1
assert FIRST_DIGIT_2[0] == "2" and 97 - int(FIRST_DIGIT_2[:8]) % 97 == int(FIRST_DIGIT_2[8:])
assert kbo("02123456") == "0212345668"  # the brief's example: 0212.345.668 is valid

MARIE = "85073003328"  # active, profile "full"
LUC = "75081815365"  # active, no profile
RENARD = "77070619530"  # inactive
GOOD_FN = "dossier.search"
COVERED_FN = "help_request.add"  # an action without a checkbox of its own (covered)
NEW_USER = "new-user.1@test"  # never seen

SQL_MARKERS = re.compile(r"\b(SELECT\s|INSERT\s+INTO|DELETE\s+FROM|UPDATE\s+\w+\s+SET|WHERE\s)")
LEAK_MARKERS = re.compile(r"traceback|file \"|sqlalchemy|sqlite|psycopg|operationalerror|integrityerror|"
                          r"overflowerror|<html|<!doctype|werkzeug", re.I)


# -- client and world ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Raw:
    """A body sent as-is (not JSON-encoded by the client)."""

    data: Any
    content_type: str | None = "application/json"


class Client:
    def __init__(self, flask_client: Any, authorization: str | None) -> None:
        self.client = flask_client
        self.authorization = authorization

    def call(self, method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        hdrs = {"Authorization": self.authorization} if self.authorization is not None else {}
        hdrs.update(headers or {})
        kwargs: dict[str, Any] = {"headers": hdrs}
        if isinstance(body, Raw):
            kwargs["data"] = body.data
            if body.content_type is not None:
                kwargs["content_type"] = body.content_type
        elif body is not None:
            kwargs["json"] = body
        return self.client.open(url, method=method, **kwargs)


@dataclass
class World:
    service: Service
    app: Any
    keys: dict[str, str]
    profiles: dict[str, int]
    db_path: Path
    pristine: Path
    clients: dict[str, Client] = field(default_factory=dict)

    def client(self, who: str) -> Client:
        if who not in self.clients:
            self.clients[who] = Client(self.app.test_client(), f"Bearer {self.keys[who]}")
        return self.clients[who]

    def anonymous(self, authorization: str | None) -> Client:
        return Client(self.app.test_client(), authorization)

    def fmt(self, value: Any) -> Any:
        """Fill {C}, {O}, {U}, {full}, {rmc1}... in URLs and bodies; call body factories."""
        if callable(value):
            value = value(self)
        if isinstance(value, str):
            return value.format(C=DEMO, O=OTHER, U=UNKNOWN, **self.profiles)
        if isinstance(value, dict):
            return {k: self.fmt(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.fmt(v) for v in value]
        return value

    def version(self, profile_id: int) -> int:
        catalog = self.service.catalog
        return self.service.read(lambda store: reads.profile_detail(store, catalog, DEMO, profile_id)).version


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    path = tmp_path_factory.mktemp("bad_input") / "authz.sqlite3"
    overrides = {"database_url": f"sqlite:///{path}", "poll_interval": 0, "secret_key": "test-secret"}
    settings = load_settings(overrides)
    init_db(settings)
    app = create_app(overrides, start_polling=False)
    app.config["TESTING"] = True
    service: Service = app.extensions["authz"]
    assert str(seed_demo(settings)["cpas_id"]) == DEMO
    service.sync()

    def key(scopes: str, cpas: list[str] | None = None) -> str:
        with service.db.transaction() as session:
            return new_api_key(Store(session), f"bad-input {scopes} {cpas}", tuple(scopes.split(",")), cpas)

    keys = {
        "operator": key("enforce,users,admin"),
        "only_other": key("enforce,users,admin", [OTHER]),  # every scope, limited to the second CPAS
        "only_demo": key("enforce,users,admin", [DEMO]),  # every scope, limited to the demo CPAS
        "only_unknown": key("enforce,users,admin", [UNKNOWN_1]),
        "no_enforce": key("users,admin"),
        "no_users": key("enforce,admin"),
        "no_admin": key("enforce,users"),
    }
    world = World(service=service, app=app, keys=keys, profiles={}, db_path=path,
                  pristine=path.with_name("pristine.sqlite3"))
    op = world.client("operator")

    def ok(resp: Any, status: int) -> Any:
        assert resp.status_code == status, resp.get_data(as_text=True)
        return resp.get_json()

    ok(op.call("POST", "/cpas", {"cpas": dotted(OTHER), "name_fr": "CPAS Autre", "name_nl": "OCMW Ander",
                                  "region": "wallonia"}), 201)
    other_profile = ok(op.call("POST", f"/cpas/{OTHER}/profiles",
                               {"description_fr": "Recherche", "functions": [GOOD_FN]}), 201)["id"]
    ok(op.call("PUT", f"/cpas/{OTHER}/users/other-user", {"name": "Autre Personne", "lang": "fr"}), 201)
    ok(op.call("PUT", f"/cpas/{OTHER}/users/other-user/profiles", {"profiles": [other_profile]}), 200)
    # in the demo CPAS: a profile only included by another one, and a profile nobody uses
    included = ok(op.call("POST", f"/cpas/{DEMO}/profiles",
                          {"description_fr": "Inclus seulement", "functions": [GOOD_FN]}), 201)["id"]
    includer = ok(op.call("POST", f"/cpas/{DEMO}/profiles",
                          {"description_nl": "Omvattend", "functions": [], "includes": [included]}), 201)["id"]
    unused = ok(op.call("POST", f"/cpas/{DEMO}/profiles",
                        {"description_fr": "Jetable", "description_nl": "Wegwerp", "functions": [GOOD_FN]}), 201)["id"]

    def ids(store: Store) -> dict[str, int]:
        by_label = {(p.description_fr or p.description_nl): p.id for p in store.profiles(DEMO)}
        builtin = store.builtin_profile(DEMO)
        assert builtin is not None
        return {"builtin": builtin.id, "full": by_label["Full"], "rmc1": by_label["RMC-1"],
                "clignotants": by_label["clignotants"],
                "admin_clignotants": by_label["travailleur administratif + clignotants"],
                "director": by_label["Directeur général / Secrétaire"]}

    world.profiles = {**service.read(ids), "other_profile": other_profile, "included": included,
                      "includer": includer, "unused": unused,
                      "other_builtin": service.read(lambda s: s.builtin_profile(OTHER).id)}  # type: ignore[union-attr]
    # control for the PUT cases (and a version above 1 for the stale-version case): the body that
    # _update builds, unchanged and with the current version, is accepted
    body = _update("rmc1")(world)
    assert body["version"] == 1
    assert ok(op.call("PUT", f"/cpas/{DEMO}/profiles/{world.profiles['rmc1']}", body), 200)["version"] == 2
    # the world is as the cases expect it
    assert service.read(lambda s: s.get_user(DEMO, RENARD).active) is False  # type: ignore[union-attr]
    assert service.read(lambda s: s.user_profiles(DEMO, LUC)) == []
    assert service.read(lambda s: s.user_profiles(DEMO, MARIE)) == [world.profiles["full"]]
    _copy_sqlite(world.db_path, world.pristine)
    yield world
    service.close()


# -- what "nothing changed" means ---------------------------------------------------------------------
def dump(service: Service) -> dict[str, Any]:
    """Every row the service owns, in a comparable form (all columns that a change would touch)."""

    with service.db.reading() as s:
        return {
            "rules": sorted(
                (r.ptype, r.v0, r.v1, r.v2, r.v3, r.v4, r.v5) for r in s.scalars(select(CasbinRule)).all()
            ),
            "cpas": sorted(
                (c.id, c.name_fr, c.name_nl, c.region, c.policy_version) for c in s.scalars(select(Cpas)).all()
            ),
            "profiles": sorted(
                (p.id, p.cpas_id, p.description_fr, p.description_nl, p.key_fr, p.key_nl, p.builtin, p.version,
                 str(p.updated_at))
                for p in s.scalars(select(Profile)).all()
            ),
            "users": sorted(
                (u.cpas_id, u.user, u.name, u.lang, u.active, str(u.last_seen_at))
                for u in s.scalars(select(User)).all()
            ),
            "audit": (s.scalar(select(func.count()).select_from(AuditEntry)),
                      s.scalar(select(func.max(AuditEntry.id)))),
            "api_keys": sorted((k.prefix, k.scopes, str(k.revoked_at)) for k in s.scalars(select(ApiKey)).all()),
            "admins": s.scalar(select(func.count()).select_from(AdminAccount)),
            "catalog": [(c.version, c.digest) for c in s.scalars(select(CatalogState)).all()],
        }


def decisions(service: Service, users: list[tuple[str, str]]) -> dict[str, Any]:
    """Every decision of the engine (after a sync, so that a write would show) for every known user,
    one unknown user and every catalog function, per CPAS, with the policy versions."""
    assert service.sync()
    snapshot = service.snapshot()
    codes = sorted(service.catalog.functions)
    out: dict[str, Any] = {}
    for cpas, policy in sorted(snapshot.policies.items()):
        subjects = sorted({u for c, u in users if c == cpas} | {"nobody-at-all"})
        out[cpas] = {
            "version": policy.version,
            "users": {
                u: (policy.view(u).active, policy.view(u).profiles,
                    tuple(c for c in codes if policy.decide(u, c).allowed))
                for u in subjects
            },
        }
    return out


def state(world: World) -> tuple[dict[str, Any], dict[str, Any]]:
    rows = dump(world.service)
    return rows, decisions(world.service, [(u[0], u[1]) for u in rows["users"]])


def assert_error(resp: Any, status: int, code: str) -> dict[str, Any]:
    """The documented status and code, in the JSON envelope, with nothing leaked."""
    text = resp.get_data(as_text=True)
    assert (resp.status_code, _code(resp)) == (status, code), text[:2000]
    assert resp.mimetype == "application/json", (resp.mimetype, text[:500])
    body = resp.get_json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    err = body["error"]
    assert set(err) <= {"code", "message", "details"}, err
    assert isinstance(err["message"], str) and err["message"].strip(), err
    assert re.fullmatch(r"[a-z][a-z0-9_]*", err["code"]), err
    assert not SQL_MARKERS.search(text), text[:2000]
    assert not LEAK_MARKERS.search(text), text[:2000]
    if status == 401:
        assert "bearer" in resp.headers.get("WWW-Authenticate", "").lower()
    return err  # type: ignore[no-any-return]


def _code(resp: Any) -> str | None:
    try:
        body = resp.get_json(silent=True)
        return body["error"]["code"] if isinstance(body, dict) and isinstance(body.get("error"), dict) else None
    except Exception:
        return None


def _copy_sqlite(source: Path, target: Path) -> None:
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


def restore(world: World) -> None:
    """Put the world back as it was after setup (a case wrote: later cases must not inherit it)."""
    world.service.db.engine.dispose()
    _copy_sqlite(world.pristine, world.db_path)
    world.service.db.engine.dispose()
    current = world.service.engine.current()
    if current is not None:  # force a full rebuild of the engine, even for unchanged versions
        world.service.engine.install(dataclasses.replace(current, catalog_digest="restored"))
    assert world.service.sync()


def changes(world: World, before: tuple[dict[str, Any], dict[str, Any]]) -> list[str]:
    """What changed since ``before`` (empty: nothing); restores the world if anything did."""
    after = state(world)
    if after == before:
        return []
    restore(world)
    found = []
    for table, rows in before[0].items():
        now = after[0][table]
        if rows != now:
            if isinstance(rows, list):
                found.append(f"table {table}: added {[r for r in now if r not in rows]}, "
                             f"removed {[r for r in rows if r not in now]}")
            else:
                found.append(f"table {table}: {rows} -> {now}")
    for cpas in sorted(set(before[1]) | set(after[1])):
        old, new = before[1].get(cpas, {}), after[1].get(cpas, {})
        if old != new:
            users = old.get("users", {}), new.get("users", {})
            differ = sorted(u for u in set(users[0]) | set(users[1]) if users[0].get(u) != users[1].get(u))
            found.append(f"engine {cpas}: version {old.get('version')} -> {new.get('version')}, users {differ}")
    return found


def assert_unchanged(world: World, before: tuple[dict[str, Any], dict[str, Any]]) -> None:
    found = changes(world, before)
    assert not found, "the request changed the database or the engine:\n" + "\n".join(found)


def refused(
    world: World, who: str | Client, method: str, url: str, body: Any, status: int, code: str
) -> dict[str, Any]:
    """Send one request; it is refused as documented and nothing changed."""
    client = world.client(who) if isinstance(who, str) else who
    before = state(world)
    resp = client.call(method, world.fmt(url), world.fmt(body))
    try:
        err = assert_error(resp, status, code)
    except AssertionError as exc:
        found = changes(world, before)
        raise AssertionError("\n".join([str(exc), *found])) from None
    assert_unchanged(world, before)
    return err


# -- every route of docs/api.md, with a valid request (that the operator key would get through) ----------
def _update_body(w: World) -> dict[str, Any]:
    return {"version": w.version(w.profiles["rmc1"]), "description_fr": "RMC-1", "description_nl": "RMC-1",
            "functions": [GOOD_FN]}


ROUTES: dict[str, tuple[str, str, Any]] = {
    "enforce": ("POST", "/enforce", {"cpas": "{C}", "user": MARIE, "function": GOOD_FN}),
    "enforce_batch": ("POST", "/enforce/batch", {"requests": [{"id": "a", "cpas": DEMO, "user": MARIE,
                                                               "function": GOOD_FN}]}),
    "user_functions": ("GET", "/cpas/{C}/users/" + MARIE + "/functions", None),
    "user_seen": ("PUT", "/cpas/{C}/users/" + NEW_USER, {"name": "Nouvel Utilisateur", "lang": "fr"}),
    "catalog": ("GET", "/catalog", None),
    "templates": ("GET", "/catalog/templates", None),
    "create_cpas": ("POST", "/cpas", {"cpas": UNKNOWN_1, "name_fr": "CPAS X", "name_nl": "OCMW X",
                                      "region": "brussels"}),
    "list_profiles": ("GET", "/cpas/{C}/profiles", None),
    "create_profile": ("POST", "/cpas/{C}/profiles", {"description_fr": "Nouveau", "functions": [GOOD_FN]}),
    "get_profile": ("GET", "/cpas/{C}/profiles/{rmc1}", None),
    "update_profile": ("PUT", "/cpas/{C}/profiles/{rmc1}", _update_body),
    "delete_profile": ("DELETE", "/cpas/{C}/profiles/{unused}", None),
    "list_users": ("GET", "/cpas/{C}/users?status=active&page=1&per_page=10", None),
    "get_user": ("GET", "/cpas/{C}/users/" + MARIE, None),
    "assign_profiles": ("PUT", "/cpas/{C}/users/" + LUC + "/profiles", lambda w: {"profiles": [w.profiles["rmc1"]]}),
    "deactivate": ("POST", "/cpas/{C}/users/" + LUC + "/deactivate", None),
    "reactivate": ("POST", "/cpas/{C}/users/" + RENARD + "/reactivate", None),
    "audit": ("GET", "/cpas/{C}/audit?page=1", None),
    "policy_csv": ("GET", "/cpas/{C}/policy.csv", None),
}
SCOPE = {"enforce": "enforce", "enforce_batch": "enforce", "user_functions": "enforce", "user_seen": "users"}
NO_CPAS = {"catalog", "templates", "create_cpas"}
CPAS_ROUTES = [r for r in ROUTES if r not in NO_CPAS]
PATH_CPAS_ROUTES = [r for r in CPAS_ROUTES if r not in ("enforce", "enforce_batch")]
BODY_ROUTES = [r for r, (m, _, _) in ROUTES.items() if m in ("POST", "PUT") and ROUTES[r][2] is not None]


def test_valid_requests_of_the_route_table_are_accepted(world: World) -> None:
    """Control: the requests the auth cases send are themselves fine (read-only ones are sent)."""
    op = world.client("operator")
    for name, (method, url, body) in ROUTES.items():
        if method != "GET" and name not in ("enforce", "enforce_batch"):
            continue
        resp = op.call(method, world.fmt(url), world.fmt(body))
        assert resp.status_code == 200, (name, resp.get_data(as_text=True)[:500])


# -- authentication (401) -----------------------------------------------------------------------------
AUTH_HEADERS = {
    "missing_header": None,
    "empty_header": "",
    "basic_scheme": "Basic dXNlcjpwYXNz",
    "bearer_no_token": "Bearer ",
    "token_without_scheme": "azk_0123456789ab_secret",
    "malformed_key": "Bearer not-a-key",
    "wrong_key_prefix": "Bearer xyz_0123456789ab_secret",
    "unknown_key": "Bearer azk_0123456789ab_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
}


@pytest.mark.parametrize("route", list(ROUTES))
@pytest.mark.parametrize("auth", list(AUTH_HEADERS))
def test_unauthenticated(world: World, route: str, auth: str) -> None:
    method, url, body = ROUTES[route]
    refused(world, world.anonymous(AUTH_HEADERS[auth]), method, url, body, 401, "unauthenticated")


@pytest.mark.parametrize("route", ["enforce", "list_profiles", "create_profile"])
def test_known_prefix_wrong_secret_is_unauthenticated(world: World, route: str) -> None:
    prefix = world.keys["operator"].split("_")[1]
    method, url, body = ROUTES[route]
    client = world.anonymous(f"Bearer azk_{prefix}_wrong-secret")
    refused(world, client, method, url, body, 401, "unauthenticated")


# -- authorization (403) ------------------------------------------------------------------------------
@pytest.mark.parametrize("route", list(ROUTES))
def test_key_without_the_scope(world: World, route: str) -> None:
    scope = SCOPE.get(route, "admin")
    method, url, body = ROUTES[route]
    refused(world, f"no_{scope}", method, url, body, 403, "forbidden")


@pytest.mark.parametrize("route", [r for r in CPAS_ROUTES if r != "enforce_batch"])
def test_key_limited_to_another_cpas(world: World, route: str) -> None:
    method, url, body = ROUTES[route]
    refused(world, "only_other", method, url, body, 403, "forbidden")


@pytest.mark.parametrize("route", ["enforce", "list_profiles", "policy_csv", "user_seen"])
def test_key_limited_to_another_cpas_with_dotted_number(world: World, route: str) -> None:
    method, url, body = ROUTES[route]
    url = url.replace("{C}", dotted(DEMO))
    if isinstance(body, dict) and body.get("cpas") == "{C}":
        body = {**body, "cpas": dotted(DEMO)}
    refused(world, "only_other", method, url, body, 403, "forbidden")


def test_key_limited_to_a_cpas_works_there_with_both_forms(world: World) -> None:
    """Control for the 403 cases: the limited key is accepted for its own CPAS, dotted or not."""
    client = world.client("only_demo")
    for number in (DEMO, dotted(DEMO)):
        resp = client.call("POST", "/enforce", {"cpas": number, "user": MARIE, "function": GOOD_FN})
        assert resp.status_code == 200, resp.get_data(as_text=True)
        assert client.call("GET", f"/cpas/{number}/profiles").status_code == 200


def test_batch_items_of_another_cpas_are_forbidden_per_item(world: World) -> None:
    before = state(world)
    resp = world.client("only_other").call("POST", "/enforce/batch", {"requests": [
        {"id": "mine", "cpas": OTHER, "user": "other-user", "function": GOOD_FN},
        {"id": "theirs", "cpas": DEMO, "user": MARIE, "function": GOOD_FN},
        {"id": "theirs-dotted", "cpas": dotted(DEMO), "user": MARIE, "function": GOOD_FN},
        {"id": "mine-again", "cpas": dotted(OTHER), "user": "other-user", "function": GOOD_FN},
    ]})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    results = resp.get_json()["results"]
    assert [r["id"] for r in results] == ["mine", "theirs", "theirs-dotted", "mine-again"]
    assert [r["allowed"] for r in results] == [True, False, False, True]
    assert [r.get("error", {}).get("code") for r in results] == [None, "forbidden", "forbidden", None]
    assert_unchanged(world, before)


@pytest.mark.parametrize("who", ["only_demo", "only_unknown", "no_admin"])
def test_non_operator_cannot_create_a_cpas(world: World, who: str) -> None:
    # "only_unknown" is limited to exactly the CPAS it tries to create: still not an operator
    refused(world, who, "POST", "/cpas", {"cpas": UNKNOWN_1, "name_fr": "X", "name_nl": "X", "region": "wallonia"},
            403, "forbidden")


# -- unknown CPAS (valid KBO) and bad KBO in the path -------------------------------------------------
@pytest.mark.parametrize("route", [r for r in CPAS_ROUTES if r != "enforce_batch"])
def test_unknown_cpas(world: World, route: str) -> None:
    method, url, body = ROUTES[route]
    url = url.replace("{C}", "{U}")
    if route == "update_profile":
        body = {"version": 1, "description_fr": "X"}
    if route == "enforce":
        body = {**body, "cpas": UNKNOWN}
    refused(world, "operator", method, url, body, 404, "unknown_cpas")


@pytest.mark.parametrize("route", PATH_CPAS_ROUTES)
@pytest.mark.parametrize("number", ["0207196355", "0207.196.355", "020719635", "02071963AB", FIRST_DIGIT_2,
                                    "02071963540"],
                         ids=["wrong_check", "dotted_wrong_check", "nine_digits", "letters", "first_digit_2",
                              "eleven_digits"])
def test_bad_kbo_in_path(world: World, route: str, number: str) -> None:
    method, url, body = ROUTES[route]
    refused(world, "operator", method, url.replace("{C}", number), body, 400, "invalid_request")


def test_dotted_kbo_is_the_same_cpas(world: World) -> None:
    op = world.client("operator")
    a = op.call("GET", f"/cpas/{DEMO}/profiles").get_json()
    b = op.call("GET", f"/cpas/{dotted(DEMO)}/profiles").get_json()
    assert a == b and a
    one = op.call("POST", "/enforce", {"cpas": dotted(DEMO), "user": MARIE, "function": GOOD_FN, "explain": True})
    assert one.status_code == 200 and one.get_json()["allowed"] is True
    assert op.call("GET", f"/cpas/{dotted(DEMO)}/users/{MARIE}/functions").get_json()["cpas"] == DEMO


# -- unknown routes, wrong methods --------------------------------------------------------------------
@pytest.mark.parametrize("method,url", [
    ("GET", "/nope"),
    ("POST", "/enforce/single"),
    ("GET", "/cpas/{C}/unknown"),
    ("GET", "/cpas/{C}/profiles/abc"),
    ("GET", "/cpas/{C}/profiles/-1"),
    ("DELETE", "/cpas/{C}/profiles/-5"),
    ("GET", "/cpas/{C}/users/a/b/functions"),
    ("PUT", "/cpas/{C}/users/a%2Fb"),
    ("POST", "/cpas/{C}/users/" + MARIE + "/delete"),
], ids=["root_unknown", "enforce_single", "cpas_unknown_sub", "profile_id_not_int", "profile_id_negative",
        "delete_negative_id", "user_with_slash", "user_with_encoded_slash", "user_unknown_action"])
def test_unknown_route(world: World, method: str, url: str) -> None:
    refused(world, "operator", method, url, {"name": "x"} if method in ("PUT", "POST") else None, 404, "not_found")


@pytest.mark.parametrize("method,url", [
    ("GET", "/enforce"),
    ("PUT", "/enforce/batch"),
    ("GET", "/cpas"),
    ("DELETE", "/catalog"),
    ("POST", "/cpas/{C}/users/" + MARIE + "/functions"),
    ("DELETE", "/cpas/{C}/users/" + MARIE),
    ("PATCH", "/cpas/{C}/profiles/{rmc1}"),
    ("DELETE", "/cpas/{C}/profiles"),
    ("POST", "/cpas/{C}/users"),
    ("GET", "/cpas/{C}/users/" + MARIE + "/deactivate"),
    ("POST", "/cpas/{C}/audit"),
    ("DELETE", "/cpas/{C}/policy.csv"),
], ids=["GET_enforce", "PUT_batch", "GET_cpas", "DELETE_catalog", "POST_user_functions", "DELETE_user",
        "PATCH_profile", "DELETE_profiles", "POST_users", "GET_deactivate", "POST_audit", "DELETE_policy_csv"])
def test_wrong_method(world: World, method: str, url: str) -> None:
    client = world.client("operator")
    before = state(world)
    resp = client.call(method, world.fmt(url), {"x": 1} if method in ("POST", "PUT", "PATCH") else None)
    assert_error(resp, 405, "method_not_allowed")
    assert resp.headers.get("Allow"), "a 405 names the allowed methods"
    assert_unchanged(world, before)


# -- bodies that are not JSON objects -----------------------------------------------------------------
NOT_JSON = {
    "no_body": Raw(None, None),
    "empty_json_body": Raw(b"", "application/json"),
    "invalid_json": Raw(b'{"cpas": ', "application/json"),
    "json_null": Raw(b"null", "application/json"),
    "json_list": Raw(b"[]", "application/json"),
    "json_string": Raw(b'"hello"', "application/json"),
    "json_number": Raw(b"42", "application/json"),
    "text_plain": Raw(lambda body: json.dumps(body), "text/plain"),
    "form_urlencoded": Raw(b"cpas=0207196354&user=x", "application/x-www-form-urlencoded"),
    "not_utf8": Raw(b'{"name": "\xff\xfe"}', "application/json"),
}


@pytest.mark.parametrize("route", BODY_ROUTES)
@pytest.mark.parametrize("kind", list(NOT_JSON))
def test_body_not_a_json_object(world: World, route: str, kind: str) -> None:
    method, url, body = ROUTES[route]
    raw = NOT_JSON[kind]
    if callable(raw.data):
        raw = Raw(raw.data(world.fmt(body)).encode(), raw.content_type)
    refused(world, "operator", method, url, raw, 400, "invalid_request")


@pytest.mark.parametrize("route", ["enforce", "enforce_batch", "create_profile", "user_seen"])
def test_body_larger_than_2_mib(world: World, route: str) -> None:
    method, url, _ = ROUTES[route]
    big = json.dumps({"padding": "x" * (2 * 1024 * 1024 + 16)}).encode()
    refused(world, "operator", method, url, Raw(big), 413, "payload_too_large")


# -- POST /enforce --------------------------------------------------------------------------------------
def _enforce(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"cpas": DEMO, "user": MARIE, "function": GOOD_FN}
    for k, v in changes.items():
        if v is _DROP:
            body.pop(k)
        else:
            body[k] = v
    return body


_DROP = object()

ENFORCE_INVALID = {
    # wrong JSON types (strict: no coercion)
    "cpas_int": _enforce(cpas=207196354),
    "user_int": _enforce(user=85073003328),
    "function_int": _enforce(function=7),
    "function_list": _enforce(function=[GOOD_FN]),
    "cpas_object": _enforce(cpas={"id": DEMO}),
    "explain_string": _enforce(explain="true"),
    "explain_int_1": _enforce(explain=1),
    "explain_int_0": _enforce(explain=0),
    # null where required
    "cpas_null": _enforce(cpas=None),
    "user_null": _enforce(user=None),
    "function_null": _enforce(function=None),
    "explain_null": _enforce(explain=None),
    # missing fields, extra fields
    "missing_cpas": _enforce(cpas=_DROP),
    "missing_user": _enforce(user=_DROP),
    "missing_function": _enforce(function=_DROP),
    "empty_object": {},
    "extra_field": _enforce(reason="because"),
    "extra_id_field": _enforce(id="a"),
    "body_list": [_enforce()],
    # bad KBO
    "kbo_wrong_check": _enforce(cpas="0207196355"),
    "kbo_dotted_wrong_check": _enforce(cpas="0207.196.355"),
    "kbo_nine_digits": _enforce(cpas="020719635"),
    "kbo_eleven_digits": _enforce(cpas="02071963540"),
    "kbo_letters": _enforce(cpas="02071963AB"),
    "kbo_first_digit_2": _enforce(cpas=FIRST_DIGIT_2),
    "kbo_dashes": _enforce(cpas="0207-196-354"),
    "kbo_inner_spaces": _enforce(cpas="0207 196 354"),
    "kbo_empty": _enforce(cpas=""),
    "kbo_unicode_digits": _enforce(cpas="０２０７１９６３５４"),
    # bad user ids
    "user_too_long": _enforce(user="1" * 129),
    "user_empty": _enforce(user=""),
    "user_space": _enforce(user="marie leblanc"),
    "user_slash": _enforce(user="a/b"),
    "user_accent": _enforce(user="josé"),
    "user_quote": _enforce(user="x';--"),
    "user_trailing_newline": _enforce(user=MARIE + "\n"),
    # malformed function codes
    "function_upper": _enforce(function="Dossier.search"),
    "function_double_dot": _enforce(function="dossier..search"),
    "function_trailing_dot": _enforce(function="dossier."),
    "function_leading_dot": _enforce(function=".dossier"),
    "function_leading_digit": _enforce(function="1dossier.search"),
    "function_space": _enforce(function="dossier search"),
    "function_dash": _enforce(function="dossier-search"),
    "function_empty": _enforce(function=""),
    "function_too_long": _enforce(function="a" * 201),
    "function_trailing_newline": _enforce(function=GOOD_FN + "\n"),
}


@pytest.mark.parametrize("body", list(ENFORCE_INVALID.values()), ids=list(ENFORCE_INVALID))
def test_enforce_invalid(world: World, body: Any) -> None:
    refused(world, "operator", "POST", "/enforce", body, 400, "invalid_request")


@pytest.mark.parametrize("code", ["dossier.nonexistent", "nope", "dossier.search.more", "a" * 200],
                         ids=["unknown_leaf", "unknown_top", "below_a_real_code", "long_but_well_formed"])
def test_enforce_unknown_function(world: World, code: str) -> None:
    err = refused(world, "operator", "POST", "/enforce", _enforce(function=code), 400, "unknown_function")
    assert code in err["message"] or err.get("details")


def test_enforce_unknown_cpas_and_unknown_user(world: World) -> None:
    refused(world, "operator", "POST", "/enforce", _enforce(cpas=dotted(UNKNOWN)), 404, "unknown_cpas")
    # control: an unknown user of a known CPAS is a normal deny, and a 128-character id is valid
    resp = world.client("operator").call("POST", "/enforce", _enforce(user="9" * 128, explain=True))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json()["allowed"] is False
    assert resp.get_json()["explanation"]["reason"] == "unknown_user"


# -- POST /enforce/batch --------------------------------------------------------------------------------
BATCH_INVALID = {
    "missing_requests": {},
    "requests_null": {"requests": None},
    "requests_object": {"requests": {"a": _enforce()}},
    "requests_string": {"requests": "a"},
    "requests_int": {"requests": 1},
    "extra_top_level_field": {"requests": [_enforce()], "explain": True},
    "body_list": [_enforce()],
}


@pytest.mark.parametrize("body", list(BATCH_INVALID.values()), ids=list(BATCH_INVALID))
def test_batch_invalid(world: World, body: Any) -> None:
    refused(world, "operator", "POST", "/enforce/batch", body, 400, "invalid_request")


def test_batch_too_many_items(world: World) -> None:
    items = [{"id": i, **_enforce()} for i in range(1001)]
    refused(world, "operator", "POST", "/enforce/batch", {"requests": items}, 413, "payload_too_large")
    # control: 1000 is allowed
    resp = world.client("operator").call("POST", "/enforce/batch", {"requests": items[:1000]})
    assert resp.status_code == 200
    assert [r["id"] for r in resp.get_json()["results"]] == list(range(1000))


BAD_ITEMS = {
    "not_an_object": (5, "invalid_request"),
    "null_item": (None, "invalid_request"),
    "list_item": ([DEMO, MARIE, GOOD_FN], "invalid_request"),
    "kbo_wrong_check": ({"id": "x", **_enforce(cpas="0207196355")}, "invalid_request"),
    "kbo_first_digit_2": ({"id": "x", **_enforce(cpas=FIRST_DIGIT_2)}, "invalid_request"),
    "cpas_int": ({"id": "x", **_enforce(cpas=207196354)}, "invalid_request"),
    "user_int": ({"id": "x", **_enforce(user=85073003328)}, "invalid_request"),
    "user_slash": ({"id": "x", **_enforce(user="a/b")}, "invalid_request"),
    "missing_user": ({"id": "x", **_enforce(user=_DROP)}, "invalid_request"),
    "function_null": ({"id": "x", **_enforce(function=None)}, "invalid_request"),
    "explain_int": ({"id": "x", **_enforce(explain=1)}, "invalid_request"),
    "extra_field": ({"id": "x", "foo": 1, **_enforce()}, "invalid_request"),
    "malformed_function": ({"id": "x", **_enforce(function="Dossier.Search")}, "invalid_request"),
    "unknown_function": ({"id": "x", **_enforce(function="dossier.nonexistent")}, "unknown_function"),
    "unknown_cpas": ({"id": "x", **_enforce(cpas=UNKNOWN)}, "unknown_cpas"),
}


@pytest.mark.parametrize("item,code", list(BAD_ITEMS.values()), ids=list(BAD_ITEMS))
def test_batch_one_bad_item(world: World, item: Any, code: str) -> None:
    before = state(world)
    good_a = {"id": "a", **_enforce()}
    good_b = {"id": 2, **_enforce(user=LUC)}
    good_c = {"id": "c", **_enforce(function="dossier.create", cpas=dotted(DEMO))}
    resp = world.client("operator").call("POST", "/enforce/batch", {"requests": [good_a, item, good_b, good_c]})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    results = body["results"]
    assert len(results) == 4
    expected_id = item.get("id") if isinstance(item, dict) else None
    assert [r["id"] for r in results] == ["a", expected_id, 2, "c"]
    bad = results[1]
    assert bad["allowed"] is False
    assert bad["error"]["code"] == code, bad
    assert isinstance(bad["error"]["message"], str) and bad["error"]["message"]
    assert not LEAK_MARKERS.search(json.dumps(bad))
    policy = world.service.policy(DEMO)
    for result, (user, fn) in zip([results[0], results[2], results[3]],
                                  [(MARIE, GOOD_FN), (LUC, GOOD_FN), (MARIE, "dossier.create")], strict=True):
        assert "error" not in result, result
        assert result["allowed"] is policy.decide(user, fn).allowed
    assert [results[0]["allowed"], results[2]["allowed"]] == [True, False]
    assert body["policy_version"] == policy.version
    assert_unchanged(world, before)


def test_batch_mixed_keeps_order_and_ids(world: World) -> None:
    items = [{"id": f"i{n}", **_enforce(user=user, function=fn)} for n, (user, fn) in enumerate([
        (MARIE, GOOD_FN), (MARIE, "dossier.nope"), (RENARD, GOOD_FN), ("x y", GOOD_FN), (LUC, GOOD_FN),
        ("79021412462", "dossier.create"),
    ])]
    items.insert(3, {"id": "unknown", **_enforce(cpas=UNKNOWN)})
    before = state(world)
    resp = world.client("operator").call("POST", "/enforce/batch", {"requests": items})
    assert resp.status_code == 200
    results = resp.get_json()["results"]
    assert [r["id"] for r in results] == [i["id"] for i in items]
    assert [(r["allowed"], r.get("error", {}).get("code")) for r in results] == [
        (True, None), (False, "unknown_function"), (False, None), (False, "unknown_cpas"),
        (False, "invalid_request"), (False, None), (True, None),
    ]
    assert_unchanged(world, before)


# -- GET /cpas/{cpas}/users/{user}/functions -----------------------------------------------------------
@pytest.mark.parametrize("url,status,code", [
    ("/cpas/{C}/users/" + MARIE + "/functions?lang=en", 400, "invalid_request"),
    ("/cpas/{C}/users/" + MARIE + "/functions?lang=", 400, "invalid_request"),
    ("/cpas/{C}/users/" + "1" * 129 + "/functions", 400, "invalid_request"),
    ("/cpas/{C}/users/marie%20leblanc/functions", 400, "invalid_request"),
    ("/cpas/{C}/users/jos%C3%A9/functions", 400, "invalid_request"),
    ("/cpas/{C}/users/" + MARIE + "%0A/functions", 400, "invalid_request"),
    ("/cpas/{U}/users/" + MARIE + "/functions", 404, "unknown_cpas"),
], ids=["lang_en", "lang_empty", "user_too_long", "user_space", "user_accent", "user_trailing_newline",
        "unknown_cpas"])
def test_user_functions_bad_input(world: World, url: str, status: int, code: str) -> None:
    refused(world, "operator", "GET", url, None, status, code)


# -- PUT /cpas/{cpas}/users/{user} (users seen at login) -----------------------------------------------
USER_SEEN_INVALID = {
    "name_int": {"name": 12, "lang": "fr"},
    "name_null": {"name": None, "lang": "fr"},
    "name_list": {"name": ["Marie"], "lang": "fr"},
    "name_too_long": {"name": "x" * 201, "lang": "fr"},
    "lang_en": {"name": "Marie", "lang": "en"},
    "lang_upper": {"name": "Marie", "lang": "FR"},
    "lang_null": {"name": "Marie", "lang": None},
    "lang_int": {"name": "Marie", "lang": 1},
    "extra_active": {"name": "Marie", "lang": "fr", "active": False},
    "extra_profiles": {"name": "Marie", "lang": "fr", "profiles": [1]},
    "body_list": [{"name": "Marie", "lang": "fr"}],
}


@pytest.mark.parametrize("user", [NEW_USER, MARIE, RENARD], ids=["new_user", "existing_user", "inactive_user"])
@pytest.mark.parametrize("body", list(USER_SEEN_INVALID.values()), ids=list(USER_SEEN_INVALID))
def test_user_seen_invalid_body(world: World, user: str, body: Any) -> None:
    refused(world, "operator", "PUT", "/cpas/{C}/users/" + user, body, 400, "invalid_request")


@pytest.mark.parametrize("user", ["1" * 129, "marie%20leblanc", "jos%C3%A9", "a%3Bb", MARIE + "%0A", "%0A"],
                         ids=["too_long", "space", "accent", "semicolon", "trailing_newline", "only_newline"])
def test_user_seen_bad_user_id(world: World, user: str) -> None:
    refused(world, "operator", "PUT", "/cpas/{C}/users/" + user, {"name": "X", "lang": "fr"}, 400,
            "invalid_request")


# -- GET /catalog, GET /catalog/templates ---------------------------------------------------------------
@pytest.mark.parametrize("url", ["/catalog?lang=en", "/catalog?lang=", "/catalog/templates?region=mars",
                                 "/catalog/templates?region=Wallonia", "/catalog/templates?lang=xx"],
                         ids=["catalog_lang_en", "catalog_lang_empty", "templates_region_unknown",
                              "templates_region_case", "templates_lang_xx"])
def test_catalog_bad_query(world: World, url: str) -> None:
    refused(world, "operator", "GET", url, None, 400, "invalid_request")


# -- POST /cpas -----------------------------------------------------------------------------------------
def _cpas(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"cpas": UNKNOWN_1, "name_fr": "CPAS X", "name_nl": "OCMW X", "region": "wallonia"}
    for k, v in changes.items():
        if v is _DROP:
            body.pop(k)
        else:
            body[k] = v
    return body


CPAS_INVALID = {
    "cpas_int": _cpas(cpas=int(UNKNOWN_1)),
    "cpas_null": _cpas(cpas=None),
    "cpas_wrong_check": _cpas(cpas=UNKNOWN_1[:-1] + str((int(UNKNOWN_1[-1]) + 1) % 10)),
    "cpas_first_digit_2": _cpas(cpas=FIRST_DIGIT_2),
    "cpas_nine_digits": _cpas(cpas=UNKNOWN_1[:9]),
    "cpas_letters": _cpas(cpas="10000000AB"),
    "missing_cpas": _cpas(cpas=_DROP),
    "name_fr_empty": _cpas(name_fr=""),
    "name_fr_int": _cpas(name_fr=5),
    "name_nl_null": _cpas(name_nl=None),
    "missing_name_nl": _cpas(name_nl=_DROP),
    "name_fr_too_long": _cpas(name_fr="x" * 201),
    "region_unknown": _cpas(region="mars"),
    "region_null": _cpas(region=None),
    "region_list": _cpas(region=["wallonia"]),
    "missing_region": _cpas(region=_DROP),
    "extra_policy_version": _cpas(policy_version=99),
    "body_list": [_cpas()],
}


@pytest.mark.parametrize("body", list(CPAS_INVALID.values()), ids=list(CPAS_INVALID))
def test_create_cpas_invalid(world: World, body: Any) -> None:
    refused(world, "operator", "POST", "/cpas", body, 400, "invalid_request")


@pytest.mark.parametrize("number", [DEMO, dotted(DEMO), OTHER], ids=["demo", "demo_dotted", "other"])
def test_create_existing_cpas(world: World, number: str) -> None:
    refused(world, "operator", "POST", "/cpas", _cpas(cpas=number), 409, "conflict")


# -- GET/POST /cpas/{cpas}/profiles -------------------------------------------------------------------
def _profile(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"description_fr": "Nouveau profil", "description_nl": "Nieuw profiel",
                            "functions": [GOOD_FN], "includes": []}
    for k, v in changes.items():
        if v is _DROP:
            body.pop(k)
        else:
            body[k] = v
    return body


PROFILE_INVALID: dict[str, Any] = {
    "description_fr_int": _profile(description_fr=5),
    "description_nl_list": _profile(description_nl=["x"]),
    "description_too_long": _profile(description_fr="x" * 201),
    "neither_description_missing": _profile(description_fr=_DROP, description_nl=_DROP),
    "neither_description_null": _profile(description_fr=None, description_nl=None),
    "neither_description_blank": _profile(description_fr="   ", description_nl="\t"),
    "functions_string": _profile(functions=GOOD_FN),
    "functions_null": _profile(functions=None),
    "functions_int_item": _profile(functions=[1]),
    "functions_object": _profile(functions={GOOD_FN: True}),
    "function_malformed": _profile(functions=["Dossier.Search"]),
    "function_trailing_newline": _profile(functions=[GOOD_FN + "\n"]),
    "covered_action": _profile(functions=[GOOD_FN, COVERED_FN]),
    "includes_string_id": _profile(includes=["{rmc1}"]),
    "includes_bool": _profile(includes=[True]),
    "includes_zero": _profile(includes=[0]),
    "includes_negative": _profile(includes=[-3]),
    "includes_float": _profile(includes=[1.0]),
    "includes_unknown_id": _profile(includes=[987654]),
    "includes_huge_id": _profile(includes=[2**63]),
    "includes_very_huge_id": _profile(includes=[10**40]),
    "includes_other_cpas_profile": lambda w: _profile(includes=[w.profiles["other_profile"]]),
    "includes_other_cpas_builtin": lambda w: _profile(includes=[w.profiles["other_builtin"]]),
    "extra_builtin": _profile(builtin=True),
    "extra_version": _profile(version=1),
    "body_list": [_profile()],
}


@pytest.mark.parametrize("body", list(PROFILE_INVALID.values()), ids=list(PROFILE_INVALID))
def test_create_profile_invalid(world: World, body: Any) -> None:
    refused(world, "operator", "POST", "/cpas/{C}/profiles", body, 400, "invalid_request")


@pytest.mark.parametrize("codes", [["dossier.nonexistent"], [GOOD_FN, "nope"]], ids=["unknown", "one_unknown"])
def test_create_profile_unknown_function(world: World, codes: list[str]) -> None:
    refused(world, "operator", "POST", "/cpas/{C}/profiles", _profile(functions=codes), 400, "unknown_function")


DUPLICATES = {
    "fr_exact": {"description_fr": "RMC-1"},
    "fr_lower": {"description_fr": "rmc-1"},
    "fr_upper_with_blanks": {"description_fr": "  FULL "},
    "fr_inner_blanks": {"description_fr": "travailleur  administratif +   clignotants"},
    "nl_case": {"description_nl": "KNIPPERLICHTEN"},
    "nl_of_a_nl_only_profile": {"description_nl": "omvattend"},
    "builtin_fr": {"description_fr": "tous les accès"},
    "builtin_nl": {"description_fr": "Neuf", "description_nl": "ALLE TOEGANGEN"},
    "fr_accent_case": {"description_fr": "DIRECTEUR GÉNÉRAL / SECRÉTAIRE"},
}


@pytest.mark.parametrize("descriptions", list(DUPLICATES.values()), ids=list(DUPLICATES))
def test_create_profile_duplicate_description(world: World, descriptions: dict[str, str]) -> None:
    body = {"functions": [GOOD_FN], **descriptions}
    refused(world, "operator", "POST", "/cpas/{C}/profiles", body, 409, "duplicate_description")


def test_duplicate_description_in_the_other_cpas(world: World) -> None:
    refused(world, "operator", "POST", "/cpas/{O}/profiles", {"description_fr": "RECHERCHE"}, 409,
            "duplicate_description")


# -- GET/PUT/DELETE /cpas/{cpas}/profiles/{id} --------------------------------------------------------
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
@pytest.mark.parametrize("profile,status,code", [
    ("987654", 404, "not_found"),
    ("{other_profile}", 404, "not_found"),
    ("{other_builtin}", 404, "not_found"),
    ("0", 400, "invalid_request"),
    ("2147483648", 400, "invalid_request"),
    ("99999999999999999999999", 400, "invalid_request"),
], ids=["unknown_id", "other_cpas_profile", "other_cpas_builtin", "zero", "above_int32", "huge"])
def test_profile_id_bad(world: World, method: str, profile: str, status: int, code: str) -> None:
    body = {"version": 1, "description_fr": "X"} if method == "PUT" else None
    refused(world, "operator", method, "/cpas/{C}/profiles/" + profile, body, status, code)


def _update(profile: str, **changes: Any) -> Callable[[World], dict[str, Any]]:
    """A PUT body for one of the world's profiles, with its current version, descriptions and functions."""

    def build(w: World) -> dict[str, Any]:
        pid = w.profiles[profile]
        current = w.client("operator").call("GET", f"/cpas/{DEMO}/profiles/{pid}").get_json()
        body: dict[str, Any] = {"version": current["version"], "description_fr": current["description_fr"],
                                "description_nl": current["description_nl"], "functions": current["functions"],
                                "includes": current["includes"]}
        for k, v in changes.items():
            if v is _DROP:
                body.pop(k)
            else:
                body[k] = v(w) if callable(v) else v
        return body

    return build


UPDATE_CASES: dict[str, tuple[str, Any, int, str]] = {
    "version_missing": ("rmc1", _update("rmc1", version=_DROP), 400, "invalid_request"),
    "version_string": ("rmc1", _update("rmc1", version="1"), 400, "invalid_request"),
    "version_bool": ("rmc1", _update("rmc1", version=True), 400, "invalid_request"),
    "version_null": ("rmc1", _update("rmc1", version=None), 400, "invalid_request"),
    "version_zero": ("rmc1", _update("rmc1", version=0), 400, "invalid_request"),
    "version_negative": ("rmc1", _update("rmc1", version=-1), 400, "invalid_request"),
    "version_stale": ("rmc1", _update("rmc1", version=lambda w: w.version(w.profiles["rmc1"]) - 1), 409, "conflict"),
    "version_future": ("rmc1", _update("rmc1", version=lambda w: w.version(w.profiles["rmc1"]) + 1), 409,
                       "conflict"),
    "version_huge": ("rmc1", _update("rmc1", version=2**80), 409, "conflict"),
    "neither_description": ("rmc1", _update("rmc1", description_fr=None, description_nl=None), 400,
                            "invalid_request"),
    "descriptions_blank": ("rmc1", _update("rmc1", description_fr=" ", description_nl=_DROP), 400,
                           "invalid_request"),
    "duplicate_fr": ("rmc1", _update("rmc1", description_fr="full"), 409, "duplicate_description"),
    "duplicate_nl_of_builtin": ("rmc1", _update("rmc1", description_nl="alle TOEGANGEN"), 409,
                                "duplicate_description"),
    "functions_string": ("rmc1", _update("rmc1", functions=GOOD_FN), 400, "invalid_request"),
    "function_unknown": ("rmc1", _update("rmc1", functions=["dossier.nonexistent"]), 400, "unknown_function"),
    "function_malformed": ("rmc1", _update("rmc1", functions=["dossier..search"]), 400, "invalid_request"),
    "covered_action": ("rmc1", _update("rmc1", functions=[COVERED_FN]), 400, "invalid_request"),
    "self_inclusion": ("rmc1", _update("rmc1", includes=lambda w: [w.profiles["rmc1"]]), 400, "invalid_request"),
    "cycle_two": ("clignotants", _update("clignotants", includes=lambda w: [w.profiles["admin_clignotants"]]),
                  400, "invalid_request"),
    "cycle_via_includer": ("included", _update("included", includes=lambda w: [w.profiles["includer"]]), 400,
                           "invalid_request"),
    "includes_other_cpas": ("rmc1", _update("rmc1", includes=lambda w: [w.profiles["other_profile"]]), 400,
                            "invalid_request"),
    "includes_unknown": ("rmc1", _update("rmc1", includes=[987654]), 400, "invalid_request"),
    "includes_huge": ("rmc1", _update("rmc1", includes=[2**63]), 400, "invalid_request"),
    "includes_strings": ("rmc1", _update("rmc1", includes=["1"]), 400, "invalid_request"),
    "extra_builtin": ("rmc1", _update("rmc1", builtin=True), 400, "invalid_request"),
    "extra_id": ("rmc1", _update("rmc1", id=1), 400, "invalid_request"),
    "builtin_fewer_functions": ("builtin", _update("builtin", functions=[GOOD_FN]), 409, "builtin_profile"),
    "builtin_no_function": ("builtin", _update("builtin", functions=[]), 409, "builtin_profile"),
    "builtin_includes": ("builtin", _update("builtin", includes=lambda w: [w.profiles["rmc1"]]), 409,
                         "builtin_profile"),
    "builtin_stale": ("builtin", _update("builtin", version=lambda w: w.version(w.profiles["builtin"]) + 5), 409,
                      "conflict"),
}


@pytest.mark.parametrize("profile,body,status,code", list(UPDATE_CASES.values()), ids=list(UPDATE_CASES))
def test_update_profile_refused(world: World, profile: str, body: Any, status: int, code: str) -> None:
    refused(world, "operator", "PUT", "/cpas/{C}/profiles/" + str(world.profiles[profile]), body, status, code)


@pytest.mark.parametrize("profile,code", [("builtin", "builtin_profile"), ("full", "profile_in_use"),
                                          ("clignotants", "profile_in_use"), ("included", "profile_in_use")],
                         ids=["builtin", "assigned", "assigned_and_included", "included_only"])
def test_delete_profile_refused(world: World, profile: str, code: str) -> None:
    err = refused(world, "operator", "DELETE", "/cpas/{C}/profiles/" + str(world.profiles[profile]), None, 409, code)
    if profile in ("full", "clignotants"):
        assert err["message"] == IN_USE_FR
        assert err["details"]["message_nl"]
        assert MARIE in err["details"]["users"] or profile == "clignotants"
    if profile == "included":
        assert world.profiles["includer"] in err["details"]["profiles"]


# -- GET /cpas/{cpas}/users, GET /cpas/{cpas}/audit ----------------------------------------------------
@pytest.mark.parametrize("query", [
    "status=foo", "status=", "status=ACTIVE", "page=0", "page=-1", "page=abc", "page=1.5", "page=1000001",
    "page=99999999999999999999999", "per_page=0", "per_page=100000", "per_page=abc", "lang=en", "q=" + "x" * 101,
], ids=lambda q: q[:20])
def test_list_users_bad_query(world: World, query: str) -> None:
    refused(world, "operator", "GET", "/cpas/{C}/users?" + query, None, 400, "invalid_request")


@pytest.mark.parametrize("query", ["page=0", "page=-2", "page=abc", "per_page=0", "per_page=100000",
                                   "page=99999999999999999999999"], ids=lambda q: q[:20])
def test_audit_bad_query(world: World, query: str) -> None:
    refused(world, "operator", "GET", "/cpas/{C}/audit?" + query, None, 400, "invalid_request")


# -- user routes: unknown users, bad ids --------------------------------------------------------------
USER_ROUTES = {
    "get_user": ("GET", "/cpas/{C}/users/%s", None),
    "assign_profiles": ("PUT", "/cpas/{C}/users/%s/profiles", {"profiles": []}),
    "deactivate": ("POST", "/cpas/{C}/users/%s/deactivate", None),
    "reactivate": ("POST", "/cpas/{C}/users/%s/reactivate", None),
}


@pytest.mark.parametrize("route", list(USER_ROUTES))
@pytest.mark.parametrize("user,status,code", [
    ("never-seen", 404, "not_found"),
    ("other-user", 404, "not_found"),  # a user of the other CPAS
    ("1" * 129, 400, "invalid_request"),
    ("a%20b", 400, "invalid_request"),
    ("%C3%A9", 400, "invalid_request"),
    (MARIE + "%0A", 400, "invalid_request"),
], ids=["unknown_user", "user_of_other_cpas", "too_long", "space", "accent", "trailing_newline"])
def test_user_route_bad_user(world: World, route: str, user: str, status: int, code: str) -> None:
    method, url, body = USER_ROUTES[route]
    refused(world, "operator", method, url % user, body, status, code)


# -- PUT /cpas/{cpas}/users/{user}/profiles -------------------------------------------------------------
ASSIGN_CASES: dict[str, tuple[str, Any, int, str]] = {
    "missing_profiles": (LUC, {}, 400, "invalid_request"),
    "profiles_null": (LUC, {"profiles": None}, 400, "invalid_request"),
    "profiles_int": (LUC, {"profiles": 1}, 400, "invalid_request"),
    "profiles_object": (LUC, {"profiles": {"id": 1}}, 400, "invalid_request"),
    "profile_id_string": (LUC, {"profiles": ["{rmc1}"]}, 400, "invalid_request"),
    "profile_id_bool": (LUC, {"profiles": [True]}, 400, "invalid_request"),
    "profile_id_float": (LUC, {"profiles": [1.0]}, 400, "invalid_request"),
    "profile_id_zero": (LUC, {"profiles": [0]}, 400, "invalid_request"),
    "profile_id_negative": (LUC, {"profiles": [-4]}, 400, "invalid_request"),
    "profile_id_null": (LUC, {"profiles": [None]}, 400, "invalid_request"),
    "too_many": (LUC, {"profiles": list(range(1, 202))}, 400, "invalid_request"),
    "extra_field": (LUC, {"profiles": [], "active": True}, 400, "invalid_request"),
    "body_list": (LUC, [1], 400, "invalid_request"),
    "unknown_profile": (LUC, {"profiles": [987654]}, 400, "invalid_request"),
    "huge_profile_id": (LUC, {"profiles": [2**63]}, 400, "invalid_request"),
    "very_huge_profile_id": (LUC, {"profiles": [10**40]}, 400, "invalid_request"),
    "other_cpas_profile": (LUC, lambda w: {"profiles": [w.profiles["rmc1"], w.profiles["other_profile"]]}, 400,
                           "invalid_request"),
    "other_cpas_builtin": (MARIE, lambda w: {"profiles": [w.profiles["other_builtin"]]}, 400, "invalid_request"),
    "inactive_user": (RENARD, lambda w: {"profiles": [w.profiles["rmc1"]]}, 409, "conflict"),
    "inactive_user_empty_list": (RENARD, {"profiles": []}, 409, "conflict"),
    "unknown_user": ("never-seen", lambda w: {"profiles": [w.profiles["rmc1"]]}, 404, "not_found"),
}


@pytest.mark.parametrize("user,body,status,code", list(ASSIGN_CASES.values()), ids=list(ASSIGN_CASES))
def test_assign_profiles_refused(world: World, user: str, body: Any, status: int, code: str) -> None:
    refused(world, "operator", "PUT", f"/cpas/{{C}}/users/{user}/profiles", body, status, code)
