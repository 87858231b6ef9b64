"""The ``authz-service`` command line (docs/api.md, "Command line") through click's CliRunner, each test on
its own SQLite file given by AUTHZ_DATABASE_URL, plus the installed console script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, inspect, text

from authz_service import create_app
from authz_service.cli import main

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).parent / "authz-service"
DEMO_CPAS = "0207196354"  # seed/demo.yaml
PASSWORD = "correct horse battery staple"


def kbo(n: int) -> str:
    head = f"0{n:07d}"
    return head + f"{97 - int(head) % 97:02d}"


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'x.sqlite3'}"


@pytest.fixture
def cli(url: str):  # type: ignore[no-untyped-def]
    runner = CliRunner()

    def run(*args: str, input: str | None = None) -> Result:
        return runner.invoke(main, list(args), env={"AUTHZ_DATABASE_URL": url}, input=input,
                             catch_exceptions=False)

    return run


@pytest.fixture
def seeded(cli) -> None:  # type: ignore[no-untyped-def]
    assert cli("init-db").exit_code == 0
    assert cli("seed-demo").exit_code == 0


def query(url: str, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql), params).all()]
    finally:
        engine.dispose()


def output(result: Result) -> str:
    """stdout and stderr together (click 8.2 keeps them apart; 8.1 may mix them)."""
    out = result.stdout
    try:
        err = result.stderr
    except ValueError:
        err = ""
    return out + err


# == init-db and seed-demo ===============================================================================
def test_init_db_creates_the_schema_and_is_idempotent(cli, url) -> None:
    first = cli("init-db")
    assert first.exit_code == 0, output(first)
    assert "catalog loaded" in first.stdout
    engine = create_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"casbin_rule", "cpas", "profile", "app_user", "audit", "api_key", "admin_account"} <= tables
    rules = query(url, "SELECT count(*) FROM casbin_rule WHERE ptype = 'p'")[0][0]
    assert rules > 0
    second = cli("init-db")
    assert second.exit_code == 0, output(second)
    assert "already up to date" in second.stdout
    assert query(url, "SELECT count(*) FROM casbin_rule WHERE ptype = 'p'")[0][0] == rules


def test_seed_demo_is_idempotent(cli, url) -> None:
    assert cli("init-db").exit_code == 0
    first = cli("seed-demo")
    assert first.exit_code == 0, output(first)
    assert DEMO_CPAS in first.stdout
    assert "1 CPAS, 6 profiles, 14 users created" in first.stdout
    counts = query(url, "SELECT (SELECT count(*) FROM profile), (SELECT count(*) FROM app_user), "
                        "(SELECT count(*) FROM casbin_rule), (SELECT count(*) FROM audit)")[0]
    assert counts[0] == 7  # the six of the manual and the built-in "Tous les accès"
    assert counts[1] == 14
    second = cli("seed-demo")
    assert second.exit_code == 0, output(second)
    assert "0 CPAS, 0 profiles, 0 users created" in second.stdout
    assert query(url, "SELECT (SELECT count(*) FROM profile), (SELECT count(*) FROM app_user), "
                      "(SELECT count(*) FROM casbin_rule), (SELECT count(*) FROM audit)")[0] == counts


# == create-api-key ======================================================================================
def test_create_api_key_prints_a_working_key(cli, url, seeded) -> None:
    result = cli("create-api-key", "--name", "primaweb", "--scopes", "enforce,users", "--cpas", "0207.196.354")
    assert result.exit_code == 0, output(result)
    key = result.stdout.strip().splitlines()[-1]
    assert key.strip() == key and " " not in key and len(key) >= 32
    operator_result = cli("create-api-key", "--name", "ops", "--scopes", "admin")
    assert operator_result.exit_code == 0, output(operator_result)
    operator_key = operator_result.stdout.strip().splitlines()[-1]
    assert operator_key != key
    stored = query(url, "SELECT name, key_hash FROM api_key ORDER BY id")
    assert [r[0] for r in stored] == ["primaweb", "ops"]
    assert all(key not in str(r[1]) and operator_key not in str(r[1]) for r in stored)  # only a hash

    app = create_app({"database_url": url, "poll_interval": 0}, start_polling=False)
    try:
        client = app.test_client()
        auth = {"Authorization": f"Bearer {key}"}
        ops = {"Authorization": f"Bearer {operator_key}"}
        # the operator key (admin, every CPAS) creates a second CPAS
        other = kbo(4711)
        created = client.post("/cpas", json={"cpas": other, "name_fr": "CPAS X", "name_nl": "OCMW X",
                                             "region": "wallonia"}, headers=ops)
        assert created.status_code == 201, created.get_json()
        assert client.get(f"/cpas/{DEMO_CPAS}/profiles", headers=ops).status_code == 200
        error = client.post("/enforce", json={"cpas": DEMO_CPAS, "user": "1", "function": "forms.list"},
                            headers=ops)
        assert error.status_code == 403 and error.get_json()["error"]["code"] == "forbidden"

        # the application key: its scopes, its CPAS
        ok = client.post("/enforce", json={"cpas": DEMO_CPAS, "user": "85073003328", "function": "forms.list"},
                         headers=auth)
        assert ok.status_code == 200, ok.get_json()
        assert ok.get_json()["allowed"] is True
        seen = client.put(f"/cpas/{DEMO_CPAS}/users/50010112345", json={"name": "X", "lang": "fr"}, headers=auth)
        assert seen.status_code == 201, seen.get_json()
        elsewhere = client.post("/enforce", json={"cpas": other, "user": "1", "function": "forms.list"},
                                headers=auth)
        assert elsewhere.status_code == 403 and elsewhere.get_json()["error"]["code"] == "forbidden"
        admin = client.get(f"/cpas/{DEMO_CPAS}/profiles", headers=auth)
        assert admin.status_code == 403 and admin.get_json()["error"]["code"] == "forbidden"
        bad = client.post("/enforce", json={"cpas": DEMO_CPAS, "user": "1", "function": "forms.list"},
                          headers={"Authorization": f"Bearer {key}x"})
        assert bad.status_code == 401 and bad.get_json()["error"]["code"] == "unauthenticated"
    finally:
        app.extensions["authz"].close()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--scopes", "enforce,root"], "scopes"),
        (["--scopes", ""], "scopes"),
        (["--scopes", "enforce", "--cpas", kbo(999)], "not known"),
        (["--scopes", "enforce", "--cpas", "0207196355"], "0207196355"),  # mod-97 check fails
        (["--scopes", "enforce", "--cpas", "2207196354"], "KBO"),  # first digit must be 0 or 1
        (["--scopes", "enforce", "--cpas", DEMO_CPAS, "--cpas", "12345"], "KBO"),
    ],
)
def test_create_api_key_refuses_bad_input(cli, url, seeded, args, words) -> None:
    before = query(url, "SELECT count(*) FROM api_key")[0][0]
    result = cli("create-api-key", "--name", "bad", *args)
    assert result.exit_code == 2, output(result)
    assert words in output(result)
    assert "Traceback" not in output(result)
    assert "azk_" not in output(result)  # no key printed
    assert query(url, "SELECT count(*) FROM api_key")[0][0] == before


# == create-admin ========================================================================================
def test_create_admin_reads_the_password_from_stdin_and_stores_an_argon2_hash(cli, url, seeded) -> None:
    result = cli("create-admin", "--username", "marie", "--cpas", DEMO_CPAS, input=PASSWORD + "\n")
    assert result.exit_code == 0, output(result)
    assert PASSWORD not in output(result)
    rows = query(url, "SELECT username, password_hash, operator FROM admin_account")
    assert len(rows) == 1
    username, password_hash, operator = rows[0]
    assert username == "marie" and not operator
    assert password_hash.startswith("$argon2")
    assert PASSWORD not in password_hash
    from argon2 import PasswordHasher

    assert PasswordHasher().verify(password_hash, PASSWORD)

    ops = cli("create-admin", "--username", "helpdesk", "--operator", input=PASSWORD + "\n")
    assert ops.exit_code == 0, output(ops)
    assert query(url, "SELECT operator FROM admin_account WHERE username = 'helpdesk'")[0][0]


def test_create_admin_refusals(cli, url, seeded) -> None:
    def count() -> int:
        return int(query(url, "SELECT count(*) FROM admin_account")[0][0])

    short = cli("create-admin", "--username", "a", "--cpas", DEMO_CPAS, input="short\n")
    assert short.exit_code == 2, output(short)
    assert "8" in output(short) and "password" in output(short)
    assert count() == 0

    neither = cli("create-admin", "--username", "b", input=PASSWORD + "\n")
    assert neither.exit_code == 2, output(neither)
    assert "--operator" in output(neither) and "--cpas" in output(neither)
    both = cli("create-admin", "--username", "b", "--cpas", DEMO_CPAS, "--operator", input=PASSWORD + "\n")
    assert both.exit_code == 2, output(both)
    assert count() == 0

    unknown = cli("create-admin", "--username", "c", "--cpas", kbo(999), input=PASSWORD + "\n")
    assert unknown.exit_code == 2, output(unknown)
    assert "not known" in output(unknown)
    bad = cli("create-admin", "--username", "c", "--cpas", "0207196355", input=PASSWORD + "\n")
    assert bad.exit_code == 2, output(bad)
    assert count() == 0

    assert cli("create-admin", "--username", "d", "--cpas", DEMO_CPAS, input=PASSWORD + "\n").exit_code == 0
    before = query(url, "SELECT password_hash FROM admin_account WHERE username = 'd'")
    duplicate = cli("create-admin", "--username", "d", "--operator", input="another password\n")
    assert duplicate.exit_code == 2, output(duplicate)
    assert "already exists" in output(duplicate)
    assert count() == 1
    assert query(url, "SELECT password_hash FROM admin_account WHERE username = 'd'") == before


def test_create_admin_if_missing_is_idempotent(cli, url, seeded) -> None:
    first = cli("create-admin", "--username", "e", "--operator", "--if-missing", input=PASSWORD + "\n")
    assert first.exit_code == 0, output(first)
    before = query(url, "SELECT id, password_hash FROM admin_account")
    assert len(before) == 1
    again = cli("create-admin", "--username", "e", "--operator", "--if-missing", input="another password\n")
    assert again.exit_code == 0, output(again)
    assert "already exists" in output(again)
    assert query(url, "SELECT id, password_hash FROM admin_account") == before


# == the console script ==================================================================================
def test_console_script_entry_point(tmp_path: Path) -> None:
    assert SCRIPT.exists(), SCRIPT
    env = {"PATH": str(SCRIPT.parent), "AUTHZ_DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}"}
    helped = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60, env=env)
    assert helped.returncode == 0, helped.stderr
    for command in ("init-db", "seed-demo", "create-api-key", "create-admin", "serve"):
        assert command in helped.stdout, command
    serve = subprocess.run([str(SCRIPT), "serve", "--help"], capture_output=True, text=True, timeout=60, env=env)
    assert serve.returncode == 0, serve.stderr
    for option in ("--host", "--port", "--workers"):
        assert option in serve.stdout, option


def test_serve_help_through_the_runner(cli) -> None:
    result = cli("serve", "--help")
    assert result.exit_code == 0
    assert "127.0.0.1" in result.stdout and "8000" in result.stdout
