"""Login throttling with Flask-Limiter: failed sign-ins are counted per client address and per
username, in a moving window, before any password is checked.

- Per address (``AUTHZ_WEB_LOGIN_ADDRESS_LIMIT``, default 4 per 15 minutes; IPv6 counted per /64): below
  the five wrong passwords that lock an account, so that one address alone can never lock an admin out
  (the lock counts the failures of a 15-minute window, see ``auth.check_password``).
- Per username (``AUTHZ_WEB_LOGIN_ACCOUNT_LIMIT``, default 5 per 15 minutes, from any address), known
  or not: a distributed guess is refused before it costs an argon2 hash, and the answer is the same
  for an account that exists and one that does not.

Only refused sign-ins (401) count; a successful one costs nothing. Over a limit the login page answers
429 in the reader's language. The counts live in Redis when ``AUTHZ_REDIS_URL`` is set, else in the
database (``web_login_attempt``): either way every worker and instance shares them (Flask-Limiter's
memory storage would give each worker its own). If the storage fails, sign-in goes on unthrottled
(logged) and the per-account lock in the database still holds.

The client address is ``REMOTE_ADDR``, or, when the request comes from a trusted proxy
(``AUTHZ_TRUSTED_PROXIES``), the nearest address of ``X-Forwarded-For`` that is not a trusted proxy.
"""

from __future__ import annotations

import hashlib
import ipaddress
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, current_app, request
from flask_limiter import Limiter
from limits.storage import MovingWindowSupport, Storage
from sqlalchemy.exc import SQLAlchemyError

from ..db import Database
from ..service import Service
from ..store import Store
from .settings import WebSettings

LIMITER = "authz_login_limiter"
DATABASE_STORAGE = "authz-database://"
LOGIN_ENDPOINT = "web.login"


class DatabaseStorage(Storage, MovingWindowSupport):
    """A ``limits`` storage in the service's database, for the moving-window strategy: one row per
    counted hit, rows older than their window deleted as new ones come. Registered as
    ``authz-database://``; the ``database`` option is the service's :class:`Database`, ``clock`` a
    callable giving seconds since the epoch (tests pass their own)."""

    STORAGE_SCHEME = ["authz-database"]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: Any) -> None:
        database = options.pop("database", None)
        if not isinstance(database, Database):
            raise ValueError("the authz-database storage needs the service's database (option `database`)")
        self.database = database
        self.clock: Callable[[], float] = options.pop("clock", None) or time.time
        super().__init__(uri, wrap_exceptions=wrap_exceptions)

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return SQLAlchemyError

    # -- moving window: what the login throttle uses --------------------------------------------------
    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        if amount > limit:
            return False
        with self.database.transaction() as session:
            return Store(session).take_login_attempt(key, limit, self.clock(), expiry, amount)

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        now = self.clock()
        with self.database.reading() as session:
            oldest, count = Store(session).login_window(key, now, expiry)
        return (oldest if oldest is not None else now, count)

    # -- the rest of the Storage interface ---------------------------------------------------------
    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        raise NotImplementedError("the authz-database storage supports the moving-window strategy only")

    def get(self, key: str) -> int:
        with self.database.reading() as session:
            return Store(session).login_attempts(key, self.clock())

    def get_expiry(self, key: str) -> float:
        with self.database.reading() as session:
            latest = Store(session).login_attempts_expiry(key)
        return latest if latest is not None else self.clock()

    def check(self) -> bool:
        try:
            with self.database.reading() as session:
                Store(session).ping()
            return True
        except SQLAlchemyError:
            return False

    def reset(self) -> int | None:
        with self.database.transaction() as session:
            return Store(session).forget_login_attempts()

    def clear(self, key: str) -> None:
        with self.database.transaction() as session:
            Store(session).forget_login_attempts(key)


def client_address(settings: WebSettings) -> str:
    """The address failed sign-ins are counted against (an IPv6 client by its /64)."""
    address = request.remote_addr or ""
    if settings.is_trusted_proxy(address):
        hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
        for hop in reversed(hops):
            address = hop
            if not settings.is_trusted_proxy(hop):
                break
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64] or "unknown"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped else ip)


def _deployment() -> str:
    """Counts of one deployment (every worker and instance shares its session key) never mix with
    another's in a shared Redis."""
    return hashlib.sha256(b"login-throttle:" + str(current_app.secret_key or "").encode()).hexdigest()[:12]


def _address_key() -> str:
    return f"{_deployment()}:address:{client_address(current_app.extensions['authz_web'])}"


def _account_key() -> str:
    # hashed: people type their password in the username field, and it must not be stored in clear
    username = " ".join(request.form.get("username", "").split())[:128]
    return f"{_deployment()}:account:{hashlib.sha256(username.encode()).hexdigest()[:32]}"


def _refused(response: Response) -> bool:
    return response.status_code == 401


def init_throttle(app: Flask, service: Service, settings: WebSettings, clock: Callable[[], float]) -> Limiter:
    """A Limiter of this app (each app has its own: tests build several in one process) around the
    login view's POST."""
    redis_url = service.settings.redis_url
    options: dict[str, Any] = (
        {"socket_connect_timeout": 2, "socket_timeout": 2} if redis_url
        else {"database": service.db, "clock": clock}
    )
    limiter = Limiter(
        key_func=_address_key,
        strategy="moving-window",
        storage_uri=redis_url or DATABASE_STORAGE,
        storage_options=options,
        swallow_errors=True,  # a storage failure lets sign-in through; the lock in the database remains
        headers_enabled=False,
    )
    limiter.request_filter(lambda: request.endpoint != LOGIN_ENDPOINT)  # nothing else is throttled
    limiter.init_app(app)
    view: Callable[..., Any] = app.view_functions[LOGIN_ENDPOINT]
    view = limiter.limit(settings.login_account_limit, key_func=_account_key, methods=["POST"],
                         deduct_when=_refused)(view)
    view = limiter.limit(settings.login_address_limit, key_func=_address_key, methods=["POST"],
                         deduct_when=_refused)(view)
    app.view_functions[LOGIN_ENDPOINT] = view
    app.extensions[LIMITER] = limiter
    return limiter
