"""The engine against stock pycasbin on hand-made policies: the decision tables of tests/cases/ (role
chains up to and past pycasbin's hierarchy limit, inclusion, cycles, covering, prerequisites, inactive
and unknown users, other CPAS), the rule parser, the model check, the engine failing closed. No Flask,
no database."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import casbin
import pytest
import yaml

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


CASES = Path(__file__).resolve().parent / "cases"
REASONS = {"granted", "not_granted", "missing_prerequisite", "user_inactive", "unknown_user"}
UNKNOWN_USER = "nobody"  # never a user of any case
UNKNOWN_FUNCTION = "x.y"  # never a function of any case


@dataclass(frozen=True)
class Expected:
    cpas: str
    user: str
    function: str
    allowed: bool
    reason: str
    granted_by: tuple[int, ...]
    missing: tuple[str, ...]


@dataclass(frozen=True)
class Case:
    """One decision table of tests/cases/ (format: tests/cases/README.md)."""

    name: str
    rules: list[tuple[str, str, str, str]]
    links: dict[str, list[tuple[str, str]]]  # CPAS -> g lines
    users: dict[str, dict[str, bool]]  # CPAS -> user -> active
    expect: list[Expected]

    @classmethod
    def load(cls, path: Path) -> Case:
        """Strict: a misspelt key or an unquoted number is an error, never a case that checks less."""
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        where = path.name
        _keys(where, data, required={"rules", "cpas", "expect"}, optional={"description"})
        rules = [_strings(f"{where}: p line", line, 4) for line in data["rules"]]
        links: dict[str, list[tuple[str, str]]] = {}
        users: dict[str, dict[str, bool]] = {}
        for cpas, body in data["cpas"].items():
            assert isinstance(cpas, str), f"{where}: quote the CPAS number {cpas!r}"
            _keys(f"{where}: {cpas}", body, required={"users"}, optional={"links"})
            links[cpas] = [_strings(f"{where}: {cpas} g line", line, 2) for line in body.get("links") or []]
            users[cpas] = {}
            for user, active in body["users"].items():
                assert isinstance(user, str) and isinstance(active, bool), f"{where}: user {user!r}: {active!r}"
                users[cpas][user] = active
        expect = []
        for item in data["expect"]:
            _keys(f"{where}: {item}", item, required={"user", "function", "allowed", "reason"},
                  optional={"cpas", "granted_by", "missing"})
            cpas = item.get("cpas")
            if cpas is None:
                assert len(links) == 1, f"{where}: {item} must name its CPAS"
                cpas = next(iter(links))
            assert cpas in links, f"{where}: {item}: CPAS {cpas!r} is not in the file"
            assert isinstance(item["user"], str) and isinstance(item["allowed"], bool), f"{where}: {item}"
            assert item["reason"] in REASONS, f"{where}: {item}: unknown reason"
            expect.append(Expected(cpas, item["user"], item["function"], item["allowed"], item["reason"],
                                   tuple(item.get("granted_by", ())), tuple(item.get("missing", ()))))
        assert expect, f"{where}: no expected decision"
        return cls(path.stem, rules, links, users, expect)

    def policies(self) -> dict[str, CpasPolicy]:
        rules = Rules.from_rows(self.rules)
        return {cpas: CpasPolicy(cpas, 1, rules, self.links[cpas], self.users[cpas]) for cpas in self.links}

    def csv(self) -> str:
        """The lines pycasbin gets: as Store.policy_lines exports them, without inactive users' links."""
        lines = [("p", *rule) for rule in self.rules]
        for cpas, links in self.links.items():
            inactive = {f"user:{u}" for u, active in self.users[cpas].items() if not active}
            lines += [("g", child, parent, cpas) for child, parent in links if child not in inactive]
        return "".join(", ".join(line) + "\n" for line in lines)

    def everything(self) -> list[tuple[str, str, str]]:
        """Every (CPAS, user, function) the file names, plus a user and a function it does not."""
        users = {UNKNOWN_USER} | {e.user for e in self.expect}
        for cpas, links in self.links.items():
            users |= set(self.users[cpas])
            users |= {child[len("user:"):] for child, _ in links if child.startswith("user:")}
        functions = {UNKNOWN_FUNCTION} | {rule[2] for rule in self.rules} | {e.function for e in self.expect}
        return [(c, u, f) for c in sorted(self.links) for u in sorted(users) for f in sorted(functions)]


def _keys(where: str, data: object, *, required: set[str], optional: set[str]) -> None:
    assert isinstance(data, dict), f"{where}: expected a mapping"
    assert required <= set(data) <= required | optional, f"{where}: keys {sorted(data)}"


def _strings(where: str, line: object, size: int) -> tuple[str, ...]:
    assert isinstance(line, list) and len(line) == size and all(isinstance(v, str) for v in line), (where, line)
    return tuple(line)


CASE_FILES = sorted(CASES.glob("*.yaml"))


def oracle(tmp_path: Path, case: Case) -> casbin.Enforcer:
    csv = tmp_path / "policy.csv"
    csv.write_text(case.csv())
    return casbin.Enforcer(str(ROOT / "model.conf"), str(csv))


@pytest.mark.parametrize("path", CASE_FILES, ids=[p.stem for p in CASE_FILES])
def test_decision_table(tmp_path: Path, path: Path) -> None:
    case = Case.load(path)
    policies = case.policies()
    enforcer = oracle(tmp_path, case)
    for e in case.expect:
        policy = policies[e.cpas]
        decision = policy.decide(e.user, e.function, explain=True)
        got = (decision.allowed, decision.reason, decision.granted_by, decision.missing_prerequisites)
        assert got == (e.allowed, e.reason, e.granted_by, e.missing), e
        assert policy.decide(e.user, e.function).allowed is e.allowed, e
        assert policy.allows(e.user, e.function) is e.allowed, e
        assert (e.function in policy.functions_of(e.user)) is e.allowed, e
        assert enforcer.enforce(f"user:{e.user}", e.cpas, e.function) is e.allowed, ("pycasbin", e)
    # and beyond the table: every user x function x CPAS the file names, as pycasbin decides it
    for cpas, user, function in case.everything():
        expected = enforcer.enforce(f"user:{user}", cpas, function)
        assert policies[cpas].decide(user, function).allowed is expected, (cpas, user, function)


def test_decision_tables_cover_every_reason() -> None:
    cases = [Case.load(p) for p in CASE_FILES]
    assert len(cases) >= 8
    assert {e.reason for c in cases for e in c.expect} == REASONS
    # the hierarchy limit is where pycasbin's is: a chain of MAX_HOPS links grants, one more does not
    depth = next(c for c in cases if c.name == "hierarchy_depth")
    assert MAX_HOPS == 9
    assert {e.user: e.allowed for e in depth.expect if e.function == "dossier.search"}["9"] is True
    assert {e.user: e.allowed for e in depth.expect if e.function == "dossier.search"}["10"] is False


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

    now = [1000.0]
    engine = Engine(max_staleness=60, clock=lambda: now[0])
    with pytest.raises(EngineUnavailable):
        engine.allows(A, "1", "dossier.search")
    rules = Rules.from_rows(P_LINES)
    policy = CpasPolicy(A, 3, rules, [("user:1", "profile:1"), ("profile:1", "function:dossier.search")], {"1": True})
    engine.install(Snapshot(rules=rules, catalog_digest="x", policies={A: policy}))
    assert engine.allows(A, "1", "dossier.search") is True
    assert engine.allows(A, "2", "dossier.search") is False
    with pytest.raises(KeyError):
        engine.allows(B, "1", "dossier.search")
    now[0] += 61  # no sync for longer than max_staleness
    with pytest.raises(EngineUnavailable):
        engine.allows(A, "1", "dossier.search")
    engine.mark_synced()  # a sync answered again
    assert engine.allows(A, "1", "dossier.search") is True
