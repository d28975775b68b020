"""`doctor`: each part checked against real servers and the fakes, problems named with a fix,
and the command's exit status (a real subprocess) non-zero only on a problem."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from pydantic import SecretStr

from core import orgs
from core.config import LLMSettings, MongoSettings, RedisSettings, Settings, TelegramSettings
from core.diagnostics import OK, PROBLEM, WARNING, Doctor
from core.models.agent import DeliveryMode
from core.services import CoreServices
from core.storage.embedded import free_port
from tests.fakes.llm import FakeLLMServer
from tests.fakes.telegram import TOKEN, FakeTelegram
from tests.fixtures.kommo import kommo_settings


def _by_part(findings, part):
    return [f for f in findings if f.part == part]


async def test_doctor_names_each_problem_and_what_to_do(connected, core_services, fake_kommo, storage, mongo_client,
                                                        redis_client, keyring, mongo_url, redis_url):
    org, _account, fake_acc = connected
    await orgs.create_agent(storage, org.id, "Anna")  # note_draft by default: reaches no customer
    runner = await orgs.create_agent(storage, org.id, "Bob")
    await storage.agents.update(org.id, runner.id, {"delivery_mode": DeliveryMode.SALESBOT_RUN})
    async with FakeLLMServer() as llm, FakeTelegram() as telegram:
        settings = Settings(mongo=MongoSettings(url=mongo_url), redis=RedisSettings(url=redis_url),
                            kommo=kommo_settings(fake_kommo),
                            llm=LLMSettings(base_url=llm.base_url, api_key=SecretStr("sk-test"), model="fake-model"),
                            telegram=TelegramSettings(bot_token=SecretStr(TOKEN), api_base_url=telegram.base_url))
        services = CoreServices.over(settings, mongo_client=mongo_client, storage=storage, redis=redis_client,
                                     keyring=keyring, queue=core_services.queue)
        try:
            findings = await Doctor(services).run()
            levels = {f.part: f.level for f in findings if not f.part.startswith("kommo")}
            assert levels == {"settings": OK, "mongo": OK, "redis": OK, "qdrant": OK, "llm": OK, "telegram": OK}
            kommo = _by_part(findings, "kommo Acme")
            details = [(f.level, f.detail) for f in kommo]
            assert (OK, "acme.kommo.com: token ok") in details
            assert any(level == WARNING and "Anna" in d and "customers see nothing" in d for level, d in details)
            bob = next(f for f in kommo if "Bob" in f.detail)
            assert bob.level == PROBLEM and "salesbot_bot_id" in bob.detail and "kommo delivery" in bob.fix
            assert any(level == OK and "webhook registered" in d for level, d in details)

            # A non-admin token cannot read webhooks: a warning that says to check by hand.
            fake_acc.webhooks_forbidden = True
            hook = [f for f in _by_part(await Doctor(services).run(), "kommo Acme") if "webhook" in f.detail][0]
            assert hook.level == WARNING and "by hand" in hook.fix
            # Kommo lost our webhook: a problem.
            fake_acc.webhooks_forbidden, fake_acc.webhooks = False, []
            hook = [f for f in _by_part(await Doctor(services).run(), "kommo Acme") if "webhook" in f.detail][0]
            assert hook.level == PROBLEM and "not registered" in hook.detail

            # A wrong bot token and a model the provider does not list.
            services.settings.telegram.bot_token = SecretStr("123:wrong")
            services.settings.llm.model = "no-such-model"
            findings = await Doctor(services).run()
            assert _by_part(findings, "telegram")[0].level == PROBLEM
            assert "@BotFather" in _by_part(findings, "telegram")[0].fix
            assert _by_part(findings, "llm")[0].level == WARNING
        finally:
            await services.close_areas()


def test_doctor_command_exits_non_zero_on_a_problem(storage, mongo_url, redis_url, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGO_", "REDIS_", "SECRETS_", "LLM_",
                                                                    "TELEGRAM_", "QDRANT_"))}
    env.update(MONGO_URL=mongo_url, MONGO_DATABASE=storage.db.name, REDIS_URL=redis_url, DATA_DIR=str(tmp_path),
               SECRETS_KEYS="k1:" + "A" * 43 + "=", PYTHONPATH=os.getcwd())
    run = [sys.executable, "-m", "cli", "doctor", "--json"]
    healthy = subprocess.run(run, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert healthy.returncode == 0, healthy.stderr  # no LLM key and no bot token are warnings
    assert {f["part"]: f["level"] for f in json.loads(healthy.stdout)}["llm"] == WARNING
    env.update(LLM_API_KEY="sk-x", LLM_BASE_URL=f"http://127.0.0.1:{free_port()}/v1")
    broken = subprocess.run(run, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert broken.returncode == 1
    llm = next(f for f in json.loads(broken.stdout) if f["part"] == "llm")
    assert llm["level"] == PROBLEM and "LLM_BASE_URL" in llm["fix"]
    plain = subprocess.run(run[:-1], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert "fix: check LLM_BASE_URL" in plain.stdout and "Traceback" not in plain.stderr
