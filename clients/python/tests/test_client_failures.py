"""What the real service does not do on demand: a closed port, a slow answer, garbage, a hang-up, a proxy's
HTML page. Every one must fail closed, and only connection failures may be retried."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest

from cpas_authz_client import AuthzClient, AuthzError, CheckRequest, Decision, ErrorInfo

from support import DEMO_CPAS, MARIE, CountingSession, Stub, closed_port, hang_up, reply, sleep_then

OK = json.dumps({"allowed": True, "policy_version": 7})


def enforce_body(stub: Stub, index: int = 0) -> Any:
    return json.loads(stub.requests[index][3])


# -- the stub itself can say yes, so the denials below mean something ----------------------------------------
def test_a_well_formed_allow_is_an_allow(stub: Stub) -> None:
    stub.then(reply(200, OK))
    with AuthzClient(stub.url, api_key="k-123") as authz:
        assert authz.is_allowed(DEMO_CPAS, MARIE, "dossier.search") is True
        assert authz.check(DEMO_CPAS, MARIE, "dossier.search") == Decision(True, 7)
    method, path, headers, _ = stub.requests[0]
    assert (method, path) == ("POST", "/enforce")
    assert headers["Authorization"] == "Bearer k-123"
    assert headers["User-Agent"].startswith("cpas-authz-client/")
    assert enforce_body(stub) == {"cpas": DEMO_CPAS, "user": MARIE, "function": "dossier.search", "explain": False}


def test_a_base_url_with_a_prefix_and_a_trailing_slash(stub: Stub) -> None:
    stub.then(reply(200, OK))
    with AuthzClient(stub.url + "/authz/", api_key="k") as authz:
        assert authz.is_allowed(DEMO_CPAS, MARIE, "dossier.search")
    assert stub.requests[0][1] == "/authz/enforce"


# -- malformed answers -------------------------------------------------------------------------------------
MALFORMED = [
    pytest.param(200, b"not json{", id="not-json"),
    pytest.param(200, b"\xff\xfe\x00garbage", id="binary"),
    pytest.param(200, b"", id="empty"),
    pytest.param(200, b"[true]", id="list"),
    pytest.param(200, b"{}", id="no-fields"),
    pytest.param(200, b'{"allowed": true}', id="no-policy-version"),
    pytest.param(200, b'{"allowed": "true", "policy_version": 1}', id="allowed-string"),
    pytest.param(200, b'{"allowed": 1, "policy_version": 1}', id="allowed-int"),
    pytest.param(200, b'{"allowed": null, "policy_version": 1}', id="allowed-null"),
    pytest.param(200, b'{"allowed": true, "policy_version": true}', id="version-bool"),
    pytest.param(200, b'{"allowed": true, "policy_version": 1, "explanation": "yes"}', id="explanation-string"),
    pytest.param(200, b'{"allowed": true, "policy_version": 1, "explanation": {"reason": 1}}', id="reason-int"),
]


@pytest.mark.parametrize(("status", "body"), MALFORMED)
def test_malformed_answers_are_errors_and_denials(
    stub: Stub, caplog: pytest.LogCaptureFixture, status: int, body: bytes
) -> None:
    stub.then(reply(status, body))
    with AuthzClient(stub.url, api_key="k") as authz:
        with pytest.raises(AuthzError) as raised:
            authz.check(DEMO_CPAS, MARIE, "dossier.search", explain=True)
        assert (raised.value.code, raised.value.status) == ("malformed_response", 200)
        with caplog.at_level(logging.WARNING, logger="cpas_authz_client"):
            assert authz.is_allowed(DEMO_CPAS, MARIE, "dossier.search") is False
    assert "denying" in caplog.text and "malformed_response" in caplog.text
    assert stub.hits == 2  # an answer, even a bad one, is never retried


@pytest.mark.parametrize(
    ("status", "body", "content_type", "code"),
    [
        (502, "<html><body>Bad Gateway</body></html>", "text/html", "unexpected_status"),
        (500, '{"error": {"code": "internal_error", "message": "boom"}}', "application/json", "internal_error"),
        (503, '{"error": {"code": "unavailable", "message": "store down"}}', "application/json", "unavailable"),
        (429, '{"error": "slow down"}', "application/json", "unexpected_status"),
        (302, "", "text/plain", "unexpected_status"),
        (204, "", "application/json", "unexpected_status"),
    ],
)
def test_other_statuses_are_errors_never_retried(
    stub: Stub, status: int, body: str, content_type: str, code: str
) -> None:
    stub.then(reply(status, body, content_type, {"Location": "http://127.0.0.1:1/elsewhere"}))
    session = CountingSession()
    with AuthzClient(stub.url, api_key="k", session=session, retries=3, backoff=0) as authz:
        with pytest.raises(AuthzError) as raised:
            authz.check(DEMO_CPAS, MARIE, "dossier.search")
        assert (raised.value.code, raised.value.status) == (code, status)
        assert authz.is_allowed(DEMO_CPAS, MARIE, "dossier.search") is False
        assert authz.allowed_many([(DEMO_CPAS, MARIE, "dossier.search")]) == [False]
        assert authz.allowed_functions(DEMO_CPAS, MARIE) == frozenset()
    assert stub.hits == 4  # redirects are not followed, nothing is retried
    session.close()


# -- the network ----------------------------------------------------------------------------------------------
def test_server_down_is_retried_then_denied(counting: CountingSession, caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    with AuthzClient(url, api_key="k", session=counting, retries=2, backoff=0.05) as authz:
        started = time.monotonic()
        with pytest.raises(AuthzError) as raised:
            authz.check(DEMO_CPAS, MARIE, "dossier.search")
        elapsed = time.monotonic() - started
        assert (raised.value.code, raised.value.status) == ("connection_error", None)
        assert len(counting.sent) == 3  # 1 + 2 retries
        assert 0.15 <= elapsed < 2  # backoff 0.05 then 0.1
        with caplog.at_level(logging.WARNING, logger="cpas_authz_client"):
            assert authz.is_allowed(DEMO_CPAS, MARIE, "dossier.search") is False
            assert authz.allowed_many([(DEMO_CPAS, MARIE, "dossier.search")] * 2) == [False, False]
            assert authz.allowed_functions(DEMO_CPAS, MARIE) == frozenset()
        assert "connection_error" in caplog.text
        # a connection refused never reached the server: even the PUT is retried
        with pytest.raises(AuthzError, match="connection_error"):
            authz.user_seen(DEMO_CPAS, MARIE, name="Marie")
    assert len(counting.sent) == 3 * 5


def test_no_retries_means_one_attempt(counting: CountingSession) -> None:
    with AuthzClient(f"http://127.0.0.1:{closed_port()}", api_key="k", session=counting, retries=0) as authz:
        assert authz.is_allowed(DEMO_CPAS, MARIE, "dossier.search") is False
    assert len(counting.sent) == 1


def test_a_retry_that_connects_gets_the_answer(stub: Stub, counting: CountingSession) -> None:
    stub.then(hang_up, reply(200, OK))
    with AuthzClient(stub.url, api_key="k", session=counting, retries=2, backoff=0) as authz:
        assert authz.is_allowed(DEMO_CPAS, MARIE, "dossier.search") is True
    assert stub.hits == 2


def test_a_read_timeout_is_not_retried(stub: Stub, counting: CountingSession) -> None:
    stub.then(sleep_then(1.0, reply(200, OK)))
    with AuthzClient(stub.url, api_key="k", session=counting, timeout=0.2, retries=3, backoff=0) as authz:
        started = time.monotonic()
        with pytest.raises(AuthzError) as raised:
            authz.check(DEMO_CPAS, MARIE, "dossier.search")
        assert time.monotonic() - started < 0.9
        assert (raised.value.code, raised.value.status) == ("timeout", None)
        assert stub.hits == 1
        assert authz.is_allowed(DEMO_CPAS, MARIE, "dossier.search") is False
        assert authz.allowed_functions(DEMO_CPAS, MARIE) == frozenset()
        with pytest.raises(AuthzError, match="timeout"):
            authz.user_seen(DEMO_CPAS, MARIE, name="Marie")
    assert stub.hits == 4


def test_a_hang_up_after_sending_is_retried_only_for_read_only_calls(stub: Stub) -> None:
    stub.then(hang_up)
    with AuthzClient(stub.url, api_key="k", retries=2, backoff=0) as authz:
        with pytest.raises(AuthzError, match="connection_error"):
            authz.check(DEMO_CPAS, MARIE, "dossier.search")
        assert stub.hits == 3
        with pytest.raises(AuthzError, match="connection_error"):
            authz.functions_of(DEMO_CPAS, MARIE)
        assert stub.hits == 6
        # the PUT may have been applied: a second copy would turn its 201 into a 200
        with pytest.raises(AuthzError, match="connection_error"):
            authz.user_seen(DEMO_CPAS, MARIE, name="Marie")
        assert stub.hits == 7


# -- batches ---------------------------------------------------------------------------------------------------
def test_a_batch_whose_results_do_not_line_up_is_refused(stub: Stub) -> None:
    two = [(DEMO_CPAS, MARIE, "dossier.search"), (DEMO_CPAS, MARIE, "dossier.list")]
    stub.then(
        reply(200, json.dumps({"policy_version": 1, "results": [{"id": "0", "allowed": True}]})),
        reply(200, json.dumps({"policy_version": 1, "results": [{"id": "1", "allowed": True},
                                                                 {"id": "0", "allowed": True}]})),
        reply(200, json.dumps({"results": []})),
        reply(200, json.dumps({"policy_version": 1, "results": [{"id": "0", "allowed": "yes"},
                                                                 {"id": "1", "allowed": True, "error": {
                                                                     "code": "odd", "message": "m"}}]})),
    )
    with AuthzClient(stub.url, api_key="k") as authz:
        for _ in range(2):
            with pytest.raises(AuthzError, match="malformed_response"):
                authz.check_many(two)
        assert authz.allowed_many(two) == [False, False]
        decisions = authz.check_many(two)
    assert (decisions[0].allowed, decisions[0].policy_version) == (False, 1)
    assert decisions[0].error is not None and decisions[0].error.code == "malformed_response"
    assert "allowed" in decisions[0].error.message
    assert decisions[1] == Decision(False, 1, error=ErrorInfo("odd", "m"))
    sent = json.loads(stub.requests[0][3])
    assert sent == {"requests": [{"id": "0", "cpas": DEMO_CPAS, "user": MARIE, "function": "dossier.search"},
                                 {"id": "1", "cpas": DEMO_CPAS, "user": MARIE, "function": "dossier.list"}]}


# -- user functions ----------------------------------------------------------------------------------------------
FUNCTIONS = {"cpas": DEMO_CPAS, "user": MARIE, "active": True, "policy_version": 3,
             "profiles": [{"id": 2, "description": "Full"}], "functions": ["dossier.list", "dossier.search"]}


def test_the_cached_body_is_never_served_on_an_error(stub: Stub) -> None:
    stub.then(
        reply(200, json.dumps(FUNCTIONS), headers={"ETag": '"v1"'}),
        reply(304, b"", headers={"ETag": '"v1"'}),
        reply(503, '{"error": {"code": "unavailable", "message": "down"}}'),
        reply(200, json.dumps({**FUNCTIONS, "functions": ["dossier.list"]}), headers={"ETag": '"v2"'}),
    )
    with AuthzClient(stub.url, api_key="k") as authz:
        assert authz.allowed_functions(DEMO_CPAS, MARIE) == {"dossier.list", "dossier.search"}
        assert authz.functions_of(DEMO_CPAS, MARIE).not_modified is True
        assert authz.allowed_functions(DEMO_CPAS, MARIE) == frozenset()
        assert authz.functions_of(DEMO_CPAS, MARIE).functions == ("dossier.list",)
    sent = [r[2].get("If-None-Match") for r in stub.requests]
    assert sent == [None, '"v1"', '"v1"', None]  # the error dropped the cached copy
    path = f"/cpas/{DEMO_CPAS}/users/{MARIE}/functions?lang=fr"
    # after the first answer, the version it carried is passed on: never an older answer afterwards
    token = f"&min_policy_version={FUNCTIONS['policy_version']}"
    assert [r[1] for r in stub.requests] == [path] + [path + token] * 3


@pytest.mark.parametrize(
    "body",
    [
        {**FUNCTIONS, "functions": "dossier.search"},
        {**FUNCTIONS, "functions": [1]},
        {**FUNCTIONS, "active": "yes"},
        {**FUNCTIONS, "user": "someone-else"},
        {**FUNCTIONS, "profiles": [{"description": "no id"}]},
    ],
)
def test_malformed_functions_are_refused(stub: Stub, body: dict[str, Any]) -> None:
    stub.then(reply(200, json.dumps(body), headers={"ETag": '"x"'}))
    with AuthzClient(stub.url, api_key="k") as authz:
        with pytest.raises(AuthzError, match="malformed_response"):
            authz.functions_of(DEMO_CPAS, MARIE)
        assert authz.allowed_functions(DEMO_CPAS, MARIE) == frozenset()


def test_a_304_without_a_cached_copy_is_an_error(stub: Stub) -> None:
    stub.then(reply(304, b""))
    with AuthzClient(stub.url, api_key="k") as authz, pytest.raises(AuthzError) as raised:
        authz.functions_of(DEMO_CPAS, MARIE)
    assert (raised.value.code, raised.value.status) == ("unexpected_status", 304)


def test_an_inactive_user_has_no_functions_whatever_the_list_says(stub: Stub) -> None:
    stub.then(reply(200, json.dumps({**FUNCTIONS, "active": False})))
    with AuthzClient(stub.url, api_key="k") as authz:
        assert authz.allowed_functions(DEMO_CPAS, MARIE) == frozenset()
        assert authz.functions_of(DEMO_CPAS, MARIE).allows("dossier.search") is False


# -- construction -------------------------------------------------------------------------------------------------
def test_options_are_keyword_only_and_checked() -> None:
    with pytest.raises(TypeError):
        AuthzClient("http://127.0.0.1:1", "key")  # type: ignore[call-arg]
    for bad in ({"timeout": 0}, {"timeout": (1.0, -1.0)}, {"retries": -1}, {"backoff": -0.1}, {"cache_size": -1}):
        with pytest.raises(ValueError):
            AuthzClient("http://127.0.0.1:1", api_key="k", **bad)
    with pytest.raises(ValueError):
        AuthzClient("127.0.0.1:1", api_key="k")
    with pytest.raises(ValueError):
        AuthzClient("http://127.0.0.1:1", api_key=" ")
    client = AuthzClient("http://127.0.0.1:1/", api_key="secret-key-text")
    assert "secret-key-text" not in repr(client) and client.timeout == 2.0 and client.retries == 2
    client.close()


# -- consistency tokens ------------------------------------------------------------------------------------------
def test_the_highest_version_seen_is_passed_on_so_answers_never_go_back(stub: Stub) -> None:
    stub.then(
        reply(200, json.dumps({"allowed": True, "policy_version": 7})),
        reply(201, json.dumps({"user": MARIE, "policy_version": 9}), headers={"X-Policy-Version": "9"}),
        reply(200, json.dumps({"allowed": True, "policy_version": 9})),
        reply(200, json.dumps({"policy_version": 9, "results": [{"id": "0", "allowed": True, "policy_version": 9},
                                                                {"id": "1", "allowed": False, "policy_version": 1}]})),
        reply(200, json.dumps({"allowed": False, "policy_version": 12})),
    )
    with AuthzClient(stub.url, api_key="k") as authz:
        authz.check(DEMO_CPAS, MARIE, "dossier.search")  # nothing seen yet: no token
        assert authz.user_seen(DEMO_CPAS, MARIE, name="Marie") is True  # its change carries version 9
        authz.check(DEMO_CPAS, MARIE, "dossier.search")
        authz.check_many([(DEMO_CPAS, MARIE, "dossier.search"), CheckRequest("0212345668", MARIE, "forms.list")])
        authz.check(DEMO_CPAS, MARIE, "dossier.search", min_policy_version=12)  # asked for more: more is sent
    bodies = [json.loads(r[3]) for r in stub.requests]
    assert "min_policy_version" not in bodies[0]
    assert bodies[2]["min_policy_version"] == 9
    assert bodies[3]["requests"][0]["min_policy_version"] == 9
    assert "min_policy_version" not in bodies[3]["requests"][1]  # another CPAS: nothing seen of it
    assert bodies[4]["min_policy_version"] == 12


def test_tracking_can_be_turned_off_and_a_version_told(stub: Stub) -> None:
    stub.then(reply(200, json.dumps({"allowed": True, "policy_version": 7})))
    with AuthzClient(stub.url, api_key="k", track_versions=False) as authz:
        authz.check(DEMO_CPAS, MARIE, "dossier.search")
        authz.check(DEMO_CPAS, MARIE, "dossier.search")
    assert all("min_policy_version" not in json.loads(r[3]) for r in stub.requests)
    with AuthzClient(stub.url, api_key="k") as authz:
        authz.saw_version(DEMO_CPAS, 40)  # e.g. the policy_version of an admin change made elsewhere
        authz.check(DEMO_CPAS, MARIE, "dossier.search")
    assert json.loads(stub.requests[-1][3])["min_policy_version"] == 40
