"""`kommo-agent kommo connect | delivery | status | widget` as an operator runs them (real
subprocesses on the test Mongo, the fake Kommo over HTTP): connect warns that note_draft reaches
nobody; delivery is checked against the live account (a missing bot is refused with the
account's bots named, and nothing is saved; the other refusals are tested in-process in
test_salesbot_delivery.py); `--create-field` makes the reply field; the steps are printed in the
chosen language; status says in words whether each agent reaches customers; the widget archive
and salesbot mode with its integration's secret (stored encrypted)."""

from __future__ import annotations

import asyncio
import os
import sys
import zipfile

from core.models.agent import DeliveryMode
from core.orgs import create_agent

TIMEOUT_S = 120


async def _run(env, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "cli", "kommo", *args, cwd=env["DATA_DIR"],
                                                env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT_S)
    return proc.returncode, out.decode(), err.decode()


def cli_env(storage, mongo_url, redis_url, tmp_path, fake_kommo) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGO_", "REDIS_", "SECRETS_", "KOMMO_"))}
    env.update(MONGO_URL=mongo_url, MONGO_DATABASE=storage.db.name, REDIS_URL=redis_url, DATA_DIR=str(tmp_path),
               SECRETS_KEYS="k1:" + "A" * 43 + "=", PYTHONPATH=os.getcwd(), KOMMO_API_BASE_URL=fake_kommo.base_url,
               KOMMO_PUBLIC_BASE_URL="https://agent.example")
    return env


async def test_delivery_is_checked_live_then_saved_and_status_says_who_reaches_customers(
        storage, mongo_url, redis_url, tmp_path, fake_kommo):
    env = cli_env(storage, mongo_url, redis_url, tmp_path, fake_kommo)
    org = await storage.orgs.create("Acme")
    agent = await create_agent(storage, org.id, "Anna", "Sell sofas.")
    fake_acc = fake_kommo.add_account("acme")
    token_file = tmp_path / "token"
    token_file.write_text(fake_kommo.book.issue_long_lived(fake_acc.id))

    code, out, err = await _run(env, "connect", "--org", org.id, "--subdomain", "acme", "--token-file",
                                str(token_file))
    assert code == 0, err
    assert "Agents whose replies reach no customer: Anna" in err and "kommo delivery" in err

    code, out, err = await _run(env, "status", "--org", org.id)
    assert code == 0, err
    assert "Anna" in out and "note_draft: replies stay internal notes, customers see nothing" in out

    # A bot Kommo does not have: refused by name, with the account's bots listed; nothing saved.
    code, out, err = await _run(env, "delivery", "--org", org.id, "--agent", "Anna", "--mode", "salesbot_run",
                                "--bot-id", "4242", "--field-id", "501")
    assert code == 1 and "Kommo has no Salesbot 4242" in err and "77 AI reply sender" in err, err
    account = await storage.kommo_accounts.for_org(org.id)
    assert account.salesbot_bot_id is None and account.reply_field_id is None
    assert (await storage.agents.get(org.id, agent.id)).delivery_mode == DeliveryMode.NOTE_DRAFT

    # Created field, bot checked, steps printed in Russian.
    code, out, err = await _run(env, "delivery", "--org", org.id, "--agent", agent.id, "--mode", "salesbot_run",
                                "--bot-id", "77", "--create-field", "--lang", "ru")
    assert code == 0, err
    created = fake_acc.custom_fields["leads"][-1]
    assert created["type"] == "textarea" and created["name"] == "AI reply"
    account = await storage.kommo_accounts.for_org(org.id)
    assert (account.salesbot_bot_id, account.reply_field_id) == (77, created["id"])
    assert (await storage.agents.get(org.id, agent.id)).delivery_mode == DeliveryMode.SALESBOT_RUN
    assert f"{{{{lead.cf.{created['id']}}}}}" in out and "Остановить бота" in out and "add_message" in out

    # Kommo switched the bot off meanwhile: status says so.
    fake_acc.bots[77]["is_active"] = False
    code, out, err = await _run(env, "status", "--org", org.id, "--lang", "es")
    assert "NO llegan" in out and "apagado" in out, out

    # The widget archive for salesbot mode, then salesbot mode with its integration's secret.
    out_zip = tmp_path / "widget.zip"
    code, out, err = await _run(env, "widget", "--org", org.id, "--out", str(out_zip))
    assert code == 0, err
    with zipfile.ZipFile(out_zip) as archive:
        script = archive.read("script.js").decode()
        assert "manifest.json" in archive.namelist()
    hook = await storage.kommo_accounts.for_org(org.id)
    assert "https://agent.example/kommo/salesbot/" in script and hook.hook_token_hash
    secret_file = tmp_path / "widget-secret"
    secret_file.write_text("integration-secret-" + "x" * 40 + "\n")
    code, out, err = await _run(env, "delivery", "--org", org.id, "--mode", "salesbot", "--widget-secret-file",
                                str(secret_file))
    assert code == 0, err
    assert "json.reply" in out and "https://agent.example/kommo/salesbot/" in out
    account = await storage.kommo_accounts.for_org(org.id)
    assert "widget_secret" in account.secrets and "x" * 40 not in account.secrets["widget_secret"]  # encrypted
