"""The client against the real service app served in-process on a real socket, with the demo CPAS."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator

import pytest
import requests
from authz_service import create_app

from cpas_authz_client import AuthzClient, AuthzError, CheckRequest, Decision, ErrorInfo, Explanation

from support import (
    ANNELIES,
    CLAIRE,
    DEMO_CPAS,
    LUC,
    MARIE,
    MICHEL,
    UNKNOWN_CPAS,
    CountingSession,
    Live,
    serve,
)


@pytest.fixture
def authz(live: Live, counting: CountingSession) -> Iterator[AuthzClient]:
    with AuthzClient(live.url, api_key=live.keys["full"], session=counting) as client:
        yield client


def new_user() -> str:
    return f"client-test-{uuid.uuid4().hex[:12]}"


# -- POST /enforce --------------------------------------------------------------------------------------
def test_marie_with_profile_full_may_search_dossiers(authz: AuthzClient, live: Live) -> None:
    assert authz.is_allowed(DEMO_CPAS, MARIE, "dossier.search") is True
    decision = authz.check(DEMO_CPAS, MARIE, "dossier.search", explain=True)
    assert decision.allowed is True
    assert isinstance(decision.policy_version, int) and decision.policy_version > 0
    assert decision.explanation == Explanation("granted", (live.profiles["Full"],), ())
    assert decision.error is None


def test_annelies_is_denied_help_requests_for_a_missing_prerequisite(authz: AuthzClient, live: Live) -> None:
    assert authz.is_allowed(DEMO_CPAS, ANNELIES, "help_request.list") is False
    decision = authz.check(DEMO_CPAS, ANNELIES, "help_request.list", explain=True)
    assert decision.allowed is False
    assert decision.explanation == Explanation(
        "missing_prerequisite", (live.profiles["administratif medewerkster"],), ("dossier.search",)
    )
    # what her profile grants without prerequisite is allowed
    assert authz.is_allowed(DEMO_CPAS, ANNELIES, "dossier.list") is True


def test_inactive_and_unknown_users_are_denied(authz: AuthzClient) -> None:
    assert authz.is_allowed(DEMO_CPAS, MICHEL, "dossier.search") is False
    michel = authz.check(DEMO_CPAS, MICHEL, "dossier.search", explain=True)
    assert michel.explanation is not None and michel.explanation.reason == "user_inactive"
    nobody = authz.check(DEMO_CPAS, "nobody-at-all", "dossier.search", explain=True)
    assert nobody.allowed is False
    assert nobody.explanation is not None and nobody.explanation.reason == "unknown_user"
    luc = authz.check(DEMO_CPAS, LUC, "dossier.search", explain=True)
    assert luc.explanation is not None and luc.explanation.reason == "not_granted"


def test_check_without_explain_has_no_explanation_and_a_dotted_cpas_is_accepted(authz: AuthzClient) -> None:
    decision = authz.check("0207.196.354", MARIE, "dossier.search")
    assert decision.allowed is True and decision.explanation is None


@pytest.mark.parametrize(
    ("cpas", "function", "code", "status"),
    [
        (DEMO_CPAS, "no.such.function", "unknown_function", 400),
        (DEMO_CPAS, "Not A Code", "invalid_request", 400),
        (UNKNOWN_CPAS, "dossier.search", "unknown_cpas", 404),
        ("0212345678", "dossier.search", "invalid_request", 400),  # a well-formed number that fails the mod-97 check
    ],
)
def test_errors_raise_from_check_and_deny_in_is_allowed(
    authz: AuthzClient, caplog: pytest.LogCaptureFixture, cpas: str, function: str, code: str, status: int
) -> None:
    with pytest.raises(AuthzError) as raised:
        authz.check(cpas, MARIE, function)
    assert (raised.value.code, raised.value.status) == (code, status)
    assert raised.value.message
    with caplog.at_level(logging.WARNING, logger="cpas_authz_client"):
        assert authz.is_allowed(cpas, MARIE, function) is False
    assert code in caplog.text
    assert MARIE not in caplog.text  # national-register numbers stay out of the log


def test_wrong_key_fails_closed_everywhere(live: Live, counting: CountingSession) -> None:
    with AuthzClient(live.url, api_key="azk_000000000000_not-a-key", session=counting, retries=2) as authz:
        with pytest.raises(AuthzError) as raised:
            authz.check(DEMO_CPAS, MARIE, "dossier.search")
        assert (raised.value.code, raised.value.status) == ("unauthenticated", 401)
        assert authz.is_allowed(DEMO_CPAS, MARIE, "dossier.search") is False
        assert authz.allowed_many([(DEMO_CPAS, MARIE, "dossier.search")] * 3) == [False, False, False]
        assert authz.allowed_functions(DEMO_CPAS, MARIE) == frozenset()
        with pytest.raises(AuthzError, match="unauthenticated"):
            authz.user_seen(DEMO_CPAS, new_user(), name="X")
    assert len(counting.sent) == 5  # a 401 is an answer: never retried


def test_key_scopes_and_cpas_limits_are_forbidden(live: Live) -> None:
    with AuthzClient(live.url, api_key=live.keys["other_cpas"]) as limited:
        with pytest.raises(AuthzError) as raised:
            limited.check(DEMO_CPAS, MARIE, "dossier.search")
        assert (raised.value.code, raised.value.status) == ("forbidden", 403)
        assert limited.is_allowed(DEMO_CPAS, MARIE, "dossier.search") is False
    with AuthzClient(live.url, api_key=live.keys["enforce"]) as enforce_only:
        assert enforce_only.is_allowed(DEMO_CPAS, MARIE, "dossier.search") is True
        with pytest.raises(AuthzError) as raised:
            enforce_only.user_seen(DEMO_CPAS, new_user(), name="X")
        assert (raised.value.code, raised.value.status) == ("forbidden", 403)


def test_unavailable_service_is_a_503_not_retried_and_denied(live: Live, counting: CountingSession) -> None:
    # The same store, an app that polls (so it can go stale) and considers its policy stale almost at once,
    # but never starts its poller: decisions answer 503.
    app = create_app({**live.overrides, "max_staleness": 0.05, "poll_interval": 60}, start_polling=False)
    try:
        app.extensions["authz"].sync()
        with serve(app) as url, AuthzClient(url, api_key=live.keys["full"], session=counting) as authz:
            time.sleep(0.1)
            with pytest.raises(AuthzError) as raised:
                authz.check(DEMO_CPAS, MARIE, "dossier.search")
            assert (raised.value.code, raised.value.status) == ("unavailable", 503)
            assert authz.is_allowed(DEMO_CPAS, MARIE, "dossier.search") is False
            assert authz.allowed_many([(DEMO_CPAS, MARIE, "dossier.search")]) == [False]
            assert authz.allowed_functions(DEMO_CPAS, MARIE) == frozenset()
            assert counting.statuses == [503, 503, 503, 503]
    finally:
        app.extensions["authz"].close()


# -- POST /enforce/batch ---------------------------------------------------------------------------------
def test_check_many_keeps_order_and_per_item_errors(authz: AuthzClient, live: Live) -> None:
    decisions = authz.check_many([
        (DEMO_CPAS, MARIE, "dossier.search"),
        CheckRequest(DEMO_CPAS, ANNELIES, "help_request.list", explain=True),
        (DEMO_CPAS, MARIE, "no.such.function"),
        (UNKNOWN_CPAS, MARIE, "dossier.search"),
        ("12", MARIE, "dossier.search"),
        (DEMO_CPAS, MICHEL, "dossier.search", True),
        (DEMO_CPAS, ANNELIES, "dossier.list"),
    ])
    assert [d.allowed for d in decisions] == [True, False, False, False, False, False, True]
    assert [d.error.code if d.error else None for d in decisions] == [
        None, None, "unknown_function", "unknown_cpas", "invalid_request", None, None
    ]
    assert decisions[1].explanation == Explanation(
        "missing_prerequisite", (live.profiles["administratif medewerkster"],), ("dossier.search",)
    )
    assert decisions[5].explanation is not None and decisions[5].explanation.reason == "user_inactive"
    assert decisions[0].explanation is None
    assert all(isinstance(d.policy_version, int) for d in decisions)
    assert authz.allowed_many([
        (DEMO_CPAS, MARIE, "dossier.search"), (DEMO_CPAS, MARIE, "no.such.function"), (DEMO_CPAS, LUC, "dossier.list")
    ]) == [True, False, False]


def test_check_many_splits_into_chunks_of_1000_in_order(authz: AuthzClient, counting: CountingSession) -> None:
    pattern = [(DEMO_CPAS, MARIE, "dossier.search"), (DEMO_CPAS, ANNELIES, "help_request.list")]
    checks: list[tuple[str, str, str]] = [pattern[i % 2] for i in range(2001)]
    checks[1500] = (DEMO_CPAS, MARIE, "no.such.function")
    decisions = authz.check_many(checks)
    assert len(decisions) == 2001
    assert [d.allowed for d in decisions] == [i % 2 == 0 and i != 1500 for i in range(2001)]
    assert decisions[1500].error is not None and decisions[1500].error.code == "unknown_function"
    assert [d.error for d in decisions if d.error] == [decisions[1500].error]
    assert counting.paths() == ["/enforce/batch"] * 3
    assert [len(r.body or b"") > 0 for r in counting.sent] == [True] * 3


def test_empty_batch_makes_no_request(authz: AuthzClient, counting: CountingSession) -> None:
    assert authz.check_many([]) == []
    assert authz.allowed_many([]) == []
    assert counting.sent == []


def test_check_many_refuses_what_is_not_a_check(authz: AuthzClient) -> None:
    with pytest.raises(TypeError):
        authz.check_many([(DEMO_CPAS, MARIE)])  # type: ignore[list-item]
    assert authz.allowed_many([(DEMO_CPAS, MARIE)]) == [False]  # type: ignore[list-item]


# -- GET /cpas/{cpas}/users/{user}/functions ---------------------------------------------------------------
def test_functions_of_uses_the_etag(authz: AuthzClient, counting: CountingSession, live: Live) -> None:
    first = authz.functions_of(DEMO_CPAS, CLAIRE)
    second = authz.functions_of(DEMO_CPAS, CLAIRE)
    assert counting.statuses == [200, 304]
    assert "If-None-Match" not in counting.sent[0].headers
    assert counting.sent[1].headers["If-None-Match"] == first.etag
    assert first.not_modified is False and second.not_modified is True
    assert second.functions == first.functions and second.profiles == first.profiles
    assert first.active is True and first.user == CLAIRE and first.cpas == DEMO_CPAS
    assert "dossier.search" in first.functions and first.allows("dossier.search")
    assert list(first.functions) == sorted(first.functions)
    assert {p.id for p in first.profiles} == {live.profiles["Directeur général / Secrétaire"],
                                              live.profiles["clignotants"]}
    assert "clignotants" in {p.description for p in first.profiles}


def test_functions_of_caches_per_language(authz: AuthzClient, counting: CountingSession) -> None:
    fr = authz.functions_of(DEMO_CPAS, CLAIRE, lang="fr")
    nl = authz.functions_of(DEMO_CPAS, CLAIRE, lang="nl")
    assert "knipperlichten" in {p.description for p in nl.profiles}
    assert fr.functions == nl.functions and fr.etag != nl.etag
    assert authz.functions_of(DEMO_CPAS, CLAIRE, lang="nl").not_modified
    assert authz.functions_of(DEMO_CPAS, CLAIRE, lang="fr").not_modified
    assert counting.statuses == [200, 200, 304, 304]


def test_the_etag_cache_is_a_bounded_lru(live: Live, counting: CountingSession) -> None:
    with AuthzClient(live.url, api_key=live.keys["full"], session=counting, cache_size=1) as authz:
        authz.functions_of(DEMO_CPAS, MARIE)
        authz.functions_of(DEMO_CPAS, CLAIRE)  # evicts Marie
        authz.functions_of(DEMO_CPAS, MARIE)
        authz.functions_of(DEMO_CPAS, MARIE)
    assert counting.statuses == [200, 200, 200, 304]
    with AuthzClient(live.url, api_key=live.keys["full"], session=CountingSession(), cache_size=0) as off:
        off.functions_of(DEMO_CPAS, MARIE)
        assert off.functions_of(DEMO_CPAS, MARIE).not_modified is False


def test_a_change_of_rights_changes_the_etag(authz: AuthzClient, counting: CountingSession, live: Live) -> None:
    user = new_user()
    assert authz.user_seen(DEMO_CPAS, user, name="Test ETAG", lang="fr") is True
    before = authz.functions_of(DEMO_CPAS, user)
    assert before.active is True and before.functions == ()
    assert authz.functions_of(DEMO_CPAS, user).not_modified is True
    answer = requests.put(
        f"{live.url}/cpas/{DEMO_CPAS}/users/{user}/profiles", json={"profiles": [live.profiles["RMC-1"]]},
        headers={"Authorization": f"Bearer {live.keys['admin']}"}, timeout=5,
    )
    assert answer.status_code == 200, answer.text
    after = authz.functions_of(DEMO_CPAS, user)
    assert after.not_modified is False and after.etag != before.etag
    assert set(after.functions) == {"forms.list"}  # RMC-1, as the manual shows it: the forms listing only
    assert authz.allowed_functions(DEMO_CPAS, user) == frozenset(after.functions)
    assert counting.statuses[1:] == [200, 304, 200, 304]


def test_allowed_functions_is_fail_closed(authz: AuthzClient) -> None:
    marie = authz.allowed_functions(DEMO_CPAS, MARIE)
    assert "dossier.search" in marie and len(marie) > 100
    assert "help_request.list" not in authz.allowed_functions(DEMO_CPAS, ANNELIES)
    assert authz.allowed_functions(DEMO_CPAS, MICHEL) == frozenset()
    assert authz.functions_of(DEMO_CPAS, MICHEL).active is False
    assert authz.allowed_functions(UNKNOWN_CPAS, MARIE) == frozenset()
    with pytest.raises(AuthzError) as raised:
        authz.functions_of(UNKNOWN_CPAS, MARIE)
    assert raised.value.code == "unknown_cpas"
    with pytest.raises(AuthzError) as raised:
        authz.functions_of(DEMO_CPAS, MARIE, lang="en")
    assert raised.value.code == "invalid_request"


def test_user_ids_are_escaped_in_paths(authz: AuthzClient, counting: CountingSession) -> None:
    assert authz.functions_of(DEMO_CPAS, "a@b:c").user == "a@b:c"
    assert authz.functions_of(DEMO_CPAS, "..").user == ".."
    with pytest.raises(AuthzError) as raised:
        authz.functions_of(DEMO_CPAS, "a/b")  # not a valid user id: one segment, refused by the service
    assert raised.value.status in (400, 404)
    assert counting.paths() == [f"/cpas/{DEMO_CPAS}/users/a%40b%3Ac/functions",
                                f"/cpas/{DEMO_CPAS}/users/../functions",
                                f"/cpas/{DEMO_CPAS}/users/a%2Fb/functions"]


# -- PUT /cpas/{cpas}/users/{user} -------------------------------------------------------------------------
def test_user_seen_says_whether_the_user_was_created(authz: AuthzClient) -> None:
    user = new_user()
    assert authz.user_seen(DEMO_CPAS, user, name="Jan JANSSENS", lang="nl") is True
    assert authz.user_seen(DEMO_CPAS, user, name="Jan JANSSENS", lang="nl") is False
    assert authz.user_seen(DEMO_CPAS, MARIE, name="Marie LEBLANC", lang="fr") is False
    # an inactive user stays inactive
    assert authz.user_seen(DEMO_CPAS, MICHEL, name="Michel RENARD", lang="fr") is False
    assert authz.functions_of(DEMO_CPAS, MICHEL).active is False
    with pytest.raises(AuthzError) as raised:
        authz.user_seen(UNKNOWN_CPAS, user, name="X")
    assert (raised.value.code, raised.value.status) == ("unknown_cpas", 404)
    with pytest.raises(AuthzError) as raised:
        authz.user_seen(DEMO_CPAS, user, name="X", lang="en")
    assert raised.value.code == "invalid_request"


# -- lifetime ------------------------------------------------------------------------------------------------
def test_context_manager_closes_only_its_own_session(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[CountingSession] = []

    class Tracking(CountingSession):
        def __init__(self) -> None:
            super().__init__()
            made.append(self)

    monkeypatch.setattr(requests, "Session", Tracking)  # the class the client instantiates
    with AuthzClient(live.url, api_key=live.keys["full"]) as own:
        assert own.is_allowed(DEMO_CPAS, MARIE, "dossier.search")
    assert len(made) == 1 and made[0].closed is True

    theirs = CountingSession()
    with AuthzClient(live.url, api_key=live.keys["full"], session=theirs) as borrowed:
        assert borrowed.is_allowed(DEMO_CPAS, MARIE, "dossier.search")
    assert theirs.closed is False
    assert "Authorization" not in theirs.headers  # the caller's session is left as it was
    theirs.close()


def test_decisions_are_plain_values() -> None:
    assert Decision(False, 3, error=ErrorInfo("x", "y")) == Decision(False, 3, None, ErrorInfo("x", "y", {"a": 1}))
