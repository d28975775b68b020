"""`kommo-agent chat` on a fresh installation without `up`: it seeds the demo shop, indexes its
knowledge in this process, and answers as the console's test chat does (dry run, sources, tokens)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from core.storage.embedded import free_port

ROOT = Path(__file__).resolve().parents[2]
CLEARED = ("MONGO_", "REDIS_", "QDRANT_", "LLM_", "TELEGRAM_", "SECRETS_", "WEB_", "KOMMO_", "DATA_DIR", "KNOWLEDGE_")


def test_chat_seeds_the_demo_and_answers_from_its_knowledge(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(CLEARED)}
    env.update(PYTHONPATH=str(ROOT), KOMMO_AGENT_HOME=str(tmp_path / "home"), MONGO_EMBEDDED_PORT=str(free_port()),
               REDIS_EMBEDDED_PORT=str(free_port()), LLM_API_KEY="", KNOWLEDGE_CROSS_LINGUAL="false")
    chat = subprocess.run([sys.executable, "-m", "cli", "chat", "--json"], cwd=tmp_path, env=env, timeout=600,
                          input="Сколько стоит доставка по Москве?\n\n/stop\nnever asked\n", capture_output=True,
                          text=True)
    assert chat.returncode == 0, chat.stderr
    assert "Demo shop created" in chat.stderr and "Traceback" not in chat.stderr
    (answer,) = [json.loads(line) for line in chat.stdout.splitlines()]  # one question; /stop ended it
    assert "1 500" in answer["reply_text"] and answer["mode"] == "extractive"
    assert any(s["title"] == "ru-delivery.md" and "1 500" in s["quote"] for s in answer["sources"])
    assert answer["question"] == "Сколько стоит доставка по Москве?"
    # A second run finds the demo there: no second shop, and an unknown agent is an error.
    again = subprocess.run([sys.executable, "-m", "cli", "chat", "--agent", "Nobody"], cwd=tmp_path, env=env,
                           timeout=300, input="", capture_output=True, text=True)
    assert again.returncode == 1 and "Nobody" in again.stderr and "Demo shop created" not in again.stderr
