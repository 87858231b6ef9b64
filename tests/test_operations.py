"""Operations: fail closed when the store is gone or the policy is stale, readiness, metrics,
migrations that match the models, and the packaging traps of pycasbin."""

from __future__ import annotations

import importlib.metadata
import re
import time
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from authz_service import create_app
from authz_service.cli import migrate
from authz_service.config import load_settings
from authz_service.models import Base

CPAS = "0212345668"
ENFORCE = {"cpas": CPAS, "user": "11111111111", "function": "dossier.search"}


def test_old_casbin_distributions_are_not_installed() -> None:
    names = {re.sub(r"[-_.]+", "-", d.metadata["Name"] or "").lower() for d in importlib.metadata.distributions()}
    assert "pycasbin" in names and "sqlalchemy-adapter" in names
    assert "casbin" not in names, "the old `casbin` distribution overwrites pycasbin's files"
    assert "casbin-sqlalchemy-adapter" not in names


def test_migrations_match_the_models(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'm.sqlite3'}"
    migrate(load_settings({"database_url": url}))
    engine = create_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []


def test_store_unreachable_means_no_decision() -> None:
    app = create_app({"database_url": "postgresql+psycopg://postgres@127.0.0.1:1/none", "poll_interval": 0},
                     start_polling=False)
    try:
        client = app.test_client()
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json["status"] == "unavailable"
        answer = client.post("/enforce", json=ENFORCE, headers={"Authorization": "Bearer azk_x_y"})
        assert answer.status_code == 503
        assert answer.json["error"]["code"] == "unavailable"
        assert "allowed" not in answer.json
    finally:
        app.extensions["authz"].close()


@pytest.fixture
def polling(overrides: dict[str, Any]) -> dict[str, Any]:
    # a poller (never started here) is what can tell the engine it went stale; with polling off there is
    # no such thing (README, AUTHZ_POLL_INTERVAL=0)
    overrides["poll_interval"] = 60
    return overrides


def test_stale_policy_refuses_decisions(polling: Any, app: Any, service: Any, operator: Any,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    assert operator.post("/cpas", {"cpas": CPAS, "name_fr": "CPAS", "name_nl": "OCMW",
                                   "region": "brussels"}).status_code == 201
    assert operator.post("/enforce", ENFORCE).status_code == 200
    # time passes and the poller has not reached the store: the engine's clock runs ahead of its last sync
    ahead = service.settings.max_staleness + 1
    monkeypatch.setattr(service.engine, "clock", lambda: time.monotonic() + ahead)
    refused = operator.post("/enforce", ENFORCE)
    assert refused.status_code == 503 and refused.json["error"]["code"] == "unavailable"
    batch = operator.post("/enforce/batch", {"requests": [{"id": 1, **ENFORCE}]})
    assert batch.status_code == 503
    assert app.test_client().get("/readyz").status_code == 503
    assert service.sync()  # the store answers again
    assert operator.post("/enforce", ENFORCE).status_code == 200


def test_catalog_not_loaded_means_not_ready(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    migrate(load_settings({"database_url": url}))  # schema, but no `init-db` catalog load
    app = create_app({"database_url": url, "poll_interval": 0}, start_polling=False)
    try:
        ready = app.test_client().get("/readyz")
        assert ready.status_code == 503
        assert any("init-db" in p for p in ready.json["problems"])
    finally:
        app.extensions["authz"].close()


def test_metrics_count_decisions(operator: Any, app: Any) -> None:
    operator.post("/cpas", {"cpas": CPAS, "name_fr": "CPAS", "name_nl": "OCMW", "region": "brussels"})
    before = _counter(app, 'authz_decisions_total{result="deny"}')
    operator.post("/enforce", ENFORCE)
    assert _counter(app, 'authz_decisions_total{result="deny"}') == before + 1
    text = app.test_client().get("/metrics").get_data(as_text=True)
    assert "authz_http_request_duration_seconds_bucket" in text


def _counter(app: Any, name: str) -> float:
    for line in app.test_client().get("/metrics").get_data(as_text=True).splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


@pytest.mark.parametrize("route", ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"])
def test_operations_routes_need_no_key(app: Any, route: str) -> None:
    assert app.test_client().get(route).status_code == 200


def test_session_key_is_shared_by_every_worker(settings: Any, overrides: dict[str, Any]) -> None:
    unset = {**overrides, "secret_key": ""}
    first = create_app(unset, start_polling=False)
    second = create_app(unset, start_polling=False)
    try:
        for app in (first, second):  # read from the database on the first request that needs it
            assert app.test_client().get("/ui/login").status_code == 200
        assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"]
        assert len(first.config["SECRET_KEY"]) == 64
        given = create_app({**overrides, "secret_key": "from-the-environment"}, start_polling=False)
        assert given.config["SECRET_KEY"] == "from-the-environment"
        given.extensions["authz"].close()
    finally:
        first.extensions["authz"].close()
        second.extensions["authz"].close()


def test_ready_without_poller_or_notifications(app: Any, service: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Polling off and notifications off (one host): decisions never go stale, and neither does readiness
    (it said "the policy has not been refreshed recently" 15 s after the last sync)."""
    assert service.settings.poll_interval == 0 and service.notifier.kind == "off"
    ahead = service.settings.max_staleness + 1
    monkeypatch.setattr(service.engine, "clock", lambda: time.monotonic() + ahead)
    assert app.test_client().get("/readyz").status_code == 200
