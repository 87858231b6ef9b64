"""The Flask decorator in a tiny calling application (its own login in its own session)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, g, render_template_string, request, session

from cpas_authz_client import AuthzClient
from cpas_authz_client.flask_ext import AuthzFlask

from support import ANNELIES, DEMO_CPAS, MARIE, MICHEL, CountingSession, Live, closed_port


def calling_app(client: AuthzClient | None = None, config: dict[str, Any] | None = None,
                get_user: Any = None) -> Flask:
    app = Flask("calling_app")
    app.config.update(SECRET_KEY="calling-app", TESTING=True, **(config or {}))
    authz = AuthzFlask(
        client=client,
        get_user=get_user or (lambda: session.get("user")),
        get_cpas=lambda: session.get("cpas"),
    )
    authz.init_app(app)

    @app.post("/login")
    def login() -> str:
        session["user"], session["cpas"] = request.form["user"], DEMO_CPAS
        return "welcome"

    @app.get("/dossiers")
    @authz.require_function("dossier.search")
    def search() -> str:
        return "dossiers"

    @app.get("/help-requests")
    @authz.require_function("help_request.list")
    def help_requests() -> str:
        return "help requests"

    @app.get("/twice")
    @authz.require_function("dossier.search")
    def twice() -> str:
        g.second = authz.allowed("dossier.search")
        return "twice"

    @app.get("/menu")
    def menu() -> str:
        return render_template_string(
            "{% if authz_allowed('dossier.search') %}[search]{% endif %}"
            "{% if 'help_request.list' in authz_functions() %}[help]{% endif %}"
            "{% if 'forms.list' in authz_functions() %}[forms]{% endif %}"
        )

    return app


@pytest.fixture
def counting_client(live: Live, counting: CountingSession) -> Iterator[AuthzClient]:
    with AuthzClient(live.url, api_key=live.keys["full"], session=counting) as client:
        yield client


def as_user(app: Flask, user: str | None) -> Any:
    browser = app.test_client()
    if user is not None:
        assert browser.post("/login", data={"user": user}).status_code == 200
    return browser


def test_the_view_runs_only_when_allowed(counting_client: AuthzClient) -> None:
    app = calling_app(counting_client)
    marie = as_user(app, MARIE)
    assert marie.get("/dossiers").get_data(as_text=True) == "dossiers"
    assert marie.get("/help-requests").status_code == 200
    annelies = as_user(app, ANNELIES)
    assert annelies.get("/dossiers").status_code == 403
    denied = annelies.get("/help-requests")  # missing prerequisite
    assert denied.status_code == 403 and "help_request.list" in denied.get_data(as_text=True)
    assert as_user(app, MICHEL).get("/dossiers").status_code == 403
    assert as_user(app, None).get("/dossiers").status_code == 403  # nobody logged in: no call at all


def test_one_call_per_function_per_request(counting_client: AuthzClient, counting: CountingSession) -> None:
    app = calling_app(counting_client)
    assert as_user(app, MARIE).get("/twice").status_code == 200
    assert counting.paths() == ["/enforce"]


def test_the_menu_helpers(counting_client: AuthzClient) -> None:
    app = calling_app(counting_client)
    assert as_user(app, MARIE).get("/menu").get_data(as_text=True) == "[search][help][forms]"
    assert as_user(app, ANNELIES).get("/menu").get_data(as_text=True) == "[forms]"
    assert as_user(app, None).get("/menu").get_data(as_text=True) == ""


def test_a_service_that_cannot_decide_is_a_503_not_a_no(counting: CountingSession) -> None:
    with AuthzClient(f"http://127.0.0.1:{closed_port()}", api_key="k", retries=0, session=counting) as client:
        app = calling_app(client)
        marie = as_user(app, MARIE)
        down = marie.get("/dossiers")
        assert down.status_code == 503 and down.headers["Retry-After"] == "5"  # refused, but not "denied"
        assert "cannot decide" in down.get_data(as_text=True)
        assert marie.get("/menu").get_data(as_text=True) == ""


def test_a_wrong_key_cannot_decide(live: Live) -> None:
    with AuthzClient(live.url, api_key="azk_0_wrong") as client:
        assert as_user(calling_app(client), MARIE).get("/dossiers").status_code == 503


def test_get_user_failing_means_403(counting_client: AuthzClient, counting: CountingSession) -> None:
    def broken() -> str:
        raise KeyError("no session store")

    app = calling_app(counting_client, get_user=broken)
    assert app.test_client().get("/dossiers").status_code == 403
    assert counting.sent == []


def test_init_app_from_config(live: Live) -> None:
    app = calling_app(config={"AUTHZ_URL": live.url, "AUTHZ_API_KEY": live.keys["enforce"], "AUTHZ_TIMEOUT": 1})
    assert as_user(app, MARIE).get("/dossiers").status_code == 200
    assert as_user(app, ANNELIES).get("/dossiers").status_code == 403
    AuthzFlask.client_for(app).close()
    with pytest.raises(RuntimeError, match="AUTHZ_URL"):
        calling_app()


def test_misuse_is_loud() -> None:
    authz = AuthzFlask(client=None, get_user=lambda: None, get_cpas=lambda: None)
    with pytest.raises(ValueError):
        authz.require_function("Dossier Search")
    with pytest.raises(RuntimeError, match="init_app"):
        AuthzFlask.client_for(Flask("bare"))
