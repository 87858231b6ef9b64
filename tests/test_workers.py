"""What users run: ``authz-service serve`` with several gunicorn workers, each request on a connection of
its own so that consecutive requests reach different workers. Once a change has been answered, no worker
decides without it (one instance: no effort from the caller), and another instance does too when the
caller passes the change's ``policy_version`` as ``min_policy_version``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from authz_service.cli import init_db
from authz_service.config import load_settings
from authz_service.db import Database
from authz_service.security import new_api_key
from authz_service.store import Store

from .serving import exchange, running_server

CPAS = "0212345668"
USER = "71020312345"
FN = "dossier.search"
PAIRS = 200


def request(base: str, method: str, path: str, key: str, body: Any = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    return exchange(base, method, path, body, key, headers=headers)


def _prepare(url: str) -> str:
    init_db(load_settings({"database_url": url}))
    database = Database(url)
    try:
        with database.transaction() as session:
            return new_api_key(Store(session), "workers", ("enforce", "users", "admin"), None)
    finally:
        database.dispose()


def _rounds(write: str, read: str, key: str, *, token: bool) -> tuple[int, int, int]:
    """PAIRS change-then-decide pairs written through ``write`` and decided through ``read``; returns
    (stale decisions, functions re-reads that were not 304, worker pids seen)."""
    status, _, _ = request(write, "POST", "/cpas", key, {"cpas": CPAS, "name_fr": "x", "name_nl": "y",
                                                         "region": "wallonia"})
    assert status == 201
    assert request(write, "PUT", f"/cpas/{CPAS}/users/{USER}", key, {"name": "Agent"})[0] == 201
    builtin = request(write, "GET", f"/cpas/{CPAS}/profiles", key)[2][0]["id"]
    stale = not_304 = 0
    steps = [("PUT", f"/cpas/{CPAS}/users/{USER}/profiles", {"profiles": [builtin]}, True),
             ("POST", f"/cpas/{CPAS}/users/{USER}/deactivate", None, False)]
    for i in range(PAIRS):
        method, path, body, expected = steps[i % 2]
        if i % 2 == 0 and i:
            assert request(write, "POST", f"/cpas/{CPAS}/users/{USER}/reactivate", key)[0] == 200
        status, headers, answer = request(write, method, path, key, body)
        assert status == 200, answer
        version = int(headers["x-policy-version"])
        assert answer["policy_version"] == version
        ask: dict[str, Any] = {"cpas": CPAS, "user": USER, "function": FN}
        if token:
            ask["min_policy_version"] = version
        status, _, decision = request(read, "POST", "/enforce", key, ask)
        assert status == 200, decision
        if decision["allowed"] is not expected or decision["policy_version"] < version:
            stale += 1
        query = f"?min_policy_version={version}" if token else ""
        first = request(read, "GET", f"/cpas/{CPAS}/users/{USER}/functions{query}", key)
        again = request(read, "GET", f"/cpas/{CPAS}/users/{USER}/functions{query}", key,
                        headers={"If-None-Match": first[1]["etag"]})
        not_304 += again[0] != 304
    return stale, not_304, PAIRS


def test_every_worker_of_one_instance_decides_with_every_answered_change(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'authz.sqlite3'}"
    key = _prepare(url)
    # a poll interval of a minute: only the version board can explain an up-to-date worker
    with running_server({"AUTHZ_DATABASE_URL": url, "AUTHZ_POLL_INTERVAL": "60", "AUTHZ_NOTIFY": "off",
                         "AUTHZ_MAX_STALENESS": "600"}, workers=2) as base:
        stale, not_304, pairs = _rounds(base, base, key, token=False)
    assert (stale, not_304) == (0, 0), f"{stale} stale decisions and {not_304} changed ETags in {pairs} pairs"


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_two_instances_agree_with_the_token(database_url: str, tmp_path: Path) -> None:
    key = _prepare(database_url)
    # a poll a minute trusts the engine for 15 s by default: on a busy machine the rounds take longer, and the
    # test is about the token, not about staleness
    env = {"AUTHZ_DATABASE_URL": database_url, "AUTHZ_POLL_INTERVAL": "60", "AUTHZ_NOTIFY": "off",
           "AUTHZ_MAX_STALENESS": "600"}
    # two hosts: a version board each, no notifications, a poll a minute: only the token can help
    with running_server({**env, "AUTHZ_VERSION_BOARD": str(tmp_path / "a")}, workers=2) as one, \
            running_server({**env, "AUTHZ_VERSION_BOARD": str(tmp_path / "b")}, workers=2) as two:
        stale, not_304, pairs = _rounds(one, two, key, token=True)
    assert (stale, not_304) == (0, 0), f"{stale} stale decisions and {not_304} changed ETags in {pairs} pairs"
