"""Settings: every knob of the service, read from ``AUTHZ_*`` environment variables and validated at start.

Tests and the CLI build a :class:`Settings` from an overrides mapping; nothing reads the environment
anywhere else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUTHZ_", extra="forbid", frozen=True)

    database_url: str = Field(
        default=f"sqlite:///{REPO_ROOT / 'var' / 'authz.sqlite3'}",
        description="SQLAlchemy URL; postgresql+psycopg://... in production",
    )
    policies_dir: Path = Field(default=REPO_ROOT / "policies", description="folder of catalog.yaml")
    model_path: Path = Field(default=REPO_ROOT / "model.conf", description="the Casbin model")
    seed_dir: Path = Field(default=REPO_ROOT / "seed", description="folder of demo.yaml")
    secret_key: str = Field(default="", description="Flask session secret; if empty, a random one kept in the database")
    poll_interval: float = Field(default=1.0, ge=0, description="seconds between policy-version polls; 0 = off")
    max_staleness: float = Field(
        default=15.0, gt=0, description="refuse decisions (503) when the store has not answered for this long"
    )
    store_timeout: float = Field(
        default=2.0, ge=0.1, le=300,
        description="seconds the service waits for the policy store (connect, pool, each statement or lock, "
        "SQLite's busy wait) before answering 503",
    )
    notify: Literal["auto", "off", "postgres", "redis"] = Field(
        default="auto", description="how other instances hear of a change: Redis if AUTHZ_REDIS_URL, else NOTIFY"
    )
    redis_url: str | None = Field(default=None, description="redis://host:6379/0 for change notifications")
    version_board: str = Field(
        default="",
        description="file of the per-host change counters that keep every worker current (read-your-writes); "
        "empty: beside the SQLite file, or in a private temporary folder named after the database URL",
    )
    consistency_wait: float = Field(
        default=2.0, gt=0, le=30,
        description="how long a decision waits for the store when min_policy_version is newer than its policy",
    )
    batch_limit: int = Field(default=1000, ge=1, le=100_000)
    max_body_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    # a user -> profile -> ... -> profile -> function chain has depth + 2 links; pycasbin follows at most 9
    # links (RoleManager(max_hierarchy_level=10)), node-casbin and Go casbin 10: 7 keeps every chain
    # decided alike by all three
    max_inclusion_depth: int = Field(default=5, ge=1, le=7)
    review_interval_days: int = Field(
        default=365, ge=1, le=3650,
        description="access reviews: a CPAS with no review closed within this many days is overdue",
    )
    log_level: str = "INFO"
    access_log: bool = Field(
        default=True, description="the request log: one JSON line per request on the authz.access logger"
    )
    decision_log: bool = Field(
        default=False,
        description="the decision log: one JSON line per decision (lean path, /enforce, each batch item), with "
        "its explanation and policy version, on the authz.decisions logger",
    )

    @field_validator("database_url")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError("AUTHZ_DATABASE_URL must be a sqlite:// or postgresql+psycopg:// URL")
        return value


def load_settings(overrides: dict[str, Any] | None = None) -> Settings:
    """Environment first, then ``overrides`` (keys are field names, lower case). The key ``"web"`` holds
    the web UI's own settings, read by ``web/settings.py`` (``create_app`` hands them over)."""
    return Settings(**{k: v for k, v in (overrides or {}).items() if k != "web"})
