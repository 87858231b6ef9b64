"""API keys (hashed at rest, scopes, CPAS limits), admin passwords (argon2) and per-CPAS scoping."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from .errors import Forbidden, InvalidRequest, Unauthenticated
from .models import AdminAccount, ApiKey
from .store import Store

SCOPES = ("enforce", "users", "admin")
KEY_PREFIX = "azk"
_hasher = PasswordHasher()


@dataclass(frozen=True)
class Principal:
    """Who is calling: an API key or an admin account. ``cpas`` None means every CPAS."""

    name: str
    scopes: frozenset[str]
    cpas: frozenset[str] | None

    @property
    def is_operator(self) -> bool:
        return "admin" in self.scopes and self.cpas is None

    def require_scope(self, scope: str) -> None:
        if scope not in self.scopes:
            raise Forbidden(f"this credential lacks the '{scope}' scope")

    def require_operator(self) -> None:
        if not self.is_operator:
            raise Forbidden("only an operator (admin scope, not limited to some CPAS) may do this")

    def may_use(self, cpas: str) -> bool:
        return self.cpas is None or cpas in self.cpas

    def require_cpas(self, cpas: str) -> None:
        if not self.may_use(cpas):
            raise Forbidden(f"this credential is not allowed for CPAS {cpas}")


def parse_scopes(text: str) -> tuple[str, ...]:
    scopes = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    unknown = [s for s in scopes if s not in SCOPES]
    if not scopes or unknown:
        raise InvalidRequest(f"scopes must be a comma-separated subset of {', '.join(SCOPES)}", unknown or None)
    return scopes


def _digest(secret: str) -> str:
    # The secret has 256 bits of entropy: a fast hash is enough and keeps every request cheap.
    return hashlib.sha256(secret.encode()).hexdigest()


def new_api_key(store: Store, name: str, scopes: tuple[str, ...], cpas: list[str] | None) -> str:
    """Create a key; return the only copy of its text ``azk_<prefix>_<secret>``."""
    if not name.strip():
        raise InvalidRequest("an API key needs a name")
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    store.add_api_key(
        ApiKey(name=name.strip(), prefix=prefix, key_hash=_digest(secret), scopes=",".join(scopes), cpas=cpas)
    )
    return f"{KEY_PREFIX}_{prefix}_{secret}"


_KEY_PART = re.compile(r"[0-9a-f]{1,32}", re.ASCII)  # secrets.token_hex
_KEY_SECRET = re.compile(r"[A-Za-z0-9_-]{1,200}", re.ASCII)  # secrets.token_urlsafe


def authenticate_key(store: Store, header: str | None) -> Principal:
    if not header:
        raise Unauthenticated("missing Authorization: Bearer <api key> header")
    kind, _, token = header.partition(" ")
    if kind.lower() != "bearer" or not token.strip():
        raise Unauthenticated("the Authorization header must be 'Bearer <api key>'")
    parts = token.strip().split("_", 2)
    # checked before any lookup: a NUL or another stray character must be a 401, never a store error
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not _KEY_PART.fullmatch(parts[1]) \
            or not _KEY_SECRET.fullmatch(parts[2]):
        raise Unauthenticated("malformed API key")
    key = store.api_key_by_prefix(parts[1])
    if key is None or key.revoked_at is not None or not hmac.compare_digest(key.key_hash, _digest(parts[2])):
        raise Unauthenticated("unknown or revoked API key")
    return Principal(
        name=f"key:{key.name}",
        scopes=frozenset(key.scopes.split(",")),
        cpas=None if key.cpas is None else frozenset(key.cpas),
    )


def hash_password(password: str) -> str:
    return _hasher.hash(password)


class HasPassword(Protocol):
    @property
    def password_hash(self) -> str: ...


def verify_password(account: HasPassword, password: str) -> bool:
    try:
        return _hasher.verify(account.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def admin_principal(account: AdminAccount) -> Principal:
    return Principal(
        name=f"admin:{account.username}",
        scopes=frozenset({"admin"}),
        cpas=None if account.operator else frozenset(account.cpas),
    )
