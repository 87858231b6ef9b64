"""The generator and the engine on generated data: the same seed gives the same dataset, and the
engine decides like stock pycasbin on a sample of a generated multi-CPAS policy (the national-scale
run of the same check is in `make bench`, which asserts agreement before it times anything)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import casbin
import pytest
from sqlalchemy import select

from authz_service.catalog import load_catalog
from authz_service.cli import init_db
from authz_service.config import load_settings
from authz_service.db import Database
from authz_service.generate import generate, plan
from authz_service.models import CasbinRule, Cpas, User
from authz_service.service import Service
from authz_service.store import policy_csv

ROOT = Path(__file__).resolve().parent.parent


def build(tmp_path: Path, name: str, cpas: int, seed: int) -> str:
    url = f"sqlite:///{tmp_path / name}"
    settings = load_settings({"database_url": url})
    init_db(settings)
    database = Database(url)
    try:
        totals = generate(database, load_catalog(settings.policies_dir), plan(None, cpas, seed, users=cpas * 40))
    finally:
        database.dispose()
    assert totals["cpas"] == cpas
    return url


def rows(url: str) -> tuple[list[Any], list[Any]]:
    database = Database(url)
    try:
        with database.reading() as s:
            rules = sorted(tuple(r) for r in s.execute(select(CasbinRule.ptype, CasbinRule.v0, CasbinRule.v1,
                                                                 CasbinRule.v2, CasbinRule.v3)).all())
            users = sorted(tuple(r) for r in s.execute(select(User.cpas_id, User.user, User.active)).all())
        return rules, users
    finally:
        database.dispose()


def test_generator_is_deterministic_and_idempotent(tmp_path: Path) -> None:
    first = build(tmp_path, "a.sqlite3", 4, seed=5)
    second = build(tmp_path, "b.sqlite3", 4, seed=5)
    assert rows(first) == rows(second)
    rules, users = rows(first)
    assert len(users) >= 4 * 40 * 0.8
    assert any(not active for _, _, active in users)  # the generator makes some inactive users
    database = Database(first)
    try:
        again = generate(database, load_catalog(ROOT / "policies"), plan(None, 4, 5, users=160))
    finally:
        database.dispose()
    assert again["cpas"] == 0 and rows(first)[0] == rules  # nothing written twice


@pytest.mark.parametrize("seed", [11])
def test_engine_matches_stock_pycasbin_on_generated_data(tmp_path: Path, seed: int) -> None:
    url = build(tmp_path, "g.sqlite3", 12, seed=seed)
    service = Service(load_settings({"database_url": url, "poll_interval": 0, "notify": "off"}))
    try:
        assert service.sync()
        lines: dict[tuple[str, ...], None] = {}
        for cpas in service.engine.snapshot.policies:
            for line in service.read(lambda store, c=cpas: store.policy_lines(c)):
                lines[line] = None
        path = tmp_path / "policy.csv"
        path.write_text(policy_csv(lines))
        enforcer = casbin.FastEnforcer(str(ROOT / "model.conf"), str(path), cache_key_order=[2])
        stock = casbin.Enforcer(str(ROOT / "model.conf"), str(path))
        rng = random.Random(seed)
        policies = list(service.engine.snapshot.policies.values())
        with service.db.reading() as session:  # every user row of each CPAS, active or not
            users = {c: list(session.scalars(select(User.user).where(User.cpas_id == c).order_by(User.user)))
                     for c in session.scalars(select(Cpas.id))}
        codes = list(service.catalog.functions)
        allowed = 0
        for i in range(1500):
            policy = rng.choice(policies)
            user = rng.choice([*users[policy.cpas], "99999999999"])
            granted = sorted(policy.functions_of(user))
            code = rng.choice(granted) if granted and i % 2 else rng.choice(codes)
            expected = enforcer.enforce(f"user:{user}", policy.cpas, code)
            if i % 100 == 0:  # FastEnforcer itself against the plain Enforcer, now and then
                assert stock.enforce(f"user:{user}", policy.cpas, code) is expected
            assert service.engine.allows(policy.cpas, user, code) is expected, (policy.cpas, user, code)
            allowed += expected
        assert 150 < allowed < 1400  # both answers are exercised
    finally:
        service.close()
