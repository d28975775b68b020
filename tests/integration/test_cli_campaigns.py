"""`kommo-agent campaign|conversation|notifications` through click's CliRunner against the real
services (the test Mongo and Redis, given to the CLI as MONGO_URL/REDIS_URL) and the fake Kommo.
The CLI runs in a thread with its own event loop, as in its own process, while the fake Kommo
keeps serving on the test's loop."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import main
from core.clock import utcnow
from core.config import load_settings
from core.models.conversation import ConversationState
from core.security.keyring import Keyring
from tests.fixtures.campaigns import add_conversation, add_lead, drafts

KEY = os.urandom(32)


@pytest.fixture
def keyring() -> Keyring:
    """The keyring the CLI process gets through SECRETS_KEYS, so it can read the stored token."""
    return Keyring(keys={"k1": KEY}, primary="k1")


@pytest.fixture
def cli_env(shop, storage, mongo_url, redis_url, fake_kommo, tmp_path):
    return {"MONGO_URL": mongo_url, "MONGO_DATABASE": storage.db.name, "REDIS_URL": redis_url,
            "SECRETS_KEYS": "k1:" + base64.b64encode(KEY).decode(), "DATA_DIR": str(tmp_path),
            "KOMMO_API_BASE_URL": fake_kommo.base_url, "KOMMO_CLIENT_ID": fake_kommo.client_id,
            "KOMMO_CLIENT_SECRET": fake_kommo.client_secret, "KOMMO_REQUEST_TIMEOUT_S": "2",
            "LLM_API_KEY": "", "LOG_JSON": "false", "LOG_LEVEL": "WARNING"}


def _invoke(env, args: list[str]):
    # A CLI process reads its settings once (load_settings is cached); in-process, the cache is
    # cleared around each command so the command sees exactly this environment.
    load_settings.cache_clear()
    try:
        return CliRunner().invoke(main, args, env=env, catch_exceptions=False)
    finally:
        load_settings.cache_clear()


async def cli(env, *args: str):
    return await asyncio.to_thread(_invoke, env, list(args))


async def test_start_wait_status_list_and_errors(shop, cli_env, redis_client):
    org = shop.org_id
    ivan = add_lead(shop.fake_acc, "Ivan Petrov")
    stale = add_lead(shop.fake_acc, "Olga")
    await add_conversation(shop.services.storage, org, stale, origin="whatsapp",
                           last_customer_at=utcnow() - timedelta(hours=25))
    started = await cli(cli_env, "campaign", "start", "--org", org, "--agent", "Sales", "--pipeline", "Sales",
                        "--stage", "Qualified", "--text", "Hi {first_name|there}, new prices!", "--wait")
    assert started.exit_code == 0, started.output
    lines = started.output.splitlines()
    campaign_id = lines[0]
    assert campaign_id.startswith("cmp_")
    assert any(line.startswith("progress: 2/2") for line in lines)
    assert f"campaign:  {campaign_id} (done)" in started.output
    assert "sent 1, skipped 1, failed 0" in started.output
    assert f"lead {stale} 'Lead': WhatsApp 24-hour window closed" in started.output
    assert drafts(shop.fake_acc, ivan)[0].endswith("Hi Ivan, new prices!")

    status = await cli(cli_env, "campaign", "status", "--org", org, campaign_id)
    assert status.exit_code == 0 and "progress:  2/2 - sent 1, skipped 1, failed 0" in status.output
    listed = await cli(cli_env, "campaign", "list", "--org", org)
    assert listed.exit_code == 0 and campaign_id in listed.output and "\tdone\t" in listed.output

    again = await cli(cli_env, "campaign", "cancel", "--org", org, campaign_id)
    assert again.exit_code == 1 and again.stderr.strip() == f"error: campaign {campaign_id} is already done"
    bad_stage = await cli(cli_env, "campaign", "start", "--org", org, "--agent", "Sales", "--pipeline", "Sales",
                          "--stage", "Nope", "--text", "hi")
    assert bad_stage.exit_code == 1 and bad_stage.stderr.startswith("error: unknown stage 'Nope'")
    assert "Traceback" not in bad_stage.output + bad_stage.stderr
    no_text = await cli(cli_env, "campaign", "start", "--org", org, "--agent", "Sales", "--pipeline", "Sales",
                        "--stage", "Qualified")
    assert no_text.exit_code == 2 and "exactly one of --text or --template-file" in no_text.output
    ghost = await cli(cli_env, "campaign", "start", "--org", org, "--agent", "Ghost", "--pipeline", "Sales",
                      "--stage", "Qualified", "--text", "hi")
    assert ghost.exit_code == 1 and ghost.stderr.strip() == "error: unknown agent 'Ghost' in this organisation"
    unknown = await cli(cli_env, "campaign", "status", "--org", org, "cmp_nope")
    assert unknown.exit_code == 1 and "not found" in unknown.stderr


async def test_start_hands_over_to_a_worker_then_cancel(shop, cli_env, redis_client, tmp_path):
    add_lead(shop.fake_acc, "Ivan")
    template = tmp_path / "message.txt"
    template.write_text("Здравствуйте, {name|друзья}! Скидка 10% до пятницы.", encoding="utf-8")
    started = await cli(cli_env, "campaign", "start", "--org", shop.org_id, "--agent", "Sales", "--pipeline", "3001",
                        "--stage", "4002", "--template-file", str(template))
    assert started.exit_code == 0, started.stderr
    campaign_id = started.output.strip()
    queued = [json.loads(raw) for raw in await redis_client.lrange("kommo", 0, -1)]
    assert any(m["headers"]["task"] == "campaigns.run"
               and json.loads(base64.b64decode(m["body"]))[0] == [shop.org_id, campaign_id] for m in queued)
    cancelled = await cli(cli_env, "campaign", "cancel", "--org", shop.org_id, campaign_id)
    assert cancelled.exit_code == 0 and cancelled.output.startswith(f"cancelled: {campaign_id} after 0 sent")
    campaign = await shop.services.storage.campaigns.get(shop.org_id, campaign_id)
    assert campaign.status == "cancelled" and campaign.template.startswith("Здравствуйте")


async def test_conversation_and_notification_commands(shop, cli_env):
    org, storage = shop.org_id, shop.services.storage
    lead = add_lead(shop.fake_acc, "Ivan")
    conv = await add_conversation(storage, org, lead, origin="telegram", last_customer_at=utcnow())
    listed = await cli(cli_env, "conversation", "list", "--org", org)
    assert listed.exit_code == 0 and conv.id in listed.output and "bot_active" in listed.output
    paused = await cli(cli_env, "conversation", "pause", "--org", org, conv.id)
    assert paused.exit_code == 0 and paused.output.strip() == f"{conv.id}: paused"
    assert (await storage.conversations.get(org, conv.id)).state == ConversationState.PAUSED
    only_paused = await cli(cli_env, "conversation", "list", "--org", org, "--state", "paused")
    assert conv.id in only_paused.output
    resumed = await cli(cli_env, "conversation", "resume", "--org", org, conv.id)
    assert resumed.exit_code == 0 and (await storage.conversations.get(org, conv.id)).state == ConversationState.BOT_ACTIVE
    missing = await cli(cli_env, "conversation", "resume", "--org", org, "conv_nope")
    assert missing.exit_code == 1 and "not found" in missing.stderr

    note_id = await storage.notifications.publish(org, "reply_failed", lead_id=lead, error="refused")
    pending = await cli(cli_env, "notifications", "list", "--org", org)
    assert pending.exit_code == 0 and note_id in pending.output and "reply_failed" in pending.output
    as_json = await cli(cli_env, "notifications", "list", "--org", org, "--json")
    assert json.loads(as_json.output.splitlines()[0])["params"]["error"] == "refused"
    acked = await cli(cli_env, "notifications", "ack", "--org", org, note_id)
    assert acked.exit_code == 0 and await storage.notifications.pending(org) == []
    twice = await cli(cli_env, "notifications", "ack", "--org", org, note_id)
    assert twice.exit_code == 1 and "no pending notification" in twice.stderr


async def test_a_real_worker_runs_the_campaign_in_batches(shop, cli_env, redis_client, tmp_path):
    """`start` without --wait: a real Celery worker (subprocess) runs batch after batch, each
    task re-enqueueing the next, until every lead has exactly one message."""

    leads = [add_lead(shop.fake_acc, f"W{i} Client") for i in range(30)]  # two batches of 25
    root = Path(__file__).resolve().parents[2]
    env = {**{k: v for k, v in os.environ.items()
              if not k.startswith(("MONGO_", "REDIS_", "QDRANT_", "LLM_", "KOMMO_", "SECRETS_", "WORKER_"))},
           **cli_env, "PYTHONPATH": str(root), "DATA_DIR": str(tmp_path / "worker"),
           "KOMMO_AGENT_HOME": str(tmp_path / "home")}  # never the user's home
    log = open(tmp_path / "worker.log", "wb")
    worker = subprocess.Popen([sys.executable, "-m", "cli", "worker", "-c", "1", "-Q", "kommo"], env=env,
                              cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        started = await cli(cli_env, "campaign", "start", "--org", shop.org_id, "--agent", "Sales",
                            "--pipeline", "Sales", "--stage", "Qualified", "--text", "Hi {first_name}!")
        assert started.exit_code == 0, started.stderr
        campaign_id = started.output.strip()
        deadline = time.monotonic() + 90
        campaign = None
        while time.monotonic() < deadline:
            campaign = await shop.services.storage.campaigns.get(shop.org_id, campaign_id)
            if campaign.status == "done":
                break
            await asyncio.sleep(0.5)
        assert campaign is not None and campaign.status == "done", (tmp_path / "worker.log").read_text()[-3000:]
        assert campaign.sent == 30
        assert [len(drafts(shop.fake_acc, x)) for x in leads] == [1] * 30
        assert shop.fake.rate_limited == 0 and shop.fake.max_in_window(shop.fake_acc.id) <= 7
    finally:
        worker.terminate()
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()
