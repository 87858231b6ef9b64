"""Sign-in lockout: after five wrong passwords in a row an account refuses every sign-in, the right
password included, for a quarter of an hour; the count lives in the database (every worker agrees),
a right password resets it, and the lock is audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from authz_service.models import AdminAccount, AuditEntry
from authz_service.web.auth import LOCK_MINUTES, MAX_FAILED_LOGINS

from .conftest import PASSWORD, Web, page


def account(service: Any, username: str) -> tuple[int, datetime | None]:
    return service.read(lambda store: (lambda a: (a.failed_logins, a.locked_until))(store.admin_by_username(username)))


def test_lock_after_repeated_wrong_passwords(app: Any, service: Any, accounts: dict[str, str]) -> None:
    username = next(iter(accounts))
    web = Web(app.test_client())
    for attempt in range(1, MAX_FAILED_LOGINS):
        assert web.login(username, "wrong-password").status_code == 401
        assert account(service, username)[0] == attempt
    assert web.login(username, "wrong-password").status_code == 401  # the fifth: now locked
    failed, locked_until = account(service, username)
    assert failed == 0 and locked_until is not None
    locked = web.login(username, PASSWORD)
    assert locked.status_code == 429
    assert "bloqué pendant un quart d'heure" in page(locked)
    other = Web(app.test_client())  # another browser, same answer: the lock is in the database
    assert other.login(username, PASSWORD).status_code == 429
    audit = service.read(lambda store: store.s.scalars(
        select(AuditEntry).where(AuditEntry.action == "admin.locked")).all())
    assert [a.target for a in audit] == [f"admin:{username}"]
    assert audit[0].after["minutes"] == LOCK_MINUTES

    with service.db.transaction() as session:  # a quarter of an hour later
        session.execute(update(AdminAccount).where(AdminAccount.username == username)
                        .values(locked_until=datetime.now(UTC) - timedelta(seconds=1)))
    assert web.login(username, PASSWORD).status_code == 303
    assert account(service, username) == (0, None)


def test_a_right_password_resets_the_count(app: Any, service: Any, accounts: dict[str, str]) -> None:
    username = next(iter(accounts))
    web = Web(app.test_client())
    for _ in range(MAX_FAILED_LOGINS - 1):
        web.login(username, "wrong-password")
    assert web.login(username, PASSWORD).status_code == 303
    assert account(service, username) == (0, None)


def test_unknown_username_is_refused_like_a_wrong_password(app: Any) -> None:
    web = Web(app.test_client())
    for _ in range(MAX_FAILED_LOGINS + 1):
        assert web.login("nobody-here", "whatever-password").status_code == 401
