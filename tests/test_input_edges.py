"""Input at the edges, on SQLite and on PostgreSQL. What was measured on the code before
authz_service/inputs.py, and is refused now:

* JSON nested ~1,000 levels deep (2 KB) -> 400 invalid_request on every JSON route (was 500, RecursionError)
* control characters in query parameters, path segments and web form fields -> 400 (was 200, or 503 on
  PostgreSQL, which refuses NUL in strings); in JSON strings they were refused already (kept as controls)
* KBO numbers with non-ASCII digits ("0\u066207196354") -> 400 (was 201: a CPAS with that id); profile ids
  in the path likewise (Werkzeug read "/profiles/\u0661" as profile 1)
* zero-width and bidi characters in descriptions and names -> 400; descriptions unique after NFKC and
  case folding (was 201: "Full" + U+200B beside "Full"); a key longer than its column (casefolded
  "\u00df" is "ss") -> stored (was 503 on PostgreSQL)
* a chunked body over the limit -> 413 payload_too_large (Werkzeug cut it at the limit: 400, or the cut
  body was used when it still parsed)
* JSON bodies only as application/json, charset utf-8 at most, in UTF-8 -> else 400 (application/jsonp
  was served by the lean /enforce path, application/vnd.api+json and UTF-16 bodies by every route)

As in tests/test_api_bad_input.py, one world per module (and backend) serves every case, and every
refused request is checked to change nothing: the database (every table) and the engine (every decision
of every known user) are the same after it as before.
"""

from __future__ import annotations

import io
import json
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest

from authz_service import create_app
from authz_service.admin import description_key
from authz_service.cli import init_db, seed_demo
from authz_service.config import load_settings
from authz_service.inputs import (
    MAX_JSON_DEPTH,
    clean_text,
    comparison_key,
    is_json_content_type,
    json_too_deep,
)
from authz_service.models import AdminAccount
from authz_service.schemas import parse_kbo
from authz_service.security import hash_password, new_api_key
from authz_service.service import Service
from authz_service.store import Store

from .conftest import IN_CI, _postgres_available, postgres_schema
from .test_api_bad_input import DEMO, GOOD_FN, LUC, MARIE, NEW_USER, UNKNOWN_1, assert_error, decisions, dump, kbo

PASSWORD = "correct horse battery"
OPERATOR = "operateur"
LIMIT = 2 * 1024 * 1024  # Settings.max_body_bytes
TOKEN_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"')
DEEP = MAX_JSON_DEPTH * 30  # ~1,000 levels


# -- world ----------------------------------------------------------------------------------------------
@dataclass
class World:
    backend: str
    app: Any
    service: Service
    key: str
    profiles: dict[str, int]
    web: Any  # a test client signed in to the web UI as an operator

    def api(self, method: str, url: str, body: Any = None, *, data: Any = None,
            content_type: str | None = "application/json", headers: dict[str, str] | None = None,
            **kwargs: Any) -> Any:
        """One request with the operator's key; ``body`` is sent as JSON, ``data`` as it is."""
        if body is not None:
            data = json.dumps(body(self) if callable(body) else body)
        sent = {"Authorization": f"Bearer {self.key}", **(headers or {})}
        if data is not None and content_type is not None:
            kwargs["content_type"] = content_type
        return self.app.test_client().open(url.format(C=DEMO, **self.profiles), method=method, data=data,
                                           headers=sent, **kwargs)

    def version(self, profile: str) -> int:
        return int(self.api("GET", f"/cpas/{{C}}/profiles/{{{profile}}}").get_json()["version"])


def _signed_in(app: Any) -> Any:
    client = app.test_client()
    response = client.post("/ui/login", data={"username": OPERATOR, "password": PASSWORD,
                                              "csrf_token": csrf_token(client, "/ui/login")})
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    return client


def csrf_token(client: Any, url: str) -> str:
    html = client.get(url).get_data(as_text=True)
    match = TOKEN_RE.search(html)
    assert match, html[:2000]
    return match.group(1) or match.group(2)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    backend = str(request.param)
    schema = None
    if backend == "postgres":
        problem = _postgres_available()
        if problem:
            if IN_CI:
                pytest.fail(f"PostgreSQL is required in CI: {problem}")
            pytest.skip(f"PostgreSQL not available: {problem}")
        schema = f"t_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        url = postgres_schema(schema)
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('input_edges') / 'authz.sqlite3'}"
    overrides = {"database_url": url, "poll_interval": 0, "secret_key": "test-secret"}
    settings = load_settings(overrides)
    init_db(settings)
    app = create_app(overrides, start_polling=False)
    app.config["TESTING"] = True
    service: Service = app.extensions["authz"]
    assert str(seed_demo(settings)["cpas_id"]) == DEMO
    service.sync()
    with service.db.transaction() as session:
        store = Store(session)
        key = new_api_key(store, "input edges", ("enforce", "users", "admin"), None)
        store.add_admin(AdminAccount(username=OPERATOR, password_hash=hash_password(PASSWORD), operator=True,
                                     lang="fr", cpas=[]))

    def ids(store: Store) -> dict[str, int]:
        by_label = {(p.description_fr or p.description_nl): p.id for p in store.profiles(DEMO)}
        return {"full": by_label["Full"], "rmc1": by_label["RMC-1"],
                "director": by_label["Directeur général / Secrétaire"]}

    world = World(backend=backend, app=app, service=service, key=key, profiles=service.read(ids),
                  web=_signed_in(app))
    yield world
    service.close()
    if schema is not None:
        postgres_schema(schema, drop=True)


# -- "nothing changed" ----------------------------------------------------------------------------------
def state(world: World) -> tuple[dict[str, Any], dict[str, Any]]:
    rows = dump(world.service)
    return rows, decisions(world.service, [(u[0], u[1]) for u in rows["users"]])


def assert_unchanged(world: World, before: tuple[dict[str, Any], dict[str, Any]]) -> None:
    after = state(world)
    if after != before:
        changed = [table for table in before[0] if before[0][table] != after[0][table]]
        raise AssertionError(f"the request changed the database ({changed}) or the engine")


def refused(world: World, status: int, code: str, method: str, url: str, body: Any = None,
            **kwargs: Any) -> dict[str, Any]:
    """The JSON API refuses the request with ``status``/``code`` in its envelope; nothing changed."""
    before = state(world)
    resp = world.api(method, url, body, **kwargs)
    err = assert_error(resp, status, code)
    assert_unchanged(world, before)
    return err


def refused_page(world: World, status: int, send: Callable[[], Any]) -> str:
    """The web UI refuses with ``status`` and an HTML page; nothing changed."""
    before = state(world)
    resp = send()
    text = resp.get_data(as_text=True)
    assert (resp.status_code, resp.mimetype) == (status, "text/html"), (resp.status_code, text[:2000])
    assert "Traceback" not in text
    assert_unchanged(world, before)
    return text


# -- the JSON routes --------------------------------------------------------------------------------------
def _update_body(w: World) -> dict[str, Any]:
    return {"version": w.version("rmc1"), "description_fr": "RMC-1 bis", "functions": [GOOD_FN]}


# a valid body for each: what a wrong Content-Type would otherwise get through
JSON_ROUTES: dict[str, tuple[str, str, Any]] = {
    "enforce": ("POST", "/enforce", {"cpas": DEMO, "user": MARIE, "function": GOOD_FN}),
    "enforce_batch": ("POST", "/enforce/batch", {"requests": [{"id": 1, "cpas": DEMO, "user": MARIE,
                                                               "function": GOOD_FN}]}),
    "user_seen": ("PUT", "/cpas/{C}/users/" + NEW_USER, {"name": "Nouvel Utilisateur", "lang": "fr"}),
    "create_cpas": ("POST", "/cpas", {"cpas": UNKNOWN_1, "name_fr": "CPAS X", "name_nl": "OCMW X",
                                      "region": "wallonia"}),
    "create_profile": ("POST", "/cpas/{C}/profiles", {"description_fr": "Nouveau", "functions": [GOOD_FN]}),
    "update_profile": ("PUT", "/cpas/{C}/profiles/{rmc1}", _update_body),
    "assign_profiles": ("PUT", "/cpas/{C}/users/" + LUC + "/profiles", lambda w: {"profiles": [w.profiles["full"]]}),
}


def nested(depth: int, kind: str = "arrays") -> bytes:
    if kind == "arrays":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


DEEP_BODIES = {
    "arrays": nested(DEEP),
    "objects": nested(DEEP, "objects"),
    "in_a_field": b'{"cpas": ' + nested(DEEP) + b', "user": "u", "function": "dossier.search"}',
    "mixed": b'{"requests": [' + b'{"a": [' * (DEEP // 2) + b"1" + b"]}" * (DEEP // 2) + b"]}",
    "never_closed": b"[" * 5000,
    "one_level_too_many": nested(MAX_JSON_DEPTH + 1),
}


# -- 1. JSON depth ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("route", list(JSON_ROUTES))
@pytest.mark.parametrize("kind", list(DEEP_BODIES))
def test_json_nested_too_deep(world: World, route: str, kind: str) -> None:
    method, url, _ = JSON_ROUTES[route]
    err = refused(world, 400, "invalid_request", method, url, data=DEEP_BODIES[kind])
    assert f"more than {MAX_JSON_DEPTH} levels deep" in err["message"]


def test_json_at_the_depth_limit_is_parsed(world: World) -> None:
    """Control: 32 levels are parsed (and refused for what they say, not for their depth); brackets in
    strings, escaped quotes included, do not count."""
    body = b'{"cpas": ' + nested(MAX_JSON_DEPTH - 1) + b', "user": "u", "function": "dossier.search"}'
    err = refused(world, 400, "invalid_request", "POST", "/enforce", data=body)
    assert "levels deep" not in err["message"] and "cpas" in err["message"]
    many = json.dumps({"cpas": DEMO, "user": '\\"' + "[{" * 1000, "function": GOOD_FN}).encode()
    err = refused(world, 400, "invalid_request", "POST", "/enforce", data=many)
    assert "levels deep" not in err["message"] and "user" in err["message"]
    batch = {"requests": [{"id": str(i), "cpas": DEMO, "user": MARIE, "function": GOOD_FN} for i in range(500)]}
    resp = world.api("POST", "/enforce/batch", batch)
    assert resp.status_code == 200 and len(resp.get_json()["results"]) == 500


# -- 2. control characters ------------------------------------------------------------------------------
CONTROL_QUERIES = {
    "users_q_nul": "/cpas/{C}/users?q=%00",
    "users_q_inner_nul": "/cpas/{C}/users?q=ma%00rie",
    "users_q_bell": "/cpas/{C}/users?q=a%07b",
    "users_q_del": "/cpas/{C}/users?q=%7F",
    "users_q_c1_nel": "/cpas/{C}/users?q=%C2%85",
    "users_q_newline": "/cpas/{C}/users?q=marie%0A",
    "users_lang_nul": "/cpas/{C}/users?lang=fr%00",
    "unknown_param_nul": "/cpas/{C}/profiles?x=%00",
    "param_name_nul": "/cpas/{C}/profiles?%00=1",
    "functions_lang_nul": "/cpas/{C}/users/" + MARIE + "/functions?lang=%00",
    "catalog_lang_tab": "/catalog?lang=fr%09",
    "audit_unknown_nul": "/cpas/{C}/audit?page=1&x=%00",
    "user_path_nul": "/cpas/{C}/users/%00",
    "cpas_path_nul": "/cpas/%00/profiles",
    "enforce_query_nul": "/enforce?x=%00",
}


@pytest.mark.parametrize("url", list(CONTROL_QUERIES.values()), ids=list(CONTROL_QUERIES))
def test_control_characters_in_query_and_path(world: World, url: str) -> None:
    method = "POST" if url.startswith("/enforce") else "GET"
    body = JSON_ROUTES["enforce"][2] if method == "POST" else None
    refused(world, 400, "invalid_request", method, url, body)


CONTROL_BODIES: dict[str, tuple[str, str, Any]] = {
    "description_nul": ("POST", "/cpas/{C}/profiles", {"description_fr": "Nou\x00veau", "functions": [GOOD_FN]}),
    "description_lone_surrogate": ("POST", "/cpas/{C}/profiles", {"description_fr": "Nouveau \ud800"}),
    "description_c1": ("POST", "/cpas/{C}/profiles", {"description_nl": "Nieuw\x85"}),
    "update_description_surrogate": ("PUT", "/cpas/{C}/profiles/{rmc1}",
                                     lambda w: {**_update_body(w), "description_nl": "\udfff"}),
    "user_name_nul": ("PUT", "/cpas/{C}/users/" + NEW_USER, {"name": "Nouvel\x00", "lang": "fr"}),
    "user_name_surrogate": ("PUT", "/cpas/{C}/users/" + MARIE, {"name": "Marie \ud83d", "lang": "fr"}),
    "cpas_name_nul": ("POST", "/cpas", {"cpas": UNKNOWN_1, "name_fr": "CPAS\x00", "name_nl": "OCMW",
                                        "region": "wallonia"}),
    "cpas_name_surrogate": ("POST", "/cpas", {"cpas": UNKNOWN_1, "name_fr": "CPAS", "name_nl": "OCMW \udc00",
                                              "region": "wallonia"}),
    "enforce_user_nul": ("POST", "/enforce", {"cpas": DEMO, "user": "marie\x00", "function": GOOD_FN}),
    "enforce_cpas_nul": ("POST", "/enforce", {"cpas": DEMO + "\x00", "user": MARIE, "function": GOOD_FN}),
}


@pytest.mark.parametrize("case", list(CONTROL_BODIES))
def test_control_characters_in_json_strings(world: World, case: str) -> None:
    method, url, body = CONTROL_BODIES[case]
    refused(world, 400, "invalid_request", method, url, body)


def _login(world: World, username: str, password: str) -> Any:
    client = world.app.test_client()
    token = csrf_token(client, "/ui/login")
    return client.post("/ui/login", data={"username": username, "password": password, "csrf_token": token})


@pytest.mark.parametrize("username,password", [
    (OPERATOR + "\x00", PASSWORD), ("\x00", "x"), (OPERATOR, PASSWORD + "\x00"), (OPERATOR, "\x1b[31m"),
    ("op\x85", PASSWORD),
], ids=["username_nul", "only_nul", "password_nul", "password_escape", "username_c1"])
def test_control_characters_in_the_login_form(world: World, username: str, password: str) -> None:
    refused_page(world, 400, lambda: _login(world, username, password))


WEB_QUERIES = {
    "choose_cpas": "/ui/cpas?q=%00",
    "home_search": "/ui/cpas/{C}/?q=%00",
    "home_search_inner": "/ui/cpas/{C}/?q=ma%00rie&page=1",
    "inactive_search": "/ui/cpas/{C}/users/inactive?q=%01",
    "audit_actor": "/ui/cpas/{C}/audit?actor=%00",
    "audit_action": "/ui/cpas/{C}/audit?action=profile.create%00",
    "cpas_path": "/ui/cpas/%00/",
    "user_path": "/ui/cpas/{C}/users/%00/print",
    "login_next": "/ui/login?next=%00",
}


@pytest.mark.parametrize("url", list(WEB_QUERIES.values()), ids=list(WEB_QUERIES))
def test_control_characters_in_web_queries_and_paths(world: World, url: str) -> None:
    refused_page(world, 400, lambda: world.web.get(url.format(C=DEMO)))


def test_control_characters_in_a_web_profile_form(world: World) -> None:
    url = f"/ui/cpas/{DEMO}/profiles/new"
    token = csrf_token(world.web, url)
    refused_page(world, 400, lambda: world.web.post(url, data={
        "csrf_token": token, "description_fr": "Nou\x00veau", "functions": GOOD_FN, "action": "save"}))


def test_web_search_without_control_characters_still_works(world: World) -> None:
    """Control: the same pages answer with ordinary text."""
    for url in ("/ui/cpas?q=cpas", f"/ui/cpas/{DEMO}/?q=marie", f"/ui/cpas/{DEMO}/audit?actor=x"):
        response = world.web.get(url)
        assert response.status_code == 200, (url, response.status_code)
    assert world.api("GET", "/cpas/{C}/users?q=marie%20l").status_code == 200


# -- 3. KBO numbers: ASCII digits only ---------------------------------------------------------------------
NON_ASCII_KBO = {
    "arabic_indic": "0٢07196354",
    "extended_arabic_indic": "0۲07196354",
    "devanagari": "0२07196354",
    "fullwidth_after_the_first": "0２07196354",
    "dotted_arabic_indic": "0٢07.196.354",
    "all_arabic_indic_but_first": "0" + "".join(chr(0x0660 + int(d)) for d in DEMO[1:]),
}


@pytest.mark.parametrize("number", list(NON_ASCII_KBO.values()), ids=list(NON_ASCII_KBO))
def test_kbo_with_non_ascii_digits(world: World, number: str) -> None:
    with pytest.raises(ValueError):
        parse_kbo(number)
    refused(world, 400, "invalid_request", "POST", "/cpas",
            {"cpas": number, "name_fr": "CPAS X", "name_nl": "OCMW X", "region": "wallonia"})
    refused(world, 400, "invalid_request", "POST", "/enforce", {"cpas": number, "user": MARIE, "function": GOOD_FN})
    refused(world, 400, "invalid_request", "GET", f"/cpas/{quote(number)}/profiles")


@pytest.mark.parametrize("digit", ["%D9%A1", "%EF%BC%91", "%E0%A5%A7"], ids=["arabic_indic", "fullwidth", "devanagari"])
def test_profile_id_with_non_ascii_digits(world: World, digit: str) -> None:
    """Werkzeug's int converter reads "/profiles/١" as profile 1: refused, in the API and the web UI."""
    for method in ("GET", "PUT", "DELETE"):
        refused(world, 400, "invalid_request", method, "/cpas/{C}/profiles/" + digit,
                {"version": 1, "description_fr": "X"} if method == "PUT" else None)
    refused_page(world, 400, lambda: world.web.get(f"/ui/cpas/{DEMO}/profiles/{digit}"))
    refused_page(world, 400, lambda: world.web.get(f"/ui/cpas/{DEMO}/profiles/{digit}/print"))


# -- 4. descriptions and names ----------------------------------------------------------------------------
INVISIBLE = {
    "zwsp_end": "Full\u200b", "zwsp_start": "\u200bFull", "zwnj": "Fu\u200cll", "zwj": "Fu\u200dll",
    "word_joiner": "Full\u2060", "bom": "\ufeffFull", "lre": "\u202aFull", "rle": "Full\u202b",
    "pdf": "Full\u202c", "lro": "\u202dFull", "rlo": "\u202eFull", "lri": "\u2066Full", "rli": "\u2067Full",
    "fsi": "\u2068Full", "pdi": "Full\u2069", "lrm": "Full\u200e", "rlm": "Full\u200f", "alm": "Full\u061c",
    "soft_hyphen": "Fu\u00adll",
}


@pytest.mark.parametrize("text", list(INVISIBLE.values()), ids=list(INVISIBLE))
def test_invisible_characters_in_descriptions(world: World, text: str) -> None:
    for lang in ("fr", "nl"):
        refused(world, 400, "invalid_request", "POST", "/cpas/{C}/profiles",
                {f"description_{lang}": text, "functions": [GOOD_FN]})
    refused(world, 400, "invalid_request", "PUT", "/cpas/{C}/profiles/{rmc1}",
            lambda w: {**_update_body(w), "description_fr": text})


@pytest.mark.parametrize("text", ["CPAS\u200b", "\u202eCPAS", "CP\u2066AS\u2069"], ids=["zwsp", "rlo", "isolate"])
def test_invisible_characters_in_names(world: World, text: str) -> None:
    refused(world, 400, "invalid_request", "POST", "/cpas",
            {"cpas": UNKNOWN_1, "name_fr": text, "name_nl": "OCMW", "region": "wallonia"})
    for user in (NEW_USER, MARIE):
        refused(world, 400, "invalid_request", "PUT", f"/cpas/{{C}}/users/{user}", {"name": text, "lang": "fr"})


def test_blank_cpas_name(world: World) -> None:
    refused(world, 400, "invalid_request", "POST", "/cpas",
            {"cpas": UNKNOWN_1, "name_fr": "   ", "name_nl": "OCMW", "region": "wallonia"})


NORMALISED_DUPLICATES = {
    "fullwidth": {"description_fr": "Ｆｕｌｌ"},
    "mathematical_bold": {"description_fr": "𝐅𝐮𝐥𝐥"},
    "decomposed_accents": {"description_fr": "Directeur ge\u0301ne\u0301ral / Secre\u0301taire"},
    "decomposed_accents_upper": {"description_fr": "DIRECTEUR GE\u0301NE\u0301RAL / SECRE\u0301TAIRE"},
    "fullwidth_hyphen": {"description_fr": "ＲＭＣ－１"},
    "no_break_spaces": {"description_fr": "Directeur\u00a0général\u202f/ Secrétaire"},
}


@pytest.mark.parametrize("descriptions", list(NORMALISED_DUPLICATES.values()), ids=list(NORMALISED_DUPLICATES))
def test_duplicates_after_normalisation(world: World, descriptions: dict[str, str]) -> None:
    refused(world, 409, "duplicate_description", "POST", "/cpas/{C}/profiles", {"functions": [GOOD_FN], **descriptions})


def test_descriptions_and_names_are_stored_nfc(world: World) -> None:
    """Accepted texts are stored NFC, their keys NFKC-casefolded; a key longer than its column (a
    casefolded "ß" is "ss") still fits and stays unique. These requests write, then are undone."""
    created = world.api("POST", "/cpas/{C}/profiles", {"description_fr": "Cafe\u0301  du coin",
                                                        "description_nl": "ß" * 200, "functions": [GOOD_FN]})
    assert created.status_code == 201, created.get_data(as_text=True)
    body = created.get_json()
    try:
        assert body["description_fr"] == "Café du coin" and body["description_nl"] == "ß" * 200
        row = world.service.read(lambda s: s.get_profile(DEMO, body["id"]))
        assert row.key_fr == "café du coin"
        assert len(row.key_nl) == 200 and row.key_nl.startswith("ss" * 60)
        again = world.api("POST", "/cpas/{C}/profiles", {"description_nl": "\u1e9e" * 200, "functions": [GOOD_FN]})
        assert_error(again, 409, "duplicate_description")
        other = world.api("POST", "/cpas/{C}/profiles", {"description_nl": "ß" * 199 + "t", "functions": [GOOD_FN]})
        assert other.status_code == 201, other.get_data(as_text=True)
        assert world.api("DELETE", f"/cpas/{{C}}/profiles/{other.get_json()['id']}").status_code == 204
    finally:
        assert world.api("DELETE", f"/cpas/{{C}}/profiles/{body['id']}").status_code == 204
    seen = world.api("PUT", "/cpas/{C}/users/nfc-user", {"name": "Ame\u0301lie  Dupont", "lang": "fr"})
    assert seen.status_code in (200, 201) and seen.get_json()["name"] == "Amélie Dupont"


def _profile_form(world: World, description: str) -> Any:
    url = f"/ui/cpas/{DEMO}/profiles/new"
    token = csrf_token(world.web, url)
    return world.web.post(url, data={"csrf_token": token, "description_fr": description, "functions": GOOD_FN,
                                     "action": "save"})


@pytest.mark.parametrize("text", ["Full\u200b", "\u202eNouveau", "Nou\u2066veau\u2069"], ids=["zwsp", "rlo", "isolate"])
def test_invisible_characters_in_the_web_profile_form(world: World, text: str) -> None:
    html = refused_page(world, 400, lambda: _profile_form(world, text))
    assert "caractères invisibles" in html


@pytest.mark.parametrize("text", ["Ｆｕｌｌ", "Directeur ge\u0301ne\u0301ral / Secre\u0301taire"],
                         ids=["fullwidth", "decomposed"])
def test_duplicates_after_normalisation_in_the_web_profile_form(world: World, text: str) -> None:
    html = refused_page(world, 409, lambda: _profile_form(world, text))
    assert "Un autre profil de ce CPAS porte déjà la description" in html


# -- 5. chunked bodies --------------------------------------------------------------------------------------
def chunked(world: World, method: str, url: str, payload: bytes, *, terminated: bool = True,
            content_type: str = "application/json") -> Any:
    """As gunicorn hands a chunked body over: no Content-Length, the de-chunked stream, and
    ``wsgi.input_terminated`` (gunicorn sets it on every request; Werkzeug's server on chunked ones)."""
    overrides = {"wsgi.input_terminated": True} if terminated else {}
    return world.api(method, url, headers={"Transfer-Encoding": "chunked", "Content-Type": content_type},
                     content_type=None, input_stream=io.BytesIO(payload), environ_overrides=overrides)


def padded(body: dict[str, Any], size: int) -> bytes:
    raw = json.dumps(body).encode()
    return raw + b" " * (size - len(raw))


@pytest.mark.parametrize("route", list(JSON_ROUTES))
def test_chunked_body_over_the_limit(world: World, route: str) -> None:
    method, url, body = JSON_ROUTES[route]
    payload = padded(body(world) if callable(body) else body, 3 * 1024 * 1024)
    before = state(world)
    resp = chunked(world, method, url.format(C=DEMO, **world.profiles), payload)
    assert_error(resp, 413, "payload_too_large")
    assert_unchanged(world, before)


def test_chunked_body_at_the_limit(world: World) -> None:
    """Control: a chunked body of exactly the limit is read whole; one byte more is too large."""
    body = {"cpas": DEMO, "user": MARIE, "function": GOOD_FN}
    plain = world.api("POST", "/enforce", body)
    for size in (len(json.dumps(body)), LIMIT):
        resp = chunked(world, "POST", "/enforce", padded(body, size))
        assert (resp.status_code, resp.get_json()) == (200, plain.get_json())
    assert_error(chunked(world, "POST", "/enforce", padded(body, LIMIT + 1)), 413, "payload_too_large")


def test_chunked_web_form_over_the_limit(world: World) -> None:
    payload = b"username=" + b"x" * (3 * 1024 * 1024)
    refused_page(world, 413, lambda: world.web.post(
        "/ui/login", headers={"Transfer-Encoding": "chunked"}, input_stream=io.BytesIO(payload),
        environ_overrides={"wsgi.input_terminated": True}, content_type="application/x-www-form-urlencoded"))


# -- 6. Content-Type -----------------------------------------------------------------------------------------
BAD_TYPES = ["application/jsonp", "application/json-seq", "application/jsonx", "application/vnd.api+json",
             "application/problem+json", "application/json; charset=latin-1", "application/json; charset=utf-16",
             "application/json; foo=bar", "application/json; charset=utf-8; foo=bar", "text/json",
             "application/x-json", "text/plain", "application/json-patch+json"]
GOOD_TYPES = ["application/json", "application/json; charset=utf-8", "application/json;charset=UTF-8",
              'application/json; charset="utf-8"', "Application/JSON"]


@pytest.mark.parametrize("route", list(JSON_ROUTES))
@pytest.mark.parametrize("content_type", BAD_TYPES)
def test_only_application_json(world: World, route: str, content_type: str) -> None:
    method, url, body = JSON_ROUTES[route]
    err = refused(world, 400, "invalid_request", method, url, body, content_type=content_type)
    assert "application/json" in err["message"]


@pytest.mark.parametrize("content_type", GOOD_TYPES)
def test_application_json_with_charset_utf8(world: World, content_type: str) -> None:
    resp = world.api("POST", "/enforce", JSON_ROUTES["enforce"][2], content_type=content_type)
    assert resp.status_code == 200 and resp.get_json()["allowed"] is True


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_json_body_must_be_utf8(world: World, encoding: str) -> None:
    data = json.dumps({"cpas": DEMO, "user": MARIE, "function": GOOD_FN}).encode(encoding)
    refused(world, 400, "invalid_request", "POST", "/enforce", data=data)
    ok = world.api("POST", "/enforce", data=b"\xef\xbb\xbf" + json.dumps(JSON_ROUTES["enforce"][2]).encode())
    assert ok.status_code == 200  # a UTF-8 byte-order mark is tolerated


# -- the helpers on their own -------------------------------------------------------------------------------
@pytest.mark.parametrize("value,expected", [
    ("application/json", True), ("application/json; charset=utf-8", True), ("APPLICATION/JSON;CHARSET=UTF-8", True),
    ('application/json;charset="utf-8"', True), (" application/json ", True),
    (None, False), ("", False), ("application/jsonp", False), ("application/json-seq", False),
    ("application/vnd.api+json", False), ("application/json; charset=latin-1", False),
    ('application/json; charset="utf-8', False), ("application/json; charset=utf-8; x=y", False),
    ("application/json;", False), ("text/json", False), ("application/json\x00", False),
])
def test_is_json_content_type(value: str | None, expected: bool) -> None:
    assert is_json_content_type(value) is expected


@pytest.mark.parametrize("raw,deep", [
    (b"{}", False), (nested(MAX_JSON_DEPTH), False), (nested(MAX_JSON_DEPTH + 1), True),
    (nested(MAX_JSON_DEPTH, "objects"), False), (nested(MAX_JSON_DEPTH + 1, "objects"), True),
    (json.dumps({"a": "[" * 500}).encode(), False), (json.dumps({"a": '\\"]' + "{" * 500}).encode(), False),
    (json.dumps(["[\u00e9\u4e2d" * 100] * 100).encode(), False), (b"[" * 33, True), (b"]" * 100, False),
    (b'"' + b"[" * 100, True), (json.dumps([[["x"] * 40] * 40]).encode(), False),
])
def test_json_too_deep(raw: bytes, deep: bool) -> None:
    assert json_too_deep(raw) is deep
    if not deep and raw.endswith((b"]", b"}")) and raw[0:1] in (b"[", b"{"):
        json.loads(raw)  # the valid ones are valid


def test_clean_text_and_comparison_key() -> None:
    assert clean_text("  Cafe\u0301 \u00a0 du coin ") == "Café du coin"
    for bad in ("a\x00", "a\ud800", "a\u200b", "\u202ea", "a\u00ad"):
        with pytest.raises(ValueError):
            clean_text(bad)
    assert comparison_key("ＦＵＬＬ\u200b  Profil") == comparison_key("full profil") == "full profil"
    assert comparison_key("Stra\u00dfe") == comparison_key("STRASSE")
    assert len(comparison_key("ß" * 200)) == 200 and comparison_key("ß" * 200) != comparison_key("ß" * 199 + "s")
    assert description_key(None) is None and description_key("") is None and description_key("\u200b") is None
    assert description_key("  Full ") == "full"


def test_depth_scan_is_quick_at_the_size_limit() -> None:
    started = time.perf_counter()
    assert json_too_deep(b"[" * (LIMIT // 2) + b"]" * (LIMIT // 2))
    assert not json_too_deep(json.dumps({"a": "x" * LIMIT}).encode())
    assert not json_too_deep(json.dumps({"a": '\\"' * (LIMIT // 4)}).encode())
    assert not json_too_deep(b"[]" * (LIMIT // 2))
    assert json_too_deep(b'"' + b"[" * LIMIT)
    assert time.perf_counter() - started < 2.0


def test_kbo_ascii_forms_still_parse() -> None:
    assert parse_kbo("0207196354") == parse_kbo("0207.196.354") == "0207196354"
    assert parse_kbo(kbo("10000000")) == kbo("10000000")
    for bad in ("0207196354\n", "0207196354\u0660"):
        with pytest.raises(ValueError):
            parse_kbo(bad)



@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
@pytest.mark.parametrize("key", ["azk_abc\x00def_secret", "azk_abcdef_sec\x00ret", "azk_ABC_x", "azk_abc_s\u00e9cret"])
def test_a_stray_character_in_the_api_key_is_a_401_on_every_backend(app: Any, key: str) -> None:
    answer = app.test_client().get("/catalog", headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 401 and answer.get_json()["error"]["code"] == "unauthenticated"
