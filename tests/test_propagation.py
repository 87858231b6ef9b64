"""Several instances in step: a change made through one instance reaches another through PostgreSQL
NOTIFY or Redis pub/sub well before the next poll (the poll interval here is a minute, so only the
notification can explain a quick update), and a message for a rolled-back change is never sent."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from authz_service.cli import init_db
from authz_service.config import load_settings
from authz_service.service import Service

from .conftest import IN_CI

REDIS_URL = os.environ.get("AUTHZ_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CPAS = "0212345668"
USER = "11111111111"


def redis_or_skip() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except Exception as exc:
        if IN_CI:
            pytest.fail(f"Redis is required in CI: {exc}")
        pytest.skip(f"Redis not available: {exc}")


def pair(database_url: str, notify: str) -> tuple[Service, Service]:
    settings = load_settings({"database_url": database_url, "poll_interval": 60, "notify": notify,
                              "redis_url": REDIS_URL if notify == "redis" else None})
    init_db(settings)
    writer, reader = Service(settings), Service(settings)
    for svc in (writer, reader):
        svc.sync()
    reader.start_polling()  # the listener; its poller would wait a minute
    return writer, reader


def wait_for(check: Any, limit: float = 5.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if check():
            return time.monotonic() - start
        time.sleep(0.005)
    raise AssertionError("the other instance never caught up")


@pytest.mark.parametrize(
    ("backend", "notify"), [("postgres", "postgres"), ("postgres", "redis"), ("sqlite", "redis")], indirect=["backend"]
)
def test_change_reaches_the_other_instance(database_url: str, backend: str, notify: str) -> None:
    if notify == "redis":
        redis_or_skip()
    writer, reader = pair(database_url, notify)
    try:
        assert writer.notifier.kind == reader.notifier.kind == notify
        time.sleep(0.3)  # let the listener subscribe
        with writer.admin("test") as admin:
            admin.create_cpas(CPAS, "CPAS", "OCMW", "wallonia")
        wait_for(lambda: CPAS in reader.engine.current().policies)  # type: ignore[union-attr]
        with writer.admin("test") as admin:
            profile = admin.create_profile(CPAS, description_fr="Recherche", description_nl=None,
                                           functions=["dossier.search"])
            admin.user_seen(CPAS, USER, name="Agent", lang="fr")
        delays = []
        for round_ in range(5):
            with writer.admin("test") as admin:
                admin.set_user_profiles(CPAS, USER, [profile.id] if round_ % 2 == 0 else [])
            expected = round_ % 2 == 0
            delays.append(wait_for(
                lambda e=expected: reader.policy(CPAS).decide(USER, "dossier.search").allowed is e))
            assert reader.policy(CPAS).version == writer.policy(CPAS).version
        assert max(delays) < 1.0, delays
    finally:
        writer.close()
        reader.close()


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_rolled_back_change_sends_nothing(database_url: str) -> None:
    writer, reader = pair(database_url, "postgres")
    seen: list[str] = []
    original = reader.refresh
    reader.refresh = lambda cpas: (seen.append(cpas), original(cpas))  # type: ignore[method-assign]
    reader.notifier.close()
    reader.notifier = type(reader.notifier)(database_url)
    reader.notifier.listen(reader.refresh)
    try:
        time.sleep(0.3)
        with writer.admin("test") as admin:
            admin.create_cpas(CPAS, "CPAS", "OCMW", "wallonia")
        wait_for(lambda: seen == [CPAS])
        with pytest.raises(RuntimeError), writer.admin("test") as admin:
            admin.user_seen(CPAS, USER, name="Agent", lang="fr")
            raise RuntimeError("rolled back")
        time.sleep(0.5)
        assert seen == [CPAS]
    finally:
        writer.close()
        reader.close()
