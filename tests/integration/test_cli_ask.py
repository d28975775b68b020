"""`kommo-agent ask`: a dry-run turn from the command line, against the fake LLM process."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.models.agent import Agent, AgentAction, StageRule
from core.models.kommo import KommoPipeline, KommoStage
from core.usage.repository import UsageRepository

ROOT = Path(__file__).resolve().parents[2]
ORG = "org_cli"


@pytest.fixture(scope="module")
def llm_url():
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.llm", "--port", "0"], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    try:
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.wait(10)


def _env(storage, mongo_url: str, redis_url: str, tmp_path: Path, llm_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGO_", "REDIS_", "LLM_", "SECRETS_", "QDRANT_"))}
    env.update(MONGO_URL=mongo_url, MONGO_DATABASE=storage.db.name, REDIS_URL=redis_url, DATA_DIR=str(tmp_path),
               SECRETS_KEYS="k1:" + base64.b64encode(os.urandom(32)).decode(), LOG_JSON="false")
    if llm_url:
        env.update(LLM_BASE_URL=llm_url, LLM_API_KEY="sk-cli-" + "x" * 30, LLM_MAX_RETRIES="0")
    else:
        env["LLM_API_KEY"] = ""
    return env


def _ask(env, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", "ask", *args], cwd=env["DATA_DIR"], env=env,
                          capture_output=True, text=True, timeout=120)


async def _seed(storage) -> None:
    await storage.agents.insert(ORG, Agent(
        _id="ag1", org_id=ORG, name="Anna", model="fake-model",
        allowed_actions=[AgentAction.REPLY, AgentAction.MOVE_LEAD_STAGE, AgentAction.HANDOFF_TO_HUMAN],
        stage_rules=[StageRule(pipeline_id=5, status_id=51, when="demo booked")]))
    await storage.kommo_catalog.replace_pipelines(ORG, [KommoPipeline(
        _id=f"{ORG}:5", org_id=ORG, pipeline_id=5, name="Sales",
        statuses=[KommoStage(id=51, name="Demo", pipeline_id=5)])])


async def test_ask_prints_answer_actions_and_usage(storage, mongo_url, redis_url, tmp_path, llm_url):
    await _seed(storage)
    env = _env(storage, mongo_url, redis_url, tmp_path, llm_url)
    out = _ask(env, "--org", ORG, "--agent", "ag1", "book a demo #move:5:51")
    assert out.returncode == 0, out.stderr
    assert "OK: book a demo #move:5:51" in out.stdout
    assert "would do: move_lead_stage(pipeline_id=5, status_id=51" in out.stdout
    assert "usage: fake-model prompt=" in out.stdout
    out = _ask(env, "--org", ORG, "--agent", "ag1", "--json", "hello")
    data = json.loads(out.stdout)
    assert data["reply_text"] == "OK: hello" and data["dry_run"] is True and data["mode"] == "llm"
    assert (await UsageRepository(storage.db).list(ORG))[0].purpose == "test_chat"


async def test_ask_errors_are_one_line(storage, mongo_url, redis_url, tmp_path):
    await _seed(storage)
    env = _env(storage, mongo_url, redis_url, tmp_path, None)
    out = _ask(env, "--org", ORG, "--agent", "nope", "hello")
    assert out.returncode == 1 and out.stderr.strip().splitlines()[-1].startswith("error:")
    assert "Traceback" not in out.stderr
    out = _ask(env, "--org", ORG, "--agent", "ag1", "--json", "Do you sell cars?")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["mode"] == "extractive" and data["handoff"] is True


def _cli(env, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=env["DATA_DIR"], env=env,
                          capture_output=True, text=True, timeout=180)


async def test_faq_pairs_from_the_cli_answer_the_next_question(storage, mongo_url, redis_url, tmp_path):
    await _seed(storage)
    env = _env(storage, mongo_url, redis_url, tmp_path, None)
    bad = _cli(env, "knowledge", "faq", "--org", ORG, "--agent", "ag1", "-q", "Only a question?")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    added = _cli(env, "knowledge", "faq", "--org", ORG, "--agent", "ag1",
                 "-q", "Do you deliver on Sundays?", "-a", "Yes, Sunday delivery costs 15 EUR and arrives by 6 pm.")
    assert added.returncode == 0, added.stderr
    [source] = await storage.knowledge.for_agent(ORG, "ag1")
    assert (source.kind, source.status, source.chunks_total) == ("faq", "ready", 1)
    out = _ask(env, "--org", ORG, "--agent", "ag1", "--json", "Do you deliver on Sunday?")
    data = json.loads(out.stdout)
    assert data["mode"] == "extractive" and "15 EUR" in data["reply_text"], data
