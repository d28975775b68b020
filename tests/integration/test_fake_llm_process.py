"""The fake LLM as a separate process (how engine tests and benchmarks use it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from openai import AsyncOpenAI

ROOT = Path(__file__).resolve().parents[2]


async def test_standalone_fake_llm_default_script():
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.llm", "--port", "0"], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    try:
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")
        client = AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0)
        tools = [{"type": "function", "function": {"name": n, "parameters": {"type": "object", "properties": {}}}}
                 for n in ("handoff_to_human", "move_lead_stage")]
        out = await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hello"}])
        assert out.choices[0].message.content == "OK: hello" and out.usage.prompt_tokens > 0
        out = await client.chat.completions.create(model="m", tools=tools, messages=[
            {"role": "user", "content": "<<<CUSTOMER_MESSAGE id=1>>>\nplease #move:100:11\n<<<END CUSTOMER_MESSAGE id=1>>>"}])
        call = out.choices[0].message.tool_calls[0]
        assert call.function.name == "move_lead_stage" and '"status_id": 11' in call.function.arguments
        emb = await client.embeddings.create(model="e", input=["a", "b"])
        assert len(emb.data) == 2 and len(emb.data[0].embedding) == 384
        models = await client.models.list()
        assert "fake-model" in [m.id for m in models.data]
        await client.close()
    finally:
        proc.terminate()
        proc.wait(10)
