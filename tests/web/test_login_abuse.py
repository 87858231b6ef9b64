"""Login abuse. (a) Unknown, inactive, existing and locked accounts get the same answer for the same
cost (one password hash each); (b) failed sign-ins are throttled per client address, before the
account lock can be reached from one address, and per username from any address, with Flask-Limiter;
the counts are shared by every worker, in the database or in Redis; (c) a lock and its end are written
to the Admin-Logs of each CPAS of the account. Throttled answers are the login page, in FR and NL."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from authz_service import create_app
from authz_service.admin import LOCK_MINUTES
from authz_service.models import AuditEntry
from authz_service.web import auth
from authz_service.web.settings import WebSettings, load_web_settings
from authz_service.web.throttle import LIMITER, DatabaseStorage, client_address
from tests.conftest import IN_CI

from .conftest import OTHER_CPAS, PASSWORD, FakeClock, Web, browser, page, without_throttle

REDIS_URL = os.environ.get("AUTHZ_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
THROTTLED = {"fr": "Trop de tentatives de connexion échouées. Attendez un quart d'heure avant de réessayer.",
             "nl": "Te veel mislukte aanmeldpogingen. Wacht een kwartier voor u het opnieuw probeert."}
REFUSED = "Nom d'utilisateur ou mot de passe incorrect. Après trop de tentatives échouées, la connexion est refusée " \
          "pendant un quart d'heure."
ERROR_RE = re.compile(r'<p class="field-error"[^>]*>([^<]*)</p>')


def redis_or_skip() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except Exception as exc:
        if IN_CI:
            pytest.fail(f"Redis is required in CI: {exc}")
        pytest.skip(f"Redis not available: {exc}")


@pytest.fixture(params=["database", "redis"])
def storage(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_app(storage: str, settings: Any, overrides: dict[str, Any]) -> Iterator[Any]:
    """Apps (workers) of one deployment, counting failed sign-ins in ``storage``."""
    extra: dict[str, Any] = {"notify": "off"}
    if storage == "redis":
        redis_or_skip()
        extra.update(redis_url=REDIS_URL, secret_key=f"test-{uuid.uuid4().hex}")  # counts of this test alone
    made: list[Flask] = []

    def make() -> Any:
        app = create_app({**overrides, **extra}, start_polling=False)
        app.config["TESTING"] = True
        made.append(app)
        return app

    yield make
    if storage == "redis" and made:
        with made[0].test_request_context():
            made[0].extensions[LIMITER].storage.reset()  # only this deployment's keys are under its prefix
    for app in made:
        app.extensions["authz"].close()


def attempt(web: Web, username: str, password: str, lang: str) -> Any:
    """A sign-in from a browser that prefers ``lang``."""
    headers = {"Accept-Language": lang}
    web.get("/ui/login", headers=headers)
    return web.post("/ui/login", {"username": username, "password": password}, headers=headers)


def refusal(response: Any) -> tuple[int, tuple[str, ...]]:
    return response.status_code, tuple(ERROR_RE.findall(page(response)))


def audit(service: Any, action: str) -> list[tuple[str | None, str]]:
    with service.db.reading() as session:
        rows = session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)).all()
    return [(r.cpas_id, r.target) for r in rows]


# -- (a) the same answer, the same cost --------------------------------------------------------------
def test_every_refusal_looks_the_same(app: Any, service: Any, accounts: dict[str, str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    without_throttle(app)  # the throttle is looked at below; here every attempt reaches the password check
    hashes: list[str] = []
    real = auth.verify_password
    monkeypatch.setattr(auth, "verify_password", lambda account, password: hashes.append(account.username)
                        or real(account, password))
    with service.db.transaction() as session:
        from authz_service.store import Store

        Store(session).admin_by_username("autre").active = False
    for _ in range(auth.MAX_FAILED_LOGINS):  # lock "multi"
        browser(app).login("multi", "wrong password")
    assert service.read(lambda store: store.admin_by_username("multi").locked_until) is not None

    cases = {
        "unknown": ("nobody-here", PASSWORD),
        "wrong password": ("gestionnaire", "wrong password"),
        "inactive, right password": ("autre", PASSWORD),
        "locked, right password": ("multi", PASSWORD),
        "locked, wrong password": ("multi", "wrong password"),
    }
    answers = {}
    for case, (username, password) in cases.items():
        hashes.clear()
        answers[case] = refusal(browser(app).login(username, password))
        assert len(hashes) == 1, (case, hashes)  # one argon2 verification, whatever the account
    assert set(answers.values()) == {(401, (REFUSED,))}, answers
    assert browser(app).login("gestionnaire", PASSWORD).status_code == 303


# -- (b) throttling --------------------------------------------------------------------------------------
def test_the_address_limit_comes_before_the_lock(make_app: Any, storage: str, accounts: dict[str, str]) -> None:
    app = make_app()
    clock = FakeClock().install(app)
    service = app.extensions["authz"]
    attacker = browser(app, "203.0.113.5")
    for _ in range(4):
        assert attacker.login("gestionnaire", "wrong password").status_code == 401
    for username, lang in (("gestionnaire", "fr"), ("beheerder", "nl")):  # even the right password, any name
        throttled = attempt(attacker, username, PASSWORD, lang)
        assert throttled.status_code == 429 and throttled.mimetype == "text/html"
        assert THROTTLED[lang] in page(throttled)
    locked = service.read(lambda store: store.admin_by_username("gestionnaire"))
    assert (locked.failed_logins, locked.locked_until) == (4, None)  # one address alone never locks anybody
    assert browser(app, "198.51.100.20").login("gestionnaire").status_code == 303  # the owner, elsewhere
    if storage == "database":  # Redis keeps its own time: only the database storage follows the test clock
        clock.advance(minutes=15)
        assert attacker.login("gestionnaire").status_code == 303


def test_the_username_limit_holds_across_addresses(make_app: Any, accounts: dict[str, str]) -> None:
    app = make_app()
    service = app.extensions["authz"]
    for username in ("nobody-here", "autre"):  # the same for an account that exists and one that does not
        for n in range(5):
            assert browser(app, f"192.0.2.{n + 1}").login(username, "wrong password").status_code == 401
        assert refusal(browser(app, "192.0.2.99").login(username, PASSWORD)) == (429, (THROTTLED["fr"],))
    assert service.read(lambda store: store.admin_by_username("autre").locked_until) is not None
    assert browser(app, "192.0.2.99").login("gestionnaire").status_code == 303  # other accounts go on


def test_counts_are_shared_by_the_workers(make_app: Any, accounts: dict[str, str]) -> None:
    first, second = make_app(), make_app()
    for worker in (first, second, first, second):
        assert browser(worker, "203.0.113.9").login("nobody-here", "wrong password").status_code == 401
    assert browser(second, "203.0.113.9").login("gestionnaire").status_code == 429
    assert browser(first, "203.0.113.9").login("gestionnaire").status_code == 429


def test_successful_sign_ins_are_not_counted(make_app: Any, accounts: dict[str, str]) -> None:
    app = make_app()
    for _ in range(8):
        web = browser(app, "203.0.113.10")
        assert web.login("gestionnaire").status_code == 303
        web.post("/ui/logout")


def test_an_ipv6_client_is_counted_by_its_64(app: Any, accounts: dict[str, str]) -> None:
    for n in range(4):
        assert browser(app, f"2001:db8:1:2::{n + 1}").login("nobody-here", "x").status_code == 401
    assert browser(app, "2001:db8:1:2:ffff::1").login("gestionnaire").status_code == 429
    assert browser(app, "2001:db8:1:3::1").login("gestionnaire").status_code == 303


def test_the_client_address_behind_a_trusted_proxy() -> None:
    app = Flask(__name__)
    app.extensions["authz_web"] = settings = load_web_settings({"AUTHZ_TRUSTED_PROXIES": "10.0.0.0/8"})
    cases = [
        ("10.1.2.3", "203.0.113.7", "203.0.113.7"),
        ("10.1.2.3", "198.51.100.1, 203.0.113.7, 10.9.9.9", "203.0.113.7"),  # the nearest untrusted hop
        ("192.0.2.50", "203.0.113.7", "192.0.2.50"),  # not from the proxy: the header is not believed
        ("10.1.2.3", "", "10.1.2.3"),
        ("::ffff:192.0.2.8", "", "192.0.2.8"),
    ]
    for remote, forwarded, expected in cases:
        with app.test_request_context(environ_base={"REMOTE_ADDR": remote},
                                      headers={"X-Forwarded-For": forwarded} if forwarded else {}):
            assert client_address(settings) == expected, (remote, forwarded)
    with app.test_request_context(environ_base={"REMOTE_ADDR": "127.0.0.1"}):
        assert client_address(WebSettings()) == "127.0.0.1"


def test_the_limits_are_settings() -> None:
    defaults = load_web_settings({})
    assert (defaults.login_address_limit, defaults.login_account_limit) == ("4 per 15 minutes", "5 per 15 minutes")
    custom = load_web_settings({"AUTHZ_WEB_LOGIN_ADDRESS_LIMIT": "3/minute;10/hour"})
    assert custom.login_address_limit == "3/minute;10/hour"
    with pytest.raises(ValueError, match="AUTHZ_WEB_LOGIN_ACCOUNT_LIMIT"):
        load_web_settings({"AUTHZ_WEB_LOGIN_ACCOUNT_LIMIT": "lots"})


def test_the_database_storage_is_a_moving_window(service: Any) -> None:
    now = [1_000_000.0]
    storage = DatabaseStorage("authz-database://", database=service.db, clock=lambda: now[0])
    assert storage.check()
    assert [storage.acquire_entry("k", 2, 60) for _ in range(3)] == [True, True, False]
    assert storage.get_moving_window("k", 2, 60) == (1_000_000.0, 2)
    now[0] += 30
    assert not storage.acquire_entry("k", 2, 60)
    now[0] += 31  # the first two left the window
    assert storage.acquire_entry("k", 2, 60) and storage.get_moving_window("k", 2, 60)[1] == 1
    storage.clear("k")
    assert storage.get("k") == 0


# -- (c) lock and unlock in the Admin-Logs of each CPAS ------------------------------------------------
def test_lock_and_unlock_are_in_the_admin_logs_of_each_cpas(app: Any, service: Any, demo: dict[str, Any],
                                                            accounts: dict[str, str], clock: FakeClock) -> None:
    cpas = demo["cpas"]
    for n in range(auth.MAX_FAILED_LOGINS):  # five addresses, one wrong password each
        browser(app, f"192.0.2.{n + 1}").login("multi", "wrong password")
    assert audit(service, "admin.locked") == [(cpas, "admin:multi"), (OTHER_CPAS, "admin:multi")]
    for username, label in (("gestionnaire", "Compte administrateur bloqué (trop de mots de passe erronés)"),
                            ("beheerder", "Beheerdersaccount geblokkeerd (te veel verkeerde wachtwoorden)")):
        manager = browser(app, "198.51.100.30")
        manager.login(username)
        logs = manager.text(f"/ui/cpas/{cpas}/audit")
        assert label in logs and "admin:multi" in logs
    other = browser(app, "198.51.100.31")
    other.login("autre")
    assert "admin:multi" in other.text(f"/ui/cpas/{OTHER_CPAS}/audit")

    clock.advance(minutes=LOCK_MINUTES)
    assert browser(app, "198.51.100.32").login("multi").status_code == 303
    assert audit(service, "admin.unlocked") == [(cpas, "admin:multi"), (OTHER_CPAS, "admin:multi")]
    manager = browser(app, "198.51.100.30")
    manager.login("gestionnaire")
    assert "Compte administrateur débloqué" in manager.text(f"/ui/cpas/{cpas}/audit")


def test_an_operator_lock_is_audited_once(app: Any, service: Any, accounts: dict[str, str]) -> None:
    for n in range(auth.MAX_FAILED_LOGINS):
        browser(app, f"192.0.2.{n + 1}").login("operateur", "wrong password")
    assert audit(service, "admin.locked") == [(None, "admin:operateur")]


def test_a_broken_throttle_storage_does_not_stop_sign_in(settings: Any, overrides: dict[str, Any],
                                                         accounts: dict[str, str]) -> None:
    """Redis down: sign-in goes on unthrottled (logged), and the lock in the database still holds."""
    app = create_app({**overrides, "notify": "off", "redis_url": "redis://127.0.0.1:1/0"}, start_polling=False)
    try:
        app.config["TESTING"] = True
        service = app.extensions["authz"]
        for _ in range(auth.MAX_FAILED_LOGINS):
            assert browser(app).login("autre", "wrong password").status_code == 401
        assert service.read(lambda store: store.admin_by_username("autre").locked_until) is not None
        assert browser(app).login("gestionnaire").status_code == 303
    finally:
        app.extensions["authz"].close()
