"""The client against `authz-service serve` (gunicorn) in a child process, as an application would meet it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from cpas_authz_client import AuthzClient, AuthzError

from support import ANNELIES, CLAIRE, DEMO_CPAS, MARIE, MICHEL, CountingSession, free_port, make_key, prepare_database

SCRIPT = Path(sys.executable).with_name("authz-service")


@dataclass
class Running:
    url: str
    key: str
    process: subprocess.Popen[bytes]
    log: Path


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    if not SCRIPT.exists():
        pytest.fail(f"{SCRIPT} not found: install the service in this environment")
    folder = tmp_path_factory.mktemp("served")
    _, settings = prepare_database(folder / "authz.sqlite3")
    key = make_key(settings, "enforce,users")
    port = free_port()
    metrics = folder / "metrics"
    metrics.mkdir()
    env = {**os.environ, "AUTHZ_DATABASE_URL": settings.database_url, "PROMETHEUS_MULTIPROC_DIR": str(metrics)}
    log = folder / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(SCRIPT), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=folder,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"the server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if requests.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):  # not listening yet, or still booting
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the server was not ready in 30 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield Running(url=url, key=key, process=process, log=log)
    finally:
        _stop(process)


def test_decisions_from_the_served_service(running: Running) -> None:
    with AuthzClient(running.url, api_key=running.key) as authz:
        assert authz.is_allowed(DEMO_CPAS, MARIE, "dossier.search") is True
        assert authz.is_allowed(DEMO_CPAS, ANNELIES, "help_request.list") is False
        assert authz.is_allowed(DEMO_CPAS, MICHEL, "dossier.search") is False
        explained = authz.check(DEMO_CPAS, ANNELIES, "help_request.list", explain=True)
        assert explained.explanation is not None
        assert explained.explanation.missing_prerequisites == ("dossier.search",)
        assert authz.allowed_many([
            (DEMO_CPAS, MARIE, "dossier.search"), (DEMO_CPAS, MARIE, "no.such"), (DEMO_CPAS, MICHEL, "dossier.list")
        ]) == [True, False, False]


def test_functions_and_users_seen_through_the_served_service(running: Running) -> None:
    session = CountingSession()
    with AuthzClient(running.url, api_key=running.key, session=session) as authz:
        first = authz.functions_of(DEMO_CPAS, CLAIRE, lang="nl")
        assert authz.functions_of(DEMO_CPAS, CLAIRE, lang="nl").functions == first.functions
        assert session.statuses == [200, 304]
        user = f"served-{time.monotonic_ns()}"
        assert authz.user_seen(DEMO_CPAS, user, name="Served USER", lang="nl") is True
        assert authz.user_seen(DEMO_CPAS, user, name="Served USER", lang="nl") is False
    session.close()


def test_a_wrong_key_is_refused_by_the_served_service(running: Running) -> None:
    with AuthzClient(running.url, api_key="azk_0_wrong") as authz:
        with pytest.raises(AuthzError) as raised:
            authz.check(DEMO_CPAS, MARIE, "dossier.search")
        assert raised.value.status == 401
        assert authz.is_allowed(DEMO_CPAS, MARIE, "dossier.search") is False


def test_after_the_server_stops_every_answer_is_no(running: Running) -> None:
    # last in this module: it stops the server
    with AuthzClient(running.url, api_key=running.key, retries=1, backoff=0) as authz:
        assert authz.is_allowed(DEMO_CPAS, MARIE, "dossier.search") is True
        _stop(running.process)
        assert running.process.returncode is not None
        assert authz.is_allowed(DEMO_CPAS, MARIE, "dossier.search") is False
        assert authz.allowed_functions(DEMO_CPAS, MARIE) == frozenset()
        with pytest.raises(AuthzError) as raised:
            authz.check(DEMO_CPAS, MARIE, "dossier.search")
        assert raised.value.code == "connection_error"
