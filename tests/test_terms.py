"""Time-bound assignments (issue 14): an assignment holds from ``valid_from`` until ``valid_until`` and the
engine decides by the instant exactly, with an injected clock (never the wall clock, never a sleep).

- the engine alone: random graphs with random terms, decided at random instants, against a full build from
  the links that hold then (a term is nothing but a link present or absent), derived step after step
  (``with_changes``, ``at_instant``), and against stock pycasbin on those links;
- the service through the HTTP API on SQLite and PostgreSQL: a PUT with ``valid_until``, ``/enforce``,
  ``/enforce/batch`` and the functions route one second before and after the end (``assignment_expired``,
  ``next_change``, a new ETag), ``policy.csv`` at several instants against stock pycasbin, ``?at=`` from the
  history, the expiry written once to Admin-Logs and the history whatever the number of recorders.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import casbin
import pytest
from sqlalchemy import text

from authz_service.engine import CpasPolicy, Rules
from authz_service.store import policy_csv
from authz_service.terms import BRUSSELS, Assignment, Term, end_of, parse_bound, start_of

from .clock import Clock
from .test_admin import ACTOR, LIST, SEARCH, make_cpas, make_profile, make_user
from .test_incremental import ACTIONS, RULES, random_parents

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_800_000_000.0  # an instant of 2027


# -- terms.py ----------------------------------------------------------------------------------------------
def test_dates_are_brussels_days() -> None:
    assert end_of(date(2027, 1, 31)) == datetime(2027, 1, 31, 23, 0, tzinfo=UTC)  # winter: UTC+1
    assert end_of(date(2027, 7, 31)) == datetime(2027, 7, 31, 22, 0, tzinfo=UTC)  # summer: UTC+2
    assert start_of(date(2027, 3, 28)) == datetime(2027, 3, 27, 23, 0, tzinfo=UTC)  # the day the clocks go forward
    assert parse_bound("2027-01-31", end=True) == end_of(date(2027, 1, 31))
    assert parse_bound("2027-01-31", end=False) == start_of(date(2027, 1, 31))
    assert parse_bound("2027-01-31T17:00:00+01:00", end=True) == datetime(2027, 1, 31, 16, tzinfo=UTC)
    assert parse_bound("2027-01-31T16:00:00Z", end=False) == datetime(2027, 1, 31, 16, tzinfo=UTC)
    for bad in ("2027-01-31T17:00:00", "2027-02-30", "31/01/2027", "", "tomorrow"):
        with pytest.raises(ValueError):
            parse_bound(bad, end=True)


def test_a_term_holds_from_its_start_until_its_end_excluded() -> None:
    term = Term(T0, T0 + 10)
    assert [term.holds(T0 + d) for d in (-1e-6, 0, 9.999999, 10, 11)] == [False, True, True, False, False]
    assert term.next_change(T0 - 5) == T0 and term.next_change(T0) == T0 + 10 and term.next_change(T0 + 10) is None
    assert Term(None, None).holds(0) and Term(None, T0).ended(T0) and not Term(T0, None).ended(T0 + 1e9)


# -- the engine alone --------------------------------------------------------------------------------------
def holding(links: dict[str, list[str]], terms: dict[str, dict[int, Term]], at: float) -> list[tuple[str, str]]:
    """The rows that hold at ``at``: a term is a link present or absent, nothing more."""
    rows = []
    for subject, parents in links.items():
        user_terms = terms.get(subject[len("user:"):], {}) if subject.startswith("user:") else {}
        for parent in parents:
            term = user_terms.get(int(parent[len("profile:"):])) if parent.startswith("profile:") else None
            if term is None or term.holds(at):
                rows.append((subject, parent))
    return rows


def decisions(policy: CpasPolicy, users: list[str]) -> dict[tuple[str, str], bool]:
    return {(u, a): policy.allows(u, a) for u in users for a in ACTIONS}


def random_terms(rng: random.Random, links: dict[str, list[str]]) -> dict[str, dict[int, Term]]:
    terms: dict[str, dict[int, Term]] = {}
    for subject, parents in links.items():
        if not subject.startswith("user:"):
            continue
        for parent in parents:
            if parent.startswith("profile:") and rng.random() < 0.6:
                start = rng.choice([None, T0 + rng.randint(0, 50)])
                end = rng.choice([None, T0 + rng.randint(51, 100), T0 + rng.randint(0, 30)])
                if start is not None and end is not None and end <= start:
                    end = start + 1
                terms.setdefault(subject[len("user:"):], {})[int(parent[len("profile:"):])] = Term(start, end)
    return terms


def test_terms_decide_as_the_links_that_hold_then_and_derive_step_by_step() -> None:
    rng = random.Random(14)
    for _ in range(15):
        profiles = [f"profile:{i}" for i in range(8)] + [f"profile:{100 + i}" for i in range(12)]
        user_ids = [f"u{i}" for i in range(12)]
        subjects = [*profiles, *(f"user:{u}" for u in user_ids)]
        links = {s: random_parents(rng, s, profiles) for s in subjects}
        users = {u: rng.random() < 0.9 for u in user_ids}
        terms = random_terms(rng, links)
        at = T0 - 1
        policy = CpasPolicy("0200000000", 1, RULES, [(s, p) for s, ps in links.items() for p in ps], users, {},
                            terms, at)
        for step in range(2, 12):
            if rng.random() < 0.5:  # time passes: across zero, one or several bounds
                at += rng.choice([0.5, 1, 7, 20, 45])
                policy = policy.at_instant(at)
            else:  # a change: a user's assignments and terms rewritten, maybe a profile's links
                user = rng.choice(user_ids)
                subject = f"user:{user}"
                links[subject] = random_parents(rng, subject, profiles)
                terms.pop(user, None)
                terms.update({u: t for u, t in random_terms(rng, {subject: links[subject]}).items()})
                changed: dict[str, list[str]] = {subject: links[subject]}
                if rng.random() < 0.4:
                    other = rng.choice(profiles[:8])
                    links[other] = random_parents(rng, other, profiles)
                    changed[other] = links[other]
                derived = policy.with_changes(step, changed, {}, {}, {user: terms.get(user)}, at)
                assert derived is not None
                policy = derived
            full = CpasPolicy("0200000000", policy.version, RULES, holding(links, terms, at), users, {})
            assert decisions(policy, user_ids) == decisions(full, user_ids), (step, at)
            with_terms = CpasPolicy("0200000000", policy.version, RULES,
                                    [(s, p) for s, ps in links.items() for p in ps], users, {}, terms, at)
            assert decisions(with_terms, user_ids) == decisions(full, user_ids)
            assert policy.next_change == with_terms.next_change
            later = [b for t in (x for ut in terms.values() for x in ut.values()) for b in (t.start, t.end)
                     if b is not None and b > at]
            assert policy.next_change == (min(later) if later else float("inf"))


def test_the_engine_agrees_with_stock_pycasbin_at_every_instant() -> None:
    rng = random.Random(7)
    profiles = [f"profile:{i}" for i in range(8)]
    user_ids = [f"u{i}" for i in range(10)]
    links = {s: random_parents(rng, s, profiles) for s in [*profiles, *(f"user:{u}" for u in user_ids)]}
    terms = random_terms(rng, links)
    policy = CpasPolicy("0200000000", 1, RULES, [(s, p) for s, ps in links.items() for p in ps],
                        dict.fromkeys(user_ids, True), {}, terms, T0 - 1)
    for at in (T0 - 1, T0, T0 + 15, T0 + 30, T0 + 50, T0 + 75, T0 + 101):
        policy = policy.at_instant(at)
        enforcer = casbin.Enforcer(str(ROOT / "model.conf"))
        for sub, dom, obj, eft in _rule_rows():
            enforcer.add_policy(sub, dom, obj, eft)
        for child, parent in holding(links, terms, at):
            enforcer.add_grouping_policy(child, parent, "0200000000")
        for user in user_ids:
            for action in ACTIONS:
                assert policy.allows(user, action) == enforcer.enforce(f"user:{user}", "0200000000", action), (at, user)


def _rule_rows() -> list[tuple[str, str, str, str]]:
    rows = []
    for obj, roles in RULES.allow_roles.items():
        rows += [(r, "*", obj, "allow") for r in roles]
    for obj, roles in RULES.deny_roles.items():
        rows += [(r, "*", obj, "deny") for r in roles]
    return rows


def test_an_ended_assignment_explains_itself() -> None:
    rules = Rules.from_rows([("function:f0", "*", "f0", "allow"), ("function:f1", "*", "f1", "allow")])
    rows = [("user:u", "profile:1"), ("user:u", "profile:2"), ("profile:1", "function:f0"),
            ("profile:2", "function:f1")]
    terms = {"u": {1: Term(None, T0), 2: Term(T0 + 100, None)}}
    policy = CpasPolicy("0200000000", 3, rules, rows, {"u": True}, {}, terms, T0 - 1)
    assert policy.decide("u", "f0", explain=True).reason == "granted"
    assert policy.decide("u", "f1", explain=True).reason == "assignment_not_started"
    after = policy.at_instant(T0 + 1)
    assert after.decide("u", "f0", explain=True).reason == "assignment_expired"
    assert not after.allows("u", "f0") and after.view("u").profiles == ()
    assert policy.view("u").profiles == (1,)  # the policy it came from is left as it was
    assert after.at_instant(T0 + 100).decide("u", "f1").allowed
    assert after.next_change == T0 + 100 and after.at_instant(T0 + 100).next_change == float("inf")


# -- the service, through the HTTP API ----------------------------------------------------------------------
@pytest.fixture
def clock(service: Any) -> Clock:
    # from now on: the history refuses instants before it began
    return Clock(datetime.now(UTC).replace(microsecond=0)).attach(service)


pytestmark_backends = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)


def enforce(api: Any, cpas: str, user: str, function: str) -> dict[str, Any]:
    answer = api.post("/enforce", {"cpas": cpas, "user": user, "function": function, "explain": True})
    assert answer.status_code == 200, answer.get_json()
    return dict(answer.get_json())


@pytestmark_backends
def test_an_assignment_ends_to_the_second(service: Any, operator: Any, clock: Clock) -> None:
    cpas = make_cpas(service)
    full = make_profile(service, cpas, "Recherche", functions=(SEARCH, LIST))
    other = make_profile(service, cpas, "Recherche seule", functions=(SEARCH,))
    make_user(service, cpas, "marie", "Marie")
    day = (clock.now + timedelta(days=3)).astimezone(BRUSSELS).date()
    end = end_of(day)
    answer = operator.put(f"/cpas/{cpas}/users/marie/profiles",
                          {"profiles": [other, {"id": full, "valid_until": day.isoformat()}]})
    assert answer.status_code == 200, answer.get_json()
    until = end.isoformat().replace("+00:00", "Z")
    assert answer.get_json()["profiles"] == [
        {"id": full, "description": "Recherche", "valid_from": None, "valid_until": until},
        {"id": other, "description": "Recherche seule"}]
    functions = operator.get(f"/cpas/{cpas}/users/marie/functions")
    assert functions.get_json()["next_change"] == until and LIST in functions.get_json()["functions"]
    etag = functions.headers["ETag"]
    assert functions.headers["Cache-Control"] == "private, no-cache"

    clock.now = end - timedelta(seconds=1)
    assert enforce(operator, cpas, "marie", LIST)["allowed"] is True
    assert operator.get(f"/cpas/{cpas}/users/marie/functions", headers={"If-None-Match": etag}).status_code == 304

    clock.now = end + timedelta(seconds=1)
    decision = enforce(operator, cpas, "marie", LIST)
    assert decision["allowed"] is False and decision["explanation"]["reason"] == "assignment_expired"
    assert enforce(operator, cpas, "marie", SEARCH)["allowed"] is True  # the other profile still holds
    batch = operator.post("/enforce/batch", {"requests": [
        {"id": "a", "cpas": cpas, "user": "marie", "function": LIST},
        {"id": "b", "cpas": cpas, "user": "marie", "function": SEARCH}]}).get_json()
    assert [r["allowed"] for r in batch["results"]] == [False, True]
    after = operator.get(f"/cpas/{cpas}/users/marie/functions", headers={"If-None-Match": etag})
    assert after.status_code == 200 and after.headers["ETag"] != etag
    body = after.get_json()
    assert LIST not in body["functions"] and body["next_change"] is None
    assert [p["id"] for p in body["profiles"]] == [other]
    # the assignment itself is still there, with its end, until someone removes it
    user = operator.get(f"/cpas/{cpas}/users/marie").get_json()
    assert [p["id"] for p in user["profiles"]] == sorted([full, other])


@pytestmark_backends
def test_a_term_that_starts_later_and_a_bad_term(service: Any, operator: Any, clock: Clock) -> None:
    cpas = make_cpas(service)
    profile = make_profile(service, cpas, "Recherche", functions=(SEARCH,))
    make_user(service, cpas, "jan", "Jan")
    start = clock.now + timedelta(hours=2)
    iso_start = start.isoformat()
    assert operator.put(f"/cpas/{cpas}/users/jan/profiles",
                        {"profiles": [{"id": profile, "valid_from": iso_start}]}).status_code == 200
    assert enforce(operator, cpas, "jan", SEARCH)["explanation"]["reason"] == "assignment_not_started"
    clock.now = start
    assert enforce(operator, cpas, "jan", SEARCH)["allowed"] is True
    version = operator.get(f"/cpas/{cpas}/users/jan").get_json()["policy_version"]
    for bad, code in (
        ({"id": profile, "valid_from": "2027-02-01", "valid_until": "2027-01-31"}, "invalid_term"),
        ({"id": profile, "valid_until": "2027-01-31T10:00:00"}, "invalid_request"),  # no offset
        ({"id": profile, "valid_until": "31/01/2027"}, "invalid_request"),
        ({"id": profile, "valid_until": 20270131}, "invalid_request"),
        ({"id": profile, "until": "2027-01-31"}, "invalid_request"),
        ({"valid_until": "2027-01-31"}, "invalid_request"),
    ):
        answer = operator.put(f"/cpas/{cpas}/users/jan/profiles", {"profiles": [bad]})
        assert answer.status_code == 400 and answer.get_json()["error"]["code"] == code, (bad, answer.get_json())
    assert operator.get(f"/cpas/{cpas}/users/jan").get_json()["policy_version"] == version  # nothing changed
    # the same profiles and terms again: nothing written
    same = operator.put(f"/cpas/{cpas}/users/jan/profiles", {"profiles": [{"id": profile, "valid_from": iso_start}]})
    assert same.get_json()["policy_version"] == version
    plain = operator.put(f"/cpas/{cpas}/users/jan/profiles", {"profiles": [profile]})  # the term removed
    assert plain.get_json()["profiles"] == [{"id": profile, "description": "Recherche"}]
    assert plain.get_json()["policy_version"] == version + 1


@pytestmark_backends
def test_the_export_holds_at_its_instant_and_stock_casbin_agrees(service: Any, operator: Any, clock: Clock) -> None:
    cpas = make_cpas(service)
    first = make_profile(service, cpas, "Un", functions=(SEARCH,))
    second = make_profile(service, cpas, "Deux", functions=(SEARCH, LIST))
    start = clock.now
    for i in range(6):
        make_user(service, cpas, f"u{i}", f"Agent {i}")
        items: list[Any] = [{"id": first, "valid_until": (start + timedelta(hours=i)).isoformat()},
                            {"id": second, "valid_from": (start + timedelta(hours=6 - i)).isoformat()}]
        assert operator.put(f"/cpas/{cpas}/users/u{i}/profiles", {"profiles": items}).status_code == 200
    for hours in (0, 1, 2.5, 4, 6, 7):
        clock.now = start + timedelta(hours=hours)
        csv = operator.get(f"/cpas/{cpas}/policy.csv").get_data(as_text=True)
        enforcer = _enforcer_from(csv)
        for i in range(6):
            for function in (SEARCH, LIST):
                ours = enforce(operator, cpas, f"u{i}", function)["allowed"]
                assert ours == enforcer.enforce(f"user:u{i}", cpas, function), (hours, i, function)
        assert csv == policy_csv(service.read(lambda store: store.policy_lines(cpas, clock.now)))


def _enforcer_from(csv: str) -> Any:
    enforcer = casbin.Enforcer(str(ROOT / "model.conf"))
    for line in csv.splitlines():
        kind, *values = [v.strip() for v in line.split(",")]
        if kind == "p":
            enforcer.add_policy(*values)
        else:
            enforcer.add_grouping_policy(*values)
    return enforcer


@pytestmark_backends
def test_the_history_answers_before_and_after_the_end(service: Any, operator: Any, clock: Clock) -> None:
    cpas = make_cpas(service)
    profile = make_profile(service, cpas, "Recherche", functions=(SEARCH,))
    make_user(service, cpas, "marie", "Marie")
    start = clock.now
    end = start + timedelta(minutes=10)
    clock.now = start + timedelta(seconds=1)
    operator.put(f"/cpas/{cpas}/users/marie/profiles", {"profiles": [{"id": profile, "valid_until": end.isoformat()}]})
    clock.now = end + timedelta(minutes=5)
    for at, allowed in ((end - timedelta(seconds=1), True), (end, False), (end + timedelta(minutes=1), False)):
        stamp = at.isoformat().replace("+00:00", "Z")
        body = operator.get(f"/cpas/{cpas}/users/marie/functions", query_string={"at": stamp}).get_json()
        assert (SEARCH in body["functions"]) is allowed, (at, body)
        holders = operator.get(f"/cpas/{cpas}/functions/{SEARCH}/users", query_string={"at": stamp}).get_json()
        assert ("marie" in [u["user"] for u in holders["users"]]) is allowed


@pytestmark_backends
def test_an_expiry_is_recorded_once_in_the_trail_and_the_history(service: Any, operator: Any, clock: Clock) -> None:
    cpas = make_cpas(service)
    profile = make_profile(service, cpas, "Recherche", functions=(SEARCH,))
    make_user(service, cpas, "marie", "Marie")
    end = clock.now + timedelta(minutes=1)
    operator.put(f"/cpas/{cpas}/users/marie/profiles", {"profiles": [{"id": profile, "valid_until": end.isoformat()}]})
    assert service.record_expiries() == 0  # not ended yet
    clock.now = end
    assert service.record_expiries() == 1
    assert service.record_expiries() == 0  # once
    trail = operator.get(f"/cpas/{cpas}/audit").get_json()
    entries = [e for e in trail["items"] if e["action"] == "assignment.expired"]
    assert len(entries) == 1 and entries[0]["target"] == "user:marie"
    assert entries[0]["before"] == {"profile": profile, "valid_until": end.isoformat().replace("+00:00", "Z")}
    assert entries[0]["actor"] == "system:expiry"
    with service.db.reading() as session:
        marks = session.execute(
            text("SELECT subject, payload FROM policy_history WHERE cpas_id = :c AND kind = 'expiry'"),
            {"c": cpas}).all()
    assert [(m[0], m[1] if isinstance(m[1], dict) else json.loads(m[1])) for m in marks] == [
        ("user:marie", {"profile": profile, "valid_until": end.isoformat().replace("+00:00", "Z")})]
    # a new term on the same assignment is a new expiry to record
    operator.put(f"/cpas/{cpas}/users/marie/profiles",
                 {"profiles": [{"id": profile, "valid_until": (end + timedelta(minutes=1)).isoformat()}]})
    clock.now = end + timedelta(minutes=2)
    assert service.record_expiries() == 1


def test_assignments_given_through_the_use_case(service: Any, clock: Clock) -> None:
    """The use case takes ``Assignment``s beside plain ids, and answers with the terms it stored."""
    cpas = make_cpas(service)
    profile = make_profile(service, cpas, "Recherche", functions=(SEARCH,))
    make_user(service, cpas, "u", "U")
    end = clock.now + timedelta(days=1)
    with service.admin(ACTOR) as admin:
        detail = admin.set_user_profiles(cpas, "u", [Assignment(profile, None, end)])
    assert detail.terms == {profile: Term(None, end.timestamp())}
    assert service.policy(cpas).terms_of("u") == {profile: Term(None, end.timestamp())}


def test_the_command_line_records_what_ended(service: Any, database_url: str) -> None:
    """``authz-service record-expiries`` (cron, or pollers off) writes what ended by the wall clock, once."""
    from click.testing import CliRunner

    from authz_service.cli import main

    cpas = make_cpas(service)
    profile = make_profile(service, cpas, "Recherche", functions=(SEARCH,))
    make_user(service, cpas, "u", "U")
    with service.admin(ACTOR) as admin:
        admin.set_user_profiles(cpas, "u", [Assignment(profile, None, datetime.now(UTC) - timedelta(seconds=1))])
    for expected in ("recorded 1 ended assignment", "recorded 0 ended assignments"):
        result = CliRunner().invoke(main, ["record-expiries"], env={"AUTHZ_DATABASE_URL": database_url})
        assert result.exit_code == 0 and result.output.strip() == expected, result.output
