"""Fixtures of the web UI tests: admin accounts on the demo CPAS and on a second CPAS, and a test
client that keeps the CSRF token of the last page it read."""

from __future__ import annotations

import html
import re
import shutil
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher

from authz_service.admin import Admin
from authz_service.catalog import load_catalog
from authz_service.cli import init_db, seed_demo
from authz_service.config import load_settings
from authz_service.db import Database
from authz_service.models import AdminAccount
from authz_service.store import Store
from authz_service.web.auth import CLOCK
from authz_service.web.throttle import LIMITER

PASSWORD = "correct horse battery"
TOKEN_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"')
OTHER_CPAS = "0212345668"  # a valid KBO number: 97 - 2123456 % 97 = 68
LANG_ACCOUNT = {"fr": "gestionnaire", "nl": "beheerder"}


def kbo_ok(number: str) -> bool:
    return 97 - int(number[:8]) % 97 == int(number[8:])


assert kbo_ok(OTHER_CPAS)


ACCOUNTS = {  # username -> (CPAS, operator, language)
    "gestionnaire": (["demo"], False, "fr"),
    "beheerder": (["demo"], False, "nl"),
    "autre": ([OTHER_CPAS], False, "fr"),
    "multi": (["demo", OTHER_CPAS], False, "fr"),
    "operateur": ([], True, "fr"),
}


@pytest.fixture(scope="session")
def web_template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One database with the demo CPAS, a second CPAS and the admin accounts, built once per run;
    each test works on its own copy (building it costs a second: migrations, seeding, argon2)."""
    path = tmp_path_factory.mktemp("web-template") / "authz.sqlite3"
    settings = load_settings({"database_url": f"sqlite:///{path}", "poll_interval": 0, "secret_key": "test-secret"})
    init_db(settings)
    demo_cpas = str(seed_demo(settings)["cpas_id"])
    catalog = load_catalog(settings.policies_dir)
    database = Database(settings.database_url)
    try:
        with database.transaction() as session:
            store = Store(session)
            admin = Admin(store, catalog, "test")
            admin.create_cpas(OTHER_CPAS, "CPAS de Test", "OCMW Test", "wallonia")
            admin.user_seen(OTHER_CPAS, "55555555555", name="Autre AGENT", lang="fr")
            # argon2 reads its cost from the hash: a cheap one here keeps each sign-in of a test at about a
            # millisecond instead of a tenth of a second (the service still hashes new passwords at full cost)
            digest = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)
            for username, (cpas, operator, lang) in ACCOUNTS.items():
                store.add_admin(AdminAccount(username=username, password_hash=digest, operator=operator, lang=lang,
                                             cpas=[demo_cpas if c == "demo" else c for c in cpas]))
    finally:
        database.dispose()
    return path


@pytest.fixture
def database_url(web_template_db: Path, tmp_path: Path) -> str:
    target = tmp_path / "authz.sqlite3"
    shutil.copyfile(web_template_db, target)
    return f"sqlite:///{target}"


@pytest.fixture
def accounts(demo: dict[str, Any]) -> dict[str, str]:
    """username -> its first CPAS ("*" for the operator)."""
    return {name: ("*" if op else (demo["cpas"] if cpas[0] == "demo" else cpas[0]))
            for name, (cpas, op, _lang) in ACCOUNTS.items()}


class Web:
    """The Flask test client, remembering the CSRF token of the last HTML page."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.token: str | None = None

    def _remember(self, response: Any) -> Any:
        response.get_data()  # buffer the body and release files of streamed answers
        response.close()
        if response.mimetype == "text/html":
            match = TOKEN_RE.search(response.get_data(as_text=True))
            if match:
                self.token = match.group(1) or match.group(2)
        return response

    def get(self, url: str, **kwargs: Any) -> Any:
        return self._remember(self.client.get(url, **kwargs))

    def post(self, url: str, data: Mapping[str, Any] | list[tuple[str, Any]] | None = None, *, csrf: bool = True,
             **kwargs: Any) -> Any:
        items = list(data.items()) if isinstance(data, Mapping) else list(data or [])
        if csrf:
            if self.token is None:
                self.get("/ui/login")
            items.append(("csrf_token", self.token))
        form: dict[str, Any] = {}
        for key, value in items:
            values = value if isinstance(value, list | tuple | set) else [value]
            form.setdefault(key, []).extend(str(v) for v in values)
        return self._remember(self.client.post(url, data=form, **kwargs))

    def login(self, username: str, password: str = PASSWORD) -> Any:
        self.get("/ui/login")
        response = self.post("/ui/login", {"username": username, "password": password})
        target = response.headers.get("Location")
        for _ in range(3):  # follow to the first page: the session is new, so is its CSRF token
            if response.status_code != 303 or not target:
                break
            landed = self.get(target)
            target = landed.headers.get("Location") if landed.status_code == 303 else None
        return response

    def text(self, url: str, status: int = 200, **kwargs: Any) -> str:
        response = self.get(url, **kwargs)
        assert response.status_code == status, (url, response.status_code, response.get_data(as_text=True)[:2000])
        return page(response)


def browser(app: Any, address: str = "127.0.0.1") -> Web:
    """A new browser (its own cookies) whose requests come from ``address``."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return Web(client)


def cookie_of(web: Web) -> str:
    cookie = web.client.get_cookie("authz_session")
    assert cookie is not None
    return str(cookie.value)


def with_cookie(app: Any, value: str, address: str = "127.0.0.1") -> Web:
    """Another browser replaying a captured session cookie."""
    other = browser(app, address)
    other.client.set_cookie("authz_session", value)
    return other


def without_throttle(app: Any) -> None:
    """Switch the login throttle off, to look at the per-account lock alone."""
    app.extensions[LIMITER].enabled = False


class FakeClock:
    """The web UI's clock in tests (sessions, lock, throttle): moves only when told."""

    def __init__(self) -> None:
        self.moment = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, **delta: float) -> None:
        self.moment += timedelta(**delta)

    def install(self, app: Any) -> FakeClock:
        app.extensions[CLOCK] = self
        return self


@pytest.fixture
def clock(app: Any) -> FakeClock:
    return FakeClock().install(app)


def page(response: Any) -> str:
    """The response's text with HTML entities resolved (so that "d'abord" matches "d&#39;abord")."""
    return html.unescape(response.get_data(as_text=True))


@pytest.fixture
def web(app) -> Web:  # type: ignore[no-untyped-def]
    return Web(app.test_client())


@pytest.fixture(params=["fr", "nl"])
def lang(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def manager(web: Web, accounts: dict[str, str], lang: str) -> Web:
    """Signed in as a configuration manager of the demo CPAS whose account speaks ``lang``."""
    response = web.login(LANG_ACCOUNT[lang])
    assert response.status_code == 303, response.get_data(as_text=True)
    return web


@pytest.fixture
def fr_manager(web: Web, accounts: dict[str, str]) -> Web:
    response = web.login("gestionnaire")
    assert response.status_code == 303
    return web
