"""The demo seed: once per installation, only on an empty one, and its knowledge answers."""

from __future__ import annotations

from core.ai.answer.runtime import AgentRuntime
from core.demo.seed import AGENT_NAME, seed_demo
from tests.integration.knowledge_helpers import knowledge_stack


async def test_demo_is_seeded_once_and_answers_from_its_documents(storage, tmp_path):
    ingestion, retriever, _embedder, _store = await knowledge_stack(storage, tmp_path, cross_lingual=False)
    seeded = await seed_demo(storage, ingestion)
    assert seeded is not None and len(seeded.source_ids) == 8  # 3 documents and the FAQ, in ru and en
    assert await seed_demo(storage, ingestion) is None  # a second start seeds nothing
    for source_id in seeded.source_ids:
        done = await ingestion.index_source(seeded.org_id, source_id)
        assert done.status == "ready", (done.title, done.error)
    agent = await storage.agents.get(seeded.org_id, seeded.agent_id)
    assert agent.name == AGENT_NAME
    runtime = AgentRuntime(retriever=retriever, catalog=storage.kommo_catalog, llm=None)
    result = await runtime.run_turn(seeded.org_id, agent, customer_text="Сколько стоит доставка по Москве?",
                                    conversation=None, history=[], lead_facts={}, dry_run=True, turn_id="t1")
    assert "1 500" in result.reply_text and not result.handoff
    result = await runtime.run_turn(seeded.org_id, agent, customer_text="How long is the mattress warranty?",
                                    conversation=None, history=[], lead_facts={}, dry_run=True, turn_id="t2")
    assert "24 months" in result.reply_text


async def test_an_installation_with_organisations_gets_no_demo(storage, tmp_path):
    await storage.orgs.create("A real shop")
    ingestion, *_ = await knowledge_stack(storage, tmp_path, cross_lingual=False)
    assert await seed_demo(storage, ingestion) is None
    assert [o.name for o in await storage.orgs.list_all()] == ["A real shop"]
