"""Tables. Casbin's own ``casbin_rule`` (schema of sqlalchemy-adapter, plus indexes) holds every
assignment, inclusion and profile function; our tables beside it hold what Casbin has no place for:
CPAS, profile descriptions and versions, users, audit, API keys, admin accounts, catalog state.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, validates

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC; SQLite hands back naive datetimes, which we always stored as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# -- the audit chain: each row's hash covers its content and its predecessor's hash, one chain per CPAS (rows
# without a CPAS form their own). Migration 0006 chained the rows written before it with a copy of these
# functions; a change to the canonical form is a new AUDIT_CHAIN_FORMAT, never an edit of this one.
AUDIT_CHAIN_FORMAT = 1


def audit_instant(moment: datetime) -> str:
    """The row's instant as its hash covers it: UTC, to the microsecond, always 27 characters. Both
    backends store microseconds and hand them back unchanged (SQLite naive, in UTC as written)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def as_stored(value: Any) -> Any:
    """``value`` as a JSON column hands it back (tuples as lists, keys as strings): what is hashed at insert
    must be what a later reader hashes again."""
    return json.loads(json.dumps(value))


def _digest(document: dict[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON: sorted keys, no white space, UTF-8."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def audit_genesis(cpas: str | None) -> str:
    """What the first row of a chain names as its predecessor: different for every chain, so that no two
    rows of the whole table ever name the same predecessor (``ix_audit_prev_hash`` is unique)."""
    return _digest({"chain": cpas, "v": AUDIT_CHAIN_FORMAT})


def audit_hash(cpas: str | None, at: datetime, actor: str, action: str, target: str, before: Any, after: Any,
               prev_hash: str) -> str:
    return _digest({"v": AUDIT_CHAIN_FORMAT, "cpas": cpas, "at": audit_instant(at), "actor": actor,
                    "action": action, "target": target, "before": before, "after": after, "prev": prev_hash})


# SQLite reuses a deleted row's id unless the table is AUTOINCREMENT; an id a client, a form or a session
# holds must never name another row later (PostgreSQL's sequences never reuse one). Migration 0005.
NEVER_REUSED: dict[str, Any] = {"sqlite_autoincrement": True}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class CasbinRule(Base):
    """Same columns as sqlalchemy_adapter's ``CasbinRule`` so that its Adapter can load this table."""

    __tablename__ = "casbin_rule"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ptype: Mapped[str] = mapped_column(String(255))
    v0: Mapped[str | None] = mapped_column(String(255))
    v1: Mapped[str | None] = mapped_column(String(255))
    v2: Mapped[str | None] = mapped_column(String(255))
    v3: Mapped[str | None] = mapped_column(String(255))
    v4: Mapped[str | None] = mapped_column(String(255))
    v5: Mapped[str | None] = mapped_column(String(255))

    __table_args__ = (
        Index("ix_casbin_rule_ptype_v2_v0", "ptype", "v2", "v0"),
        Index("ix_casbin_rule_ptype_v1", "ptype", "v1"),
    )


class Cpas(Base):
    __tablename__ = "cpas"
    id: Mapped[str] = mapped_column(String(10), primary_key=True)  # KBO/BCE number, 10 digits
    name_fr: Mapped[str] = mapped_column(String(200))
    name_nl: Mapped[str] = mapped_column(String(200))
    region: Mapped[str] = mapped_column(String(32))
    policy_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Profile(Base):
    __tablename__ = "profile"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cpas_id: Mapped[str] = mapped_column(ForeignKey("cpas.id", ondelete="CASCADE"), index=True)
    description_fr: Mapped[str | None] = mapped_column(String(200))
    description_nl: Mapped[str | None] = mapped_column(String(200))
    # casefolded descriptions: uniqueness in the CPAS ignores case and surrounding blanks
    key_fr: Mapped[str | None] = mapped_column(String(200))
    key_nl: Mapped[str | None] = mapped_column(String(200))
    builtin: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (
        UniqueConstraint("cpas_id", "key_fr", name="uq_profile_cpas_key_fr"),
        UniqueConstraint("cpas_id", "key_nl", name="uq_profile_cpas_key_nl"),
        NEVER_REUSED,
    )


class User(Base):
    __tablename__ = "app_user"
    cpas_id: Mapped[str] = mapped_column(ForeignKey("cpas.id", ondelete="CASCADE"), primary_key=True)
    user: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    lang: Mapped[str] = mapped_column(String(2), default="fr")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (Index("ix_app_user_cpas_active_name", "cpas_id", "active", "name"),)


class AuditEntry(Base):
    """Append-only: the service never updates or deletes these rows. Each row is a link of its CPAS's chain
    (``Store.audit``): ``row_hash`` is ``audit_hash`` of its content and ``prev_hash``, the hash of the
    chain's previous row (by id) or the chain's ``audit_genesis``; ``verify-audit`` walks the chains."""

    __tablename__ = "audit"
    __table_args__ = (
        Index("ix_audit_cpas_id_id", "cpas_id", "id"),  # a chain in order, and its last row
        Index("ix_audit_prev_hash", "prev_hash", unique=True),  # two rows never follow the same one
        NEVER_REUSED,
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cpas_id: Mapped[str | None] = mapped_column(String(10))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200))
    before: Mapped[Any] = mapped_column(JSON, nullable=True)
    after: Mapped[Any] = mapped_column(JSON, nullable=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    row_hash: Mapped[str] = mapped_column(String(64))


class PolicyEvent(Base):
    """Append-only history of what a CPAS's policy is built from (migration 0007), written by ``Store`` in the
    transaction of every change: ``links`` (a subject's parents now: ``payload`` the list), ``user`` (a user's
    active flag now; null: no row), ``descriptions`` (every profile's, ``{id: [fr, nl]}``), ``version`` (the
    version moved, nothing else), ``snapshot`` (the whole state: ``{links, users, descriptions}``). Each row
    holds the state of what it names, so the state at an instant is the latest snapshot at or before it with
    the later rows up to it applied in (``at``, ``id``) order (``Store.cpas_policy_at``). ``at``: taken in the
    transaction, after the CPAS's lock, strictly increasing per CPAS; ``version``: the CPAS's after it."""

    __tablename__ = "policy_history"
    __table_args__ = (Index("ix_policy_history_cpas_id_at", "cpas_id", "at"), NEVER_REUSED)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cpas_id: Mapped[str] = mapped_column(String(10))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str | None] = mapped_column(String(255), nullable=True)
    payload: Mapped[Any] = mapped_column(JSON, nullable=True)


class AssignmentTerm(Base):
    """When an assignment holds (migration 0008): the ``g`` row ``user:U -> profile:P`` of the CPAS holds
    from ``valid_from`` (included) until ``valid_until`` (excluded); an assignment without a row here holds
    as long as it is assigned. Written and deleted with its ``g`` row (``Store.set_user_profiles``), never
    alone. ``ended_recorded``: the expiry has been written to the audit trail and the history
    (``Admin.record_expiries``), once."""

    __tablename__ = "assignment_term"
    cpas_id: Mapped[str] = mapped_column(String(10), primary_key=True)
    user: Mapped[str] = mapped_column(String(128), primary_key=True)
    profile_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    valid_from: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    valid_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    ended_recorded: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    __table_args__ = (Index("ix_assignment_term_valid_until", "valid_until"),)


class ApiKey(Base):
    __tablename__ = "api_key"
    __table_args__ = (NEVER_REUSED,)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    key_hash: Mapped[str] = mapped_column(String(128))
    scopes: Mapped[str] = mapped_column(String(100))  # comma-separated
    cpas: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)  # None = every CPAS
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AdminAccount(Base):
    __tablename__ = "admin_account"
    __table_args__ = (NEVER_REUSED,)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(128), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    operator: Mapped[bool] = mapped_column(Boolean, default=False)
    cpas: Mapped[list[str]] = mapped_column(JSON, default=list)
    lang: Mapped[str] = mapped_column(String(2), default="fr")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # wrong passwords since ``failed_since`` (a window of the lock's length), and until when the account
    # refuses every sign-in after too many
    failed_logins: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    failed_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # the admin UI's sessions of this account carry this value; a new one ends every session at once, on
    # every worker and instance (sign-out, lock, new password, deactivation). None: no session is valid.
    session_epoch: Mapped[str | None] = mapped_column(String(32), nullable=True)

    def end_sessions(self) -> None:
        """Every session of this account stops working at its next request."""
        self.session_epoch = secrets.token_hex(16)

    @validates("password_hash", "active")
    def _credentials_changed(self, key: str, value: Any) -> Any:
        # a new password, a deactivation (and so a later reactivation) or a new account end the sessions,
        # whoever makes the change: the web UI, the CLI, a script through the ORM
        if getattr(self, key, None) != value:
            self.end_sessions()
        return value


class LoginAttempt(Base):
    """Failed admin sign-ins counted by the login throttle when no Redis is configured: one row per
    attempt and limit (Flask-Limiter's moving window), deleted once it expired. Times are seconds
    since the epoch."""

    __tablename__ = "web_login_attempt"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket: Mapped[str] = mapped_column(String(255))
    at: Mapped[float] = mapped_column(Float)
    expires: Mapped[float] = mapped_column(Float)

    __table_args__ = (
        Index("ix_web_login_attempt_bucket_at", "bucket", "at"),
        Index("ix_web_login_attempt_expires", "expires"),
    )


class CatalogState(Base):
    """The catalog version whose rule rows are in ``casbin_rule`` (one row, id 1)."""

    __tablename__ = "catalog_state"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[str] = mapped_column(String(64))
    digest: Mapped[str] = mapped_column(String(64))
    loaded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ServiceSecret(Base):
    """Secrets every worker and instance must share (the session key when AUTHZ_SECRET_KEY is unset)."""

    __tablename__ = "service_secret"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))


# -- access reviews (migration 0009) -----------------------------------------------------------------------
class Review(Base):
    """A periodic access review of a CPAS: started with a due date, it froze every active user's assignments
    (``ReviewItem``, one per user); closed (signed off: who, when) once every item is decided, and read-only
    from then on. At most one open review per CPAS (``Admin.start_review`` under the CPAS's lock, and the
    partial unique index ``ix_review_open_cpas``)."""

    __tablename__ = "review"
    __table_args__ = (
        Index("ix_review_cpas_id_id", "cpas_id", "id"),
        Index("ix_review_open_cpas", "cpas_id", unique=True, sqlite_where=text("closed_at IS NULL"),
              postgresql_where=text("closed_at IS NULL")),
        NEVER_REUSED,
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cpas_id: Mapped[str] = mapped_column(ForeignKey("cpas.id", ondelete="CASCADE"))
    due: Mapped[date] = mapped_column(Date)
    started_by: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    closed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ReviewItem(Base):
    """One user of a review: who they were and what they held when it started (``assignments``, frozen: a list
    of ``{profile_id, description_fr, description_nl, valid_from, valid_until}``, instants in ISO 8601 UTC or
    null), and the reviewer's decision (``keep``, ``revoke``, ``keep_until`` with ``until``), final once made."""

    __tablename__ = "review_item"
    __table_args__ = (UniqueConstraint("review_id", "user", name="uq_review_item_review_id_user"), NEVER_REUSED)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    review_id: Mapped[int] = mapped_column(ForeignKey("review.id", ondelete="CASCADE"))
    user: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(200), default="")
    assignments: Mapped[Any] = mapped_column(JSON)
    decision: Mapped[str | None] = mapped_column(String(16), nullable=True)
    until: Mapped[date | None] = mapped_column(Date, nullable=True)
    comment: Mapped[str | None] = mapped_column(String(500), nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
