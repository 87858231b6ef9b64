"""The engine against stock pycasbin on hand-made policies: role chains up to and past pycasbin's
hierarchy limit, cycles, covering, prerequisites, other CPAS. No Flask, no database."""

from __future__ import annotations

from pathlib import Path

import casbin
import pytest

from authz_service.engine import MAX_HOPS, CpasPolicy, Rules

ROOT = Path(__file__).resolve().parent.parent
A, B = "0200000000", "0300000000"

P_LINES = [
    ("function:dossier.search", "*", "dossier.search", "allow"),
    ("function:help_request.list", "*", "help_request.list", "allow"),
    ("function:dossier.search", "*", "help_request.list", "deny"),
    ("function:recovery.add", "*", "recovery.add", "allow"),
    ("function:recovery.add", "*", "recovery.modify", "allow"),
    ("function:recovery.add", "*", "recovery.close", "allow"),
    ("function:dossier.search", "*", "recovery.close", "deny"),
]


def oracle(tmp_path: Path, g_lines: list[tuple[str, str, str]]) -> casbin.Enforcer:
    csv = tmp_path / "policy.csv"
    csv.write_text(
        "".join(f"p, {', '.join(p)}\n" for p in P_LINES) + "".join(f"g, {', '.join(g)}\n" for g in g_lines)
    )
    return casbin.Enforcer(str(ROOT / "model.conf"), str(csv))


def policies(g_lines: list[tuple[str, str, str]], users: dict[str, bool]) -> dict[str, CpasPolicy]:
    rules = Rules.from_rows(P_LINES)
    return {
        dom: CpasPolicy(dom, 1, rules, [(a, b) for a, b, d in g_lines if d == dom], users) for dom in (A, B)
    }


def assert_same(tmp_path: Path, g_lines: list[tuple[str, str, str]], users: list[str]) -> int:
    enforcer = oracle(tmp_path, g_lines)
    engines = policies(g_lines, dict.fromkeys(users, True))
    objects = ["dossier.search", "help_request.list", "recovery.add", "recovery.modify", "recovery.close", "x.y"]
    allowed = 0
    for dom, engine in engines.items():
        for user in users:
            for obj in objects:
                expected = enforcer.enforce(f"user:{user}", dom, obj)
                assert engine.decide(user, obj).allowed is expected, (user, dom, obj)
                allowed += expected
    return allowed


def test_prerequisites_covering_and_domains(tmp_path: Path) -> None:
    g_lines = [
        ("user:1", "profile:1", A),
        ("profile:1", "function:help_request.list", A),
        ("user:2", "profile:2", A),
        ("profile:2", "profile:1", A),
        ("profile:2", "function:dossier.search", A),
        ("profile:2", "function:recovery.add", A),
        ("user:3", "profile:3", B),
        ("profile:3", "function:recovery.add", B),
    ]
    assert assert_same(tmp_path, g_lines, ["1", "2", "3", "4"]) > 0
    engine = policies(g_lines, {"1": True, "2": True, "3": True})[A]
    assert engine.decide("2", "recovery.close").allowed
    explained = engine.decide("1", "help_request.list", explain=True)
    assert (explained.allowed, explained.reason, explained.missing_prerequisites) == (
        False, "missing_prerequisite", ("dossier.search",)
    )
    assert explained.granted_by == (1,)
    assert engine.decide("9", "dossier.search", explain=True).reason == "unknown_user"


@pytest.mark.parametrize("depth", [MAX_HOPS - 2, MAX_HOPS - 1, MAX_HOPS, MAX_HOPS + 1])
def test_long_inclusion_chains_follow_pycasbin_limit(tmp_path: Path, depth: int) -> None:
    # user -> profile:0 -> profile:1 -> ... -> profile:k -> function: the function is `depth` links away
    g_lines = [("user:1", "profile:0", A)]
    for i in range(depth - 2):
        g_lines.append((f"profile:{i}", f"profile:{i + 1}", A))
    g_lines.append((f"profile:{depth - 2}", "function:dossier.search", A))
    assert_same(tmp_path, g_lines, ["1"])
    engine = policies(g_lines, {"1": True})[A]
    assert engine.decide("1", "dossier.search").allowed is (depth <= MAX_HOPS)


def test_cycles_terminate(tmp_path: Path) -> None:
    g_lines = [
        ("user:1", "profile:1", A),
        ("profile:1", "profile:2", A),
        ("profile:2", "profile:1", A),
        ("profile:2", "function:dossier.search", A),
    ]
    assert assert_same(tmp_path, g_lines, ["1"]) == 1


def test_rules_refuse_unknown_effect_and_domain() -> None:
    with pytest.raises(ValueError):
        Rules.from_rows([("function:a", "*", "a", "maybe")])
    with pytest.raises(ValueError):
        Rules.from_rows([("function:a", A, "a", "allow")])


def test_service_refuses_another_model(tmp_path: Path) -> None:
    from authz_service.engine import check_model

    check_model(str(ROOT / "model.conf"))
    changed = (ROOT / "model.conf").read_text().replace("p.eft == deny", "p.eft == allow")
    (tmp_path / "model.conf").write_text(changed)
    with pytest.raises(ValueError, match="not the model"):
        check_model(str(tmp_path / "model.conf"))


def test_engine_allows_fails_closed() -> None:
    from authz_service.engine import Engine, EngineUnavailable, Snapshot

    engine = Engine(max_staleness=60)
    with pytest.raises(EngineUnavailable):
        engine.allows(A, "1", "dossier.search")
    rules = Rules.from_rows(P_LINES)
    policy = CpasPolicy(A, 3, rules, [("user:1", "profile:1"), ("profile:1", "function:dossier.search")], {"1": True})
    engine.install(Snapshot(rules=rules, catalog_digest="x", policies={A: policy}))
    assert engine.allows(A, "1", "dossier.search") is True
    assert engine.allows(A, "2", "dossier.search") is False
    with pytest.raises(KeyError):
        engine.allows(B, "1", "dossier.search")
    engine._synced_at -= 61
    with pytest.raises(EngineUnavailable):
        engine.allows(A, "1", "dossier.search")
