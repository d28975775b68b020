"""Every listing and status command has `--json`: one document scripts can read, with named fields."""

from __future__ import annotations

import base64
import json

import pytest
from click.testing import CliRunner

from cli.main import main
from core.config import load_settings


@pytest.fixture(autouse=True)
def _fresh_settings():
    """Commands read settings once per process (cached): each test's environment is its own."""
    load_settings.cache_clear()
    yield
    load_settings.cache_clear()


def test_listings_print_json(storage, mongo_url, redis_url, tmp_path):
    env = {"MONGO_URL": mongo_url, "MONGO_DATABASE": storage.db.name, "REDIS_URL": redis_url,
           "DATA_DIR": str(tmp_path), "KOMMO_AGENT_HOME": str(tmp_path), "SECRETS_KEYS": "k1:" + "A" * 43 + "=",
           "LLM_API_KEY": ""}
    runner = CliRunner()

    def run(*args: str):
        result = runner.invoke(main, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    org = runner.invoke(main, ["org", "create", "Json shop"], env=env).stdout.strip()
    agent = runner.invoke(main, ["agent", "create", "--org", org, "--name", "Jo"], env=env).stdout.strip()
    assert [(a["id"], a["name"], a["enabled"], a["delivery_mode"]) for a in run("agent", "list", "--org", org, "--json")] \
        == [(agent, "Jo", True, "note_draft")]
    assert run("knowledge", "list", "--org", org, "--agent", "Jo", "--json") == []
    assert run("conversation", "list", "--org", org, "--json") == []
    assert run("campaign", "list", "--org", org, "--json") == []
    assert run("team", "list", "--org", org, "--json") == []
    assert [o["name"] for o in run("org", "list", "--json")] == ["Json shop"]
    assert "instructions" not in json.dumps(run("agent", "list", "--org", org, "--json"))  # named fields only


def test_kommo_status_prints_json(connected, core_services, fake_kommo, storage, mongo_url, redis_url, tmp_path,
                                  keyring):
    org, account, _fake_acc = connected
    key = base64.b64encode(keyring.keys["k1"]).decode()
    env = {"MONGO_URL": mongo_url, "MONGO_DATABASE": storage.db.name, "REDIS_URL": redis_url,
           "DATA_DIR": str(tmp_path), "KOMMO_AGENT_HOME": str(tmp_path), "SECRETS_KEYS": f"k1:{key}",
           "KOMMO_API_BASE_URL": fake_kommo.base_url, "KOMMO_PUBLIC_BASE_URL": "https://agent.example"}
    runner = CliRunner()
    created = runner.invoke(main, ["agent", "create", "--org", org.id, "--name", "Nora"], env=env)
    assert created.exit_code == 0, created.output
    result = runner.invoke(main, ["kommo", "status", "--org", org.id, "--json"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    status = json.loads(result.stdout)
    assert status["account"] == account.host and status["status"] == "active"
    assert status["webhook_url"].startswith("https://agent.example/webhooks/kommo/")
    (nora,) = status["agents"]
    assert (nora["name"], nora["mode"], nora["reaches_customer"]) == ("Nora", "note_draft", False)
    assert "customers see nothing" in nora["in_words"]
    assert "secrets" not in result.stdout and "hook_token" not in result.stdout
