"""Sessions that end. A session cookie captured before sign-out, a lock, a new password, a deactivation
or the removal of the account no longer opens a page, a form or the JSON admin API, on this worker or
any other (a second app on the same database stands for another worker or instance); an idle or too
old session ends, measured by the server on the injected clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from authz_service import create_app
from authz_service.models import AdminAccount
from authz_service.security import hash_password
from authz_service.web.settings import load_web_settings

from .conftest import PASSWORD, FakeClock, Web, browser, cookie_of, page, with_cookie

MARIE = "85073003328"
ENDED = "Votre session a pris fin. Veuillez vous reconnecter."


@pytest.fixture
def second_app(app: Any, overrides: dict[str, Any]) -> Iterator[Any]:
    """Another worker (or instance) on the same database."""
    other = create_app(overrides, start_polling=False)
    other.config["TESTING"] = True
    yield other
    other.extensions["authz"].close()


def signed_in(app: Any, username: str = "gestionnaire", address: str = "127.0.0.1") -> Web:
    web = browser(app, address)
    assert web.login(username).status_code == 303
    return web


def opens_home(web: Web, cpas: str) -> bool:
    response = web.get(f"/ui/cpas/{cpas}/")
    if response.status_code == 303:
        assert response.headers["Location"].startswith("/ui/login")
        return False
    assert response.status_code == 200, response.status_code
    return True


def test_sign_out_ends_a_captured_cookie_on_every_worker(app: Any, second_app: Any, service: Any,
                                                         demo: dict[str, Any], accounts: dict[str, str]) -> None:
    cpas = demo["cpas"]
    web = signed_in(app)
    web.get(f"/ui/cpas/{cpas}/")
    captured, token = cookie_of(web), web.token
    thief = with_cookie(second_app, captured, "198.51.100.7")
    assert opens_home(thief, cpas)  # before sign-out the cookie works on the other worker too
    assert thief.client.get(f"/cpas/{cpas}/profiles").status_code == 200

    assert web.post("/ui/logout").status_code == 303
    for worker in (app, second_app):
        replay = with_cookie(worker, captured, "198.51.100.7")
        assert not opens_home(replay, cpas)
        replay = with_cookie(worker, captured, "198.51.100.7")
        refused = replay.client.post(f"/ui/cpas/{cpas}/users/{MARIE}/deactivate", data={"csrf_token": token})
        assert refused.status_code == 303 and refused.headers["Location"].startswith("/ui/login")
        replay = with_cookie(worker, captured, "198.51.100.7")
        assert replay.client.get(f"/cpas/{cpas}/profiles").status_code == 401
        replay = with_cookie(worker, captured, "198.51.100.7")
        made = replay.client.post(f"/cpas/{cpas}/profiles", json={"description_fr": "Volé", "functions": []},
                                  headers={"X-CSRFToken": token})
        assert made.status_code == 401
    assert service.read(lambda store: store.get_user(cpas, MARIE).active)
    assert "Volé" not in {p.description_fr for p in service.read(lambda store: store.profiles(cpas))}


def test_sign_out_ends_every_session_of_the_account(app: Any, demo: dict[str, Any],
                                                    accounts: dict[str, str]) -> None:
    office, laptop = signed_in(app), signed_in(app, address="198.51.100.8")
    assert opens_home(laptop, demo["cpas"])
    office.get("/ui/")
    office.post("/ui/logout")
    assert not opens_home(laptop, demo["cpas"])
    assert ENDED in laptop.text("/ui/login")
    assert laptop.login("gestionnaire").status_code == 303  # signing in again works
    assert opens_home(laptop, demo["cpas"])


def test_idle_session_ends(app: Any, demo: dict[str, Any], accounts: dict[str, str], clock: FakeClock) -> None:
    cpas = demo["cpas"]
    web = signed_in(app)
    for _ in range(3):  # each request starts the idle time anew
        clock.advance(minutes=29)
        assert opens_home(web, cpas)
    captured = cookie_of(web)
    clock.advance(minutes=30)
    assert not opens_home(web, cpas)
    assert ENDED in web.text("/ui/login")
    assert with_cookie(app, captured).client.get(f"/cpas/{cpas}/profiles").status_code == 401


@pytest.mark.web_settings(session_idle_minutes=5)
def test_idle_time_is_a_setting(app: Any, demo: dict[str, Any], accounts: dict[str, str], clock: FakeClock) -> None:
    assert load_web_settings({}).session_idle_minutes == 30
    assert load_web_settings({"AUTHZ_WEB_SESSION_IDLE_MINUTES": "5"}).session_idle_minutes == 5
    for bad in ("0", "soon"):
        with pytest.raises(ValueError, match="AUTHZ_WEB_SESSION_IDLE_MINUTES"):
            load_web_settings({"AUTHZ_WEB_SESSION_IDLE_MINUTES": bad})
    web = signed_in(app)
    clock.advance(minutes=4)
    assert opens_home(web, demo["cpas"])
    clock.advance(minutes=5)
    assert not opens_home(web, demo["cpas"])


def test_a_busy_session_still_ends_after_its_hours(app: Any, demo: dict[str, Any], accounts: dict[str, str],
                                                   clock: FakeClock) -> None:
    web = signed_in(app)
    hours = app.extensions["authz_web"].session_hours
    assert hours == 8
    for _ in range(int(hours * 3) - 1):  # a request every 20 minutes, for 7 h 40
        clock.advance(minutes=20)
        assert opens_home(web, demo["cpas"])
    clock.advance(minutes=20)
    assert not opens_home(web, demo["cpas"])


def _account(session: Session) -> AdminAccount:
    return session.scalars(select(AdminAccount).where(AdminAccount.username == "gestionnaire")).one()


def _new_password(session: Session) -> None:
    _account(session).password_hash = hash_password("another password 2")


def _deactivate_and_reactivate(session: Session) -> None:
    account = _account(session)
    account.active = False
    session.flush()
    account.active = True


def _remove_and_create_again(session: Session) -> None:
    old = _account(session)
    cpas, digest = old.cpas, old.password_hash
    session.delete(old)
    session.flush()
    session.add(AdminAccount(username="gestionnaire", password_hash=digest, cpas=cpas, lang="fr"))


@pytest.mark.parametrize("change", [_new_password, _deactivate_and_reactivate, _remove_and_create_again],
                         ids=["new-password", "deactivated-and-reactivated", "removed-and-created-again"])
def test_account_changes_end_its_sessions(app: Any, second_app: Any, service: Any, demo: dict[str, Any],
                                          accounts: dict[str, str], change: Callable[[Session], None]) -> None:
    web = signed_in(app)
    captured = cookie_of(web)
    with service.db.transaction() as session:  # as any code would, through the ORM (a CLI command, a script)
        change(session)
    for worker in (app, second_app):
        assert not opens_home(with_cookie(worker, captured), demo["cpas"])


def test_a_lock_ends_the_sessions(app: Any, service: Any, demo: dict[str, Any], accounts: dict[str, str]) -> None:
    owner = signed_in(app)
    for n in range(5):  # five addresses, one wrong password each: the account is locked
        assert browser(app, f"192.0.2.{n + 1}").login("gestionnaire", "wrong password").status_code == 401
    assert service.read(lambda store: store.admin_by_username("gestionnaire").locked_until) is not None
    assert not opens_home(owner, demo["cpas"])


def test_a_cookie_from_before_the_upgrade_is_refused(app: Any, demo: dict[str, Any],
                                                     accounts: dict[str, str]) -> None:
    """The old session held the username alone and lasted 8 hours whatever happened."""
    old = app.session_interface.get_signing_serializer(app).dumps({"account": "gestionnaire", "_permanent": True})
    assert not opens_home(with_cookie(app, old), demo["cpas"])


def test_signing_in_again_after_the_end(app: Any, demo: dict[str, Any], accounts: dict[str, str],
                                        clock: FakeClock) -> None:
    web = signed_in(app)
    clock.advance(hours=9)
    assert not opens_home(web, demo["cpas"])
    response = web.login("gestionnaire", PASSWORD)
    assert response.status_code == 303
    assert "Gestion des accès" in page(web.get(f"/ui/cpas/{demo['cpas']}/"))


def test_a_form_of_before_the_end_still_switches_the_language(app: Any, demo: dict[str, Any],
                                                              accounts: dict[str, str], clock: FakeClock) -> None:
    web = signed_in(app)
    assert opens_home(web, demo["cpas"])  # the page's forms carry the session's CSRF token
    clock.advance(minutes=31)
    response = web.post("/ui/lang", {"lang": "nl", "next": "/ui/login"})
    assert response.status_code == 303  # not "form expired": the token outlives the signed-in part
    assert "Aanmelden" in web.text("/ui/login")
    assert not opens_home(web, demo["cpas"])
