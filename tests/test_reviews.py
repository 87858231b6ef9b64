"""Access reviews through the JSON API (issue 14), on SQLite and PostgreSQL, on the demo CPAS: starting one
freezes every active user's assignments; each user's decision (keep, revoke, keep_until) and what it does to
the user's profiles, their terms and /enforce; progress, the audit trail, closing (who, when) and the closed
review's read-only state; every refusal with its error code and nothing changed by it; dry runs; the
overview across CPAS (overdue by due date and by interval). "Today" is injected through the engine's wall
clock (``Service.now``), which is also what time-bound assignments are decided with."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from authz_service.terms import BRUSSELS, Assignment, end_of

from .clock import Clock
from .conftest import Api

START = datetime(2027, 1, 4, 9, 0, tzinfo=BRUSSELS)  # "today" is 4 January 2027 in Brussels
MARIE, ANNELIES, THOMAS, ELS, KOEN, LUC, MICHEL = (
    "85073003328", "96031220418", "93061517116", "88040206208", "71092421339", "75081815365", "77070619530")
ACTIVE_DEMO_USERS = 13  # seed/demo.yaml: 14 users, Michel RENARD inactive


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock(service: Any, demo: dict[str, Any]) -> Clock:
    return Clock(START).attach(service, history=False)


@pytest.fixture
def api(operator: Api, clock: Clock) -> Api:
    return operator


def reviews_url(demo: dict[str, Any], *rest: Any) -> str:
    return "/".join([f"/cpas/{demo['cpas']}/reviews", *map(str, rest)])


def error(answer: Any) -> tuple[int, str]:
    return answer.status_code, answer.get_json()["error"]["code"]


def start(api: Api, demo: dict[str, Any], due: str = "2027-03-31") -> dict[str, Any]:
    answer = api.post(reviews_url(demo), {"due": due})
    assert answer.status_code == 201, answer.get_json()
    return dict(answer.get_json())


def decide(api: Api, demo: dict[str, Any], review: int, user: str, decision: str, **more: Any) -> Any:
    return api.post(reviews_url(demo, review, "items", user), {"decision": decision, **more})


def functions(api: Api, demo: dict[str, Any], user: str) -> list[str]:
    answer = api.get(f"/cpas/{demo['cpas']}/users/{user}/functions")
    assert answer.status_code == 200
    return list(answer.get_json()["functions"])


def held(service: Any, demo: dict[str, Any], user: str) -> dict[int, tuple[datetime | None, datetime | None]]:
    """The user's profiles with their terms, as the store has them."""
    def run(store: Any) -> dict[int, tuple[datetime | None, datetime | None]]:
        terms = store.user_terms(demo["cpas"], user)
        return {pid: ((terms[pid].valid_from, terms[pid].valid_until) if pid in terms else (None, None))
                for pid in store.user_profiles(demo["cpas"], user)}
    return dict(service.read(run))


def audit(api: Api, demo: dict[str, Any]) -> list[dict[str, Any]]:
    """The CPAS's trail, oldest first."""
    answer = api.get(f"/cpas/{demo['cpas']}/audit?per_page=500")
    return list(reversed(answer.get_json()["items"]))


def assign(service: Any, demo: dict[str, Any], user: str, items: list[int | Assignment]) -> None:
    with service.admin("test:setup") as admin:
        admin.set_user_profiles(demo["cpas"], user, items)


def review_state(api: Api, demo: dict[str, Any], review: int) -> dict[str, Any]:
    answer = api.get(reviews_url(demo, review))
    assert answer.status_code == 200
    return dict(answer.get_json())


# -- the lifecycle ----------------------------------------------------------------------------------------------
def test_a_review_from_start_to_close(api: Api, service: Any, demo: dict[str, Any], clock: Clock) -> None:
    profiles = demo["profiles"]
    # Thomas's rmc1 has a term that began before the review: it is frozen with it, and keeps its start
    began = datetime(2026, 12, 1, tzinfo=UTC)
    assign(service, demo, THOMAS, [Assignment(profiles["rmc1"], began, None), profiles["clignotants"]])

    review = start(api, demo)
    assert review["due"] == "2027-03-31" and review["cpas"] == demo["cpas"]
    assert (review["started_by"], review["started_at"]) == ("key:test", "2027-01-04T08:00:00Z")
    assert (review["closed"], review["closed_by"], review["closed_at"]) == (False, None, None)
    assert (review["total"], review["decided"], review["progress"]) == (ACTIVE_DEMO_USERS, 0, 0)
    items = {i["user"]: i for i in review["items"]}
    assert MICHEL not in items and len(items) == ACTIVE_DEMO_USERS  # inactive at start: not frozen
    names = [(i["name"], i["user"]) for i in review["items"]]
    assert names == sorted(names)  # by name then user id
    assert items[MARIE]["name"] == "Marie LEBLANC"
    assert items[MARIE]["assignments"] == [{"profile_id": profiles["full"], "description_fr": "Full",
                                            "description_nl": "Full", "valid_from": None, "valid_until": None}]
    assert [(a["profile_id"], a["valid_from"]) for a in items[THOMAS]["assignments"]] == sorted(
        [(profiles["rmc1"], "2026-12-01T00:00:00Z"), (profiles["clignotants"], None)])
    assert items[LUC]["assignments"] == []
    assert all(i["decision"] is None and i["decided_by"] is None for i in review["items"])
    rid = review["id"]

    # the frozen list stays as it was: a profile given after the start is not in the review
    extra = api.post(f"/cpas/{demo['cpas']}/profiles", {"description_fr": "Recherche seule", "description_nl": None,
                                                       "functions": ["dossier.search"]}).get_json()["id"]
    later_end = datetime(2028, 1, 1, tzinfo=UTC)
    assign(service, demo, THOMAS, [Assignment(profiles["rmc1"], began, None), profiles["clignotants"],
                                   Assignment(extra, None, later_end)])
    assert review_state(api, demo, rid)["items"] == review["items"]
    listed = api.get(reviews_url(demo)).get_json()
    assert [r["id"] for r in listed] == [rid] and listed[0]["progress"] == 0 and "items" not in listed[0]

    # keep: nothing changes but the item
    version = api.get(f"/cpas/{demo['cpas']}/users/{MARIE}").get_json()["policy_version"]
    kept = decide(api, demo, rid, MARIE, "keep", comment="  toujours en poste ")
    assert kept.status_code == 200, kept.get_json()
    body = kept.get_json()
    assert body["item"]["decision"] == "keep" and body["item"]["comment"] == "toujours en poste"
    assert (body["item"]["decided_by"], body["item"]["decided_at"]) == ("key:test", "2027-01-04T08:00:00Z")
    assert (body["review"]["decided"], body["review"]["progress"]) == (1, 100 // ACTIVE_DEMO_USERS)
    assert body["policy_version"] == version == int(kept.headers["X-Policy-Version"])
    assert held(service, demo, MARIE) == {profiles["full"]: (None, None)}

    # revoke: the frozen profiles go at once, through the audited assignment
    els_before = functions(api, demo, ELS)
    assert els_before
    just_before = datetime.now(UTC)  # the policy's history keeps the store's own clock
    revoked = decide(api, demo, rid, ELS, "revoke")
    assert revoked.status_code == 200
    at = just_before.isoformat().replace("+00:00", "Z")
    assert api.get(f"/cpas/{demo['cpas']}/users/{ELS}/functions?at={at}").get_json()["functions"] == els_before
    assert revoked.get_json()["policy_version"] == version + 1 == int(revoked.headers["X-Policy-Version"])
    assert held(service, demo, ELS) == {} and functions(api, demo, ELS) == []
    assert api.post("/enforce", {"cpas": demo["cpas"], "user": KOEN, "function": "dossier.search"}).get_json()[
        "allowed"] is True
    decide(api, demo, rid, KOEN, "revoke", comment="a quitté le service")
    assert api.post("/enforce", {"cpas": demo["cpas"], "user": KOEN, "function": "dossier.search"}).get_json()[
        "allowed"] is False
    trail = audit(api, demo)
    assert [e["action"] for e in trail[-4:]] == ["user.assign", "review.decide", "user.assign", "review.decide"]
    assert trail[-2]["target"] == f"user:{KOEN}" and trail[-2]["after"]["profiles"] == []
    assert trail[-1]["after"] == {"review": rid, "user": KOEN, "decision": "revoke", "until": None,
                                  "comment": "a quitté le service"}

    # keep_until: the frozen profiles end at the end of that day (Brussels), their starts kept; the profile
    # given after the start keeps its own term
    bounded = decide(api, demo, rid, THOMAS, "keep_until", until="2027-06-30")
    assert bounded.status_code == 200 and bounded.get_json()["item"]["until"] == "2027-06-30"
    end = datetime(2027, 6, 30, 22, 0, tzinfo=UTC)  # midnight starting 1 July, summer time
    assert end_of(date(2027, 6, 30)) == end
    assert held(service, demo, THOMAS) == {profiles["rmc1"]: (began, end), profiles["clignotants"]: (None, end),
                                           extra: (None, later_end)}
    before_end = set(functions(api, demo, THOMAS))
    clock.set(end - timedelta(microseconds=1))
    assert set(functions(api, demo, THOMAS)) == before_end
    clock.set(end)
    assert functions(api, demo, THOMAS) == ["dossier.search"]  # only the profile given after the start
    clock.set(START)

    # closing is refused while users are undecided, and says how many
    assert error(api.post(reviews_url(demo, rid, "close"))) == (409, "review_undecided")
    assert api.post(reviews_url(demo, rid, "close")).get_json()["error"]["details"] == {
        "undecided": ACTIVE_DEMO_USERS - 4}
    for item in review["items"]:
        if item["user"] not in (MARIE, ELS, KOEN, THOMAS):
            assert decide(api, demo, rid, item["user"], "keep").status_code == 200
    assert review_state(api, demo, rid)["progress"] == 100

    clock.set(datetime(2027, 2, 1, 15, 30, tzinfo=BRUSSELS))
    closed = api.post(reviews_url(demo, rid, "close"))
    assert closed.status_code == 200, closed.get_json()
    summary = closed.get_json()
    assert summary == {k: v for k, v in review_state(api, demo, rid).items() if k != "items"}
    assert "items" not in summary and summary == {**summary, "closed": True, "closed_by": "key:test",
                                                  "closed_at": "2027-02-01T14:30:00Z",
                                                  "decided": ACTIVE_DEMO_USERS, "progress": 100}
    actions = [e["action"] for e in audit(api, demo) if e["action"].startswith("review.")]
    assert actions == ["review.start"] + ["review.decide"] * ACTIVE_DEMO_USERS + ["review.close"]

    # a closed review is read-only
    frozen = review_state(api, demo, rid)
    assert error(decide(api, demo, rid, MARIE, "revoke")) == (409, "review_closed")
    assert error(api.post(reviews_url(demo, rid, "close"))) == (409, "review_closed")
    assert review_state(api, demo, rid) == frozen and held(service, demo, MARIE) == {profiles["full"]: (None, None)}
    # and the next one may start
    assert start(api, demo, "2027-12-31")["id"] > rid


# -- refusals ---------------------------------------------------------------------------------------------------
def test_every_refusal_has_its_code_and_changes_nothing(api: Api, api_for: Callable[..., Api], service: Any,
                                                        demo: dict[str, Any], clock: Clock) -> None:
    assert error(api.post(reviews_url(demo), {"due": "2027-01-03"})) == (400, "invalid_request")
    assert api.post(reviews_url(demo), {"due": "2027-01-03"}).get_json()["error"]["details"] == {
        "field": "due", "today": "2027-01-04"}
    for bad in ({"due": "2027-02-30"}, {"due": "31/03/2027"}, {"due": 20270331}, {}, {"due": "2027-03-31", "x": 1}):
        assert error(api.post(reviews_url(demo), bad)) == (400, "invalid_request"), bad
    assert api.get(reviews_url(demo)).get_json() == []

    rid = start(api, demo, "2027-01-04")["id"]  # due today is allowed
    assert error(api.post(reviews_url(demo), {"due": "2027-06-30"})) == (409, "review_open")
    assert api.post(reviews_url(demo), {"due": "2027-06-30"}).get_json()["error"]["details"] == {"review": rid}

    state = review_state(api, demo, rid)
    trail = audit(api, demo)
    # unknown review, unknown user, a user inactive at the start
    assert error(api.get(reviews_url(demo, rid + 1000))) == (404, "review_unknown")
    assert error(decide(api, demo, rid + 1000, MARIE, "keep")) == (404, "review_unknown")
    assert error(api.post(reviews_url(demo, rid + 1000, "close"))) == (404, "review_unknown")
    assert error(decide(api, demo, rid, "never.seen", "keep")) == (404, "review_item_unknown")
    assert error(decide(api, demo, rid, MICHEL, "keep")) == (404, "review_item_unknown")
    # bad decisions and dates
    today, tomorrow = "2027-01-04", "2027-01-05"
    for body in ({"decision": "maybe"}, {"decision": "keep_until"}, {"decision": "keep_until", "until": today},
                 {"decision": "keep_until", "until": "2027-13-01"}, {"decision": "keep", "until": tomorrow},
                 {"decision": "revoke", "until": tomorrow}, {"decision": "keep", "comment": "x" * 501},
                 {"decision": "keep", "extra": True}, {}):
        answer = api.post(reviews_url(demo, rid, "items", MARIE), body)
        assert error(answer) == (400, "invalid_request"), (body, answer.get_json())
    assert api.post(reviews_url(demo, rid, "items", MARIE), {"decision": "keep_until"}).get_json()["error"][
        "details"] == {"field": "until", "today": today}
    # another CPAS's review is unknown there, whoever asks
    other = "0100000070"
    assert api.post("/cpas", {"cpas": other, "name_fr": "Autre", "name_nl": "Ander", "region": "brussels"}
                    ).status_code == 201
    assert error(api.get(f"/cpas/{other}/reviews/{rid}")) == (404, "review_unknown")
    assert error(api.post(f"/cpas/{other}/reviews/{rid}/items/{MARIE}", {"decision": "revoke"})) == (
        404, "review_unknown")
    assert error(api.post(f"/cpas/{other}/reviews/{rid}/close")) == (404, "review_unknown")
    unknown = "0212345668"  # a valid KBO number the service does not know
    assert error(api.get(f"/cpas/{unknown}/reviews/{rid}")) == (404, "unknown_cpas")
    assert error(api.get(f"/cpas/{unknown}/reviews")) == (404, "unknown_cpas")
    assert error(api.post(f"/cpas/{unknown}/reviews", {"due": "2027-06-30"})) == (404, "unknown_cpas")
    # a key limited to another CPAS, a key without the admin scope
    assert error(api_for("admin", [other]).get(reviews_url(demo, rid))) == (403, "forbidden")
    assert error(api_for("admin", [other]).post(reviews_url(demo), {"due": "2027-06-30"})) == (403, "forbidden")
    assert error(api_for("enforce,users").get(reviews_url(demo))) == (403, "forbidden")
    assert review_state(api, demo, rid) == state and audit(api, demo) == trail

    # decisions are final
    assert decide(api, demo, rid, MARIE, "keep").status_code == 200
    again = decide(api, demo, rid, MARIE, "revoke")
    assert error(again) == (409, "review_item_decided") and again.get_json()["error"]["details"] == {
        "decision": "keep"}
    assert held(service, demo, MARIE) == {demo["profiles"]["full"]: (None, None)}


def test_a_user_deactivated_after_the_start_is_decided_without_change(api: Api, demo: dict[str, Any]) -> None:
    rid = start(api, demo)["id"]
    assert api.post(f"/cpas/{demo['cpas']}/users/{KOEN}/deactivate").status_code == 200
    version = api.get(f"/cpas/{demo['cpas']}/users/{KOEN}").get_json()["policy_version"]
    trail = audit(api, demo)
    answer = decide(api, demo, rid, KOEN, "revoke")
    assert answer.status_code == 200 and answer.get_json()["item"]["decision"] == "revoke"
    assert answer.get_json()["policy_version"] == version
    assert [e["action"] for e in audit(api, demo)[len(trail):]] == ["review.decide"]
    # reactivated, the user comes back with no profile, whatever was decided
    assert api.post(f"/cpas/{demo['cpas']}/users/{KOEN}/reactivate").get_json()["profiles"] == []


def test_keep_until_on_an_inactive_user_records_the_decision_only(api: Api, service: Any,
                                                                  demo: dict[str, Any]) -> None:
    rid = start(api, demo)["id"]
    api.post(f"/cpas/{demo['cpas']}/users/{THOMAS}/deactivate")
    trail = audit(api, demo)
    answer = decide(api, demo, rid, THOMAS, "keep_until", until="2027-02-28")
    assert answer.status_code == 200 and answer.get_json()["item"]["until"] == "2027-02-28"
    assert [e["action"] for e in audit(api, demo)[len(trail):]] == ["review.decide"]
    assert held(service, demo, THOMAS) == {}


def test_revoke_of_profiles_no_longer_held_changes_nothing(api: Api, service: Any, demo: dict[str, Any]) -> None:
    rid = start(api, demo)["id"]
    profiles = demo["profiles"]
    assign(service, demo, ELS, [profiles["full"]])  # clignotants taken away and full given after the start
    trail = audit(api, demo)
    assert decide(api, demo, rid, ELS, "revoke").status_code == 200
    assert held(service, demo, ELS) == {profiles["full"]: (None, None)}  # not reviewed: kept
    assert [e["action"] for e in audit(api, demo)[len(trail):]] == ["review.decide"]


# -- dry runs ----------------------------------------------------------------------------------------------------
def test_dry_runs_change_nothing(api: Api, service: Any, demo: dict[str, Any]) -> None:
    dry = api.post(reviews_url(demo) + "?dry_run=true", {"due": "2027-03-31"})
    assert dry.status_code == 200 and dry.get_json()["dry_run"] is True
    assert dry.get_json()["impact"]["users"] == [] and "X-Policy-Version" not in dry.headers
    assert api.get(reviews_url(demo)).get_json() == []
    assert error(api.post(reviews_url(demo) + "?dry_run=true", {"due": "2026-12-31"})) == (400, "invalid_request")

    rid = start(api, demo)["id"]
    state, trail = review_state(api, demo, rid), audit(api, demo)
    dry = api.post(reviews_url(demo, rid, "items", ELS) + "?dry_run=true", {"decision": "revoke"})
    assert dry.status_code == 200, dry.get_json()
    impact = dry.get_json()["impact"]
    assert [u["user"] for u in impact["users"]] == [ELS] and impact["users"][0]["loses"]
    assert api.post(reviews_url(demo, rid, "items", THOMAS) + "?dry_run=true",
                    {"decision": "keep_until", "until": "2027-06-30"}).status_code == 200
    assert error(api.post(reviews_url(demo, rid, "close") + "?dry_run=true")) == (409, "review_undecided")
    assert review_state(api, demo, rid) == state and audit(api, demo) == trail
    assert functions(api, demo, ELS)
    for item in state["items"]:
        decide(api, demo, rid, item["user"], "keep")
    assert api.post(reviews_url(demo, rid, "close") + "?dry_run=true").status_code == 200
    assert review_state(api, demo, rid)["closed"] is False


# -- the overview ------------------------------------------------------------------------------------------------
def test_the_overview_says_which_cpas_are_overdue(api: Api, api_for: Callable[..., Api], service: Any,
                                                  demo: dict[str, Any], clock: Clock) -> None:
    cpas, other = demo["cpas"], "0100000070"
    api.post("/cpas", {"cpas": other, "name_fr": "CPAS d'ailleurs", "name_nl": "OCMW elders", "region": "brussels"})

    def overview(who: Api = api) -> dict[str, dict[str, Any]]:
        answer = who.get("/reviews/overview")
        assert answer.status_code == 200
        return {row["cpas"]: row for row in answer.get_json()}

    # both CPAS were created "now" (the real clock): within the interval until a year after that
    real_today = datetime.now(UTC).astimezone(BRUSSELS).date()
    clock.set(datetime.combine(real_today + timedelta(days=10), datetime.min.time(), BRUSSELS))
    rows = overview()
    assert {c: (r["overdue"], r["open_review"], r["last_closed_at"]) for c, r in rows.items()
            if c in (cpas, other)} == {cpas: (False, None, None), other: (False, None, None)}
    assert rows[other]["name_fr"] == "CPAS d'ailleurs" and rows[other]["name_nl"] == "OCMW elders"
    clock.set(datetime.combine(real_today + timedelta(days=366), datetime.min.time(), BRUSSELS))
    assert overview()[cpas]["overdue"] is True  # no review closed within 365 days

    # an open review past its due date
    clock.set(datetime.combine(real_today + timedelta(days=10), datetime.min.time(), BRUSSELS))
    due = real_today + timedelta(days=20)
    rid = start(api, demo, due.isoformat())["id"]
    assert overview()[cpas]["open_review"]["id"] == rid and overview()[cpas]["overdue"] is False
    clock.set(datetime.combine(due + timedelta(days=1), datetime.min.time(), BRUSSELS))
    assert overview()[cpas]["overdue"] is True and overview()[other]["overdue"] is False
    # closed: not overdue until the interval has passed since
    for item in review_state(api, demo, rid)["items"]:
        decide(api, demo, rid, item["user"], "keep")
    assert api.post(reviews_url(demo, rid, "close")).status_code == 200
    row = overview()[cpas]
    assert (row["overdue"], row["open_review"]) == (False, None)
    closed_on = (due + timedelta(days=1)).isoformat()
    assert row["last_closed_at"].startswith(closed_on[:7])
    clock.set(datetime.combine(due + timedelta(days=1 + 365), datetime.min.time(), BRUSSELS))
    assert overview()[cpas]["overdue"] is False
    clock.set(datetime.combine(due + timedelta(days=1 + 366), datetime.min.time(), BRUSSELS))
    assert overview()[cpas]["overdue"] is True

    # a key limited to some CPAS sees those only
    assert set(overview(api_for("admin", [other]))) == {other}


def test_the_interval_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from authz_service.config import load_settings

    assert load_settings({}).review_interval_days == 365
    monkeypatch.setenv("AUTHZ_REVIEW_INTERVAL_DAYS", "90")
    assert load_settings({}).review_interval_days == 90


def test_the_read_models_properties() -> None:
    from authz_service import reads

    started = datetime(2027, 1, 4, 8, tzinfo=UTC)
    summary = reads.ReviewSummary(1, "0207196354", date(2027, 3, 31), "key:x", started, None, None, 3, 2)
    assert (summary.closed, summary.progress) == (False, 66)
    assert summary.overdue(date(2027, 3, 31)) is False and summary.overdue(date(2027, 4, 1)) is True
    done = reads.ReviewSummary(1, "0207196354", date(2027, 3, 31), "key:x", started, "key:y", started, 0, 0)
    assert (done.closed, done.progress, done.overdue(date(2030, 1, 1))) == (True, 100, False)
    frozen = reads.FrozenAssignment(2, "Accueil", None, None, datetime(2027, 6, 30, 22, tzinfo=UTC))
    assert (frozen.label("fr"), frozen.label("nl")) == ("Accueil", "Accueil")
    assert reads.FrozenAssignment.from_json(frozen.as_json()) == frozen
    assert frozen.as_json()["valid_until"] == "2027-06-30T22:00:00Z"
    row = reads.OverviewRow("0207196354", "CPAS de Herstappe", "OCMW Herstappe", None, summary, True)
    assert (row.name("fr"), row.name("nl")) == ("CPAS de Herstappe", "OCMW Herstappe")
    assert row.as_json()["open_review"] == summary.as_json()
