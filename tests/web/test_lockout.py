"""Sign-in lockout: five wrong passwords within a quarter of an hour lock an account, the right
password included, for a quarter of an hour; the count lives in the database (every worker agrees), a
right password resets it, failures older than the window do not add up, and the lock is never revealed
to whoever signs in (the same answer as a wrong password). The login throttle is switched off here to
look at the lock alone (test_login_abuse.py tests them together)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from authz_service.admin import LOCK_MINUTES, MAX_FAILED_LOGINS
from authz_service.models import AuditEntry

from .conftest import PASSWORD, FakeClock, browser, page, without_throttle

REFUSED = "Nom d'utilisateur ou mot de passe incorrect."


def account(service: Any, username: str) -> tuple[int, datetime | None]:
    return service.read(lambda store: (lambda a: (a.failed_logins, a.locked_until))(store.admin_by_username(username)))


def audit_rows(service: Any, action: str) -> list[AuditEntry]:
    with service.db.reading() as session:
        return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


def test_lock_after_repeated_wrong_passwords(app: Any, service: Any, demo: dict[str, Any],
                                             accounts: dict[str, str], clock: FakeClock) -> None:
    without_throttle(app)
    username = "gestionnaire"
    web = browser(app)
    for attempt in range(1, MAX_FAILED_LOGINS):
        assert web.login(username, "wrong-password").status_code == 401
        assert account(service, username)[0] == attempt
    assert web.login(username, "wrong-password").status_code == 401  # the fifth: now locked
    failed, locked_until = account(service, username)
    assert failed == 0 and locked_until is not None
    locked = web.login(username, PASSWORD)
    assert locked.status_code == 401  # the same answer as a wrong password: the lock is not revealed
    assert REFUSED in page(locked) and "bloqué" not in page(locked)
    other = browser(app, "192.0.2.10")  # another browser, same answer: the lock is in the database
    assert other.login(username, PASSWORD).status_code == 401
    locks = audit_rows(service, "admin.locked")
    assert [(a.cpas_id, a.target) for a in locks] == [(demo["cpas"], f"admin:{username}")]
    assert locks[0].after["minutes"] == LOCK_MINUTES

    clock.advance(minutes=LOCK_MINUTES)  # a quarter of an hour later
    assert web.login(username, PASSWORD).status_code == 303
    assert account(service, username) == (0, None)
    unlocks = audit_rows(service, "admin.unlocked")
    assert [(a.cpas_id, a.target, a.after) for a in unlocks] == [
        (demo["cpas"], f"admin:{username}", {"reason": "expired"})]


def test_a_right_password_resets_the_count(app: Any, service: Any, accounts: dict[str, str]) -> None:
    without_throttle(app)
    web = browser(app)
    for _ in range(MAX_FAILED_LOGINS - 1):
        web.login("gestionnaire", "wrong-password")
    assert web.login("gestionnaire", PASSWORD).status_code == 303
    assert account(service, "gestionnaire") == (0, None)


def test_failures_older_than_the_window_do_not_add_up(app: Any, service: Any, accounts: dict[str, str],
                                                      clock: FakeClock) -> None:
    without_throttle(app)
    web = browser(app)
    for _ in range(MAX_FAILED_LOGINS - 1):
        web.login("gestionnaire", "wrong-password")
    clock.advance(minutes=LOCK_MINUTES, seconds=1)
    for _ in range(MAX_FAILED_LOGINS - 1):
        web.login("gestionnaire", "wrong-password")
    assert account(service, "gestionnaire") == (MAX_FAILED_LOGINS - 1, None)  # a new window, not locked
    web.login("gestionnaire", "wrong-password")
    assert account(service, "gestionnaire")[1] is not None


def test_unknown_username_is_refused_like_a_wrong_password(app: Any) -> None:
    without_throttle(app)
    web = browser(app)
    for _ in range(MAX_FAILED_LOGINS + 1):
        response = web.login("nobody-here", "whatever-password")
        assert response.status_code == 401 and REFUSED in page(response)

