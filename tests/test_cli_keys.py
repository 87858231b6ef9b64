"""Operators list and revoke API keys from the command line; a revoked key stops working."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from authz_service import create_app
from authz_service.cli import main


def test_list_and_revoke(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'keys.sqlite3'}"
    env = {"AUTHZ_DATABASE_URL": url}
    runner = CliRunner()
    assert runner.invoke(main, ["init-db"], env=env).exit_code == 0
    made = runner.invoke(main, ["create-api-key", "--name", "primaweb", "--scopes", "enforce"], env=env)
    assert made.exit_code == 0, made.output
    key = made.output.strip().splitlines()[-1]
    prefix = key.split("_")[1]

    listed = runner.invoke(main, ["list-api-keys"], env=env)
    assert listed.exit_code == 0
    assert prefix in listed.output and "primaweb" in listed.output and "all CPAS" in listed.output
    assert key.split("_", 2)[2] not in listed.output  # never the secret

    app = create_app({"database_url": url, "poll_interval": 0}, start_polling=False)
    try:
        client = app.test_client()
        probe = {"cpas": "0212345668", "user": "u", "function": "dossier.search"}
        assert client.post("/enforce", json=probe, headers={"Authorization": f"Bearer {key}"}).status_code == 404

        revoked = runner.invoke(main, ["revoke-api-key", prefix], env=env)
        assert revoked.exit_code == 0 and "revoked" in revoked.output
        assert "REVOKED" in runner.invoke(main, ["list-api-keys"], env=env).output
        assert "already revoked" in runner.invoke(main, ["revoke-api-key", key], env=env).output

        fresh = create_app({"database_url": url, "poll_interval": 0}, start_polling=False)  # no cached key
        try:
            answer = fresh.test_client().post("/enforce", json=probe, headers={"Authorization": f"Bearer {key}"})
            assert answer.status_code == 401 and answer.json["error"]["code"] == "unauthenticated"
        finally:
            fresh.extensions["authz"].close()
    finally:
        app.extensions["authz"].close()

    missing = runner.invoke(main, ["revoke-api-key", "nope"], env=env)
    assert missing.exit_code == 2 and "no API key" in missing.output
