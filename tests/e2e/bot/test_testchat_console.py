"""/test through the real dispatcher, the fake Bot API and a real worker: an agent picked, a lead
stage pretended, each message answered by the real runtime in dry run with its sources (title and
quote), tokens and cost and what it would do in Kommo, the typing indicator while waiting, memory
kept until /stop, and nothing written to (or even asked of) the fake Kommo."""

from __future__ import annotations

import itertools

from core.models.agent import AgentAction, StageRule
from core.models.knowledge import SourceStatus
from core.models.kommo import KommoPipeline, KommoStage
from core.orgs import create_agent
from tests.fixtures.telegram import org_with_owner, user

_users = itertools.count(19_100)
DELIVERY = ("Delivery in Madrid takes two working days.\n"
            "Delivery in Madrid costs 15 euros and is free above 300 euros.")


async def seed_pipeline(storage, org_id: str) -> None:
    stages = [KommoStage(id=4001, name="Incoming", pipeline_id=3001, type=1),
              KommoStage(id=4002, name="Qualified", pipeline_id=3001),
              KommoStage(id=4003, name="Meeting booked", pipeline_id=3001)]
    await storage.kommo_catalog.replace_pipelines(org_id, [KommoPipeline(
        _id=f"{org_id}:3001", org_id=org_id, pipeline_id=3001, name="Sales", is_main=True, statuses=stages)])


async def agent_with_knowledge(stack, owner, text: str = DELIVERY, title: str = "Delivery terms"):
    """An org owned by `owner`, its agent, and one ready knowledge source (indexed by the worker)."""
    services = stack.services
    membership = await org_with_owner(services, owner, f"Shop {owner.id}")
    org_id = membership.org.id
    await seed_pipeline(services.storage, org_id)
    agent = await create_agent(services.storage, org_id, "Anna", "Answer from the knowledge.")
    await services.storage.agents.update(org_id, agent.id, {
        "allowed_actions": [AgentAction.REPLY, AgentAction.MOVE_LEAD_STAGE, AgentAction.HANDOFF_TO_HUMAN],
        "stage_rules": [StageRule(pipeline_id=3001, status_id=4003, when="a meeting is agreed").model_dump()]})
    source = await services.knowledge_intake().add_text(org_id, agent.id, title, text)

    async def ready():
        s = await services.storage.knowledge.get(org_id, source.id)
        return s.status == SourceStatus.READY and s
    await stack.until(ready, what="the knowledge source to be indexed")
    return membership, await services.storage.agents.get(org_id, agent.id)


async def test_test_chat_answers_in_dry_run_with_sources_actions_and_cost(console_stack):
    stack, console, fake = console_stack, console_stack.console, console_stack.telegram
    owner = user(next(_users), language_code="en")
    await agent_with_knowledge(stack, owner)
    kommo_before = len(stack.kommo.requests)

    await console.send(owner, "/test")
    await console.click(owner, "Anna")
    assert "Test chat with Anna" in console.text(owner) and "Nothing is written to Kommo" in console.text(owner)
    await console.click(owner, "Pretend to be a lead")
    await console.click(owner, "Sales: Qualified")
    assert "You are a lead at stage «Sales: Qualified»" in console.text(owner)

    typing_before = len(fake.calls_of("sendChatAction", owner.id))
    await console.send(owner, "How much is delivery in Madrid?")
    answer = console.text(owner)
    assert answer.startswith("Delivery in Madrid costs 15 euros"), answer
    assert "📚 Sources:\n• Delivery terms — «Delivery in Madrid takes two working days." in answer
    assert "Tokens: 420 + 36 · $0.0001" in answer  # 420 × 0.15 + 36 × 0.60 per million
    assert "In Kommo I would change nothing." in answer
    typing = fake.calls_of("sendChatAction", owner.id)[typing_before:]
    assert typing and typing[0].params["action"] == "typing"
    assert [b["text"] for b in fake.last(owner.id).buttons()] == ["✏️ Correct this"]
    # The pretended stage reached the runtime as a fact of the lead.
    assert "pipeline_stage: Sales: Qualified" in str(stack.llm.requests[-1]["messages"])

    await console.send(owner, "Then book me a meeting #move:3001:4003")
    answer = console.text(owner)
    assert "In Kommo I would: move the lead to «Meeting booked»" in answer
    # Memory: the second turn's prompt holds the first question and answer.
    prompt = str(stack.llm.requests[-1]["messages"])
    assert "How much is delivery in Madrid?" in prompt and "costs 15 euros" in prompt

    # Not one call to Kommo: dry run writes nothing and reads nothing there.
    assert len(stack.kommo.requests) == kommo_before
    await console.send(owner, "/stop")
    assert "You left the test chat" in fake.chat(owner.id)[-2].text
    assert "What would you like to do?" in console.text(owner)
    llm_calls = len(stack.llm.requests)
    await console.send(owner, "Are you still there?")  # no test chat any more: nobody answers as the agent
    assert len(stack.llm.requests) == llm_calls
    # A new test chat starts with an empty memory.
    await console.send(owner, "/test")
    await console.click(owner, "Anna")
    await console.send(owner, "Hello #nomemory")
    assert "How much is delivery" not in str(stack.llm.requests[-1]["messages"])


async def test_test_chat_refuses_a_forged_agent_and_a_viewer(console_stack):
    stack, console = console_stack, console_stack.console
    alice, bob = user(next(_users), language_code="en"), user(next(_users), language_code="en")
    org_a = await org_with_owner(stack.services, alice, "Org A")
    org_b = await org_with_owner(stack.services, bob, "Org B")
    await create_agent(stack.services.storage, org_a.org.id, "Mine", "A")
    agent_b = await create_agent(stack.services.storage, org_b.org.id, "Theirs", "B")
    await console.send(alice, "/test")
    message, button = console.button(alice, "Mine")
    await console.press(alice, message, button["callback_data"].rsplit(":", 1)[0] + ":" + agent_b.id)
    assert "Not found" in console.text(alice) and "Theirs" not in console.text(alice)
    assert await stack.services.test_chat().session(org_b.org.id, f"tg{alice.id}") is None


async def test_a_correction_changes_the_next_answer_and_is_managed_under_knowledge(console_stack):
    stack, console, fake = console_stack, console_stack.console, console_stack.telegram
    storage = stack.services.storage
    owner = user(next(_users), language_code="en")
    membership, agent = await agent_with_knowledge(stack, owner)
    org_id = membership.org.id
    await console.send(owner, "/test")
    await console.click(owner, "Anna")
    await console.send(owner, "How much is delivery in Madrid?")
    assert console.text(owner).startswith("Delivery in Madrid costs 15 euros")

    await console.click(owner, "Correct this")
    assert "Question: «How much is delivery in Madrid?»" in console.text(owner)
    await console.send(owner, "Delivery in Madrid costs 9 euros since December.")
    assert "Saved" in fake.chat(owner.id)[-2].text
    assert "Test chat with Anna" in console.text(owner)  # back in the chat

    async def corrections_ready():
        found = [s for s in await storage.knowledge.for_agent(org_id, agent.id) if s.options.get("corrections")]
        return found and found[0].status == "ready" and found[0]
    corrections = await stack.until(corrections_ready, what="the correction to be indexed")
    assert corrections.title == "Corrections" and corrections.chunks_total == 1

    await console.send(owner, "What does delivery to Madrid cost?")  # paraphrased
    answer = console.text(owner)
    assert answer.startswith("Delivery in Madrid costs 9 euros since December."), answer
    assert "• Corrections — «How much is delivery in Madrid? Delivery in Madrid costs 9 euros" in answer

    # Listed under /knowledge as its own source; a pair is editable and deletable there.
    await console.send(owner, "/stop")
    await console.send(owner, "/knowledge")
    await console.click(owner, "Anna")
    await console.click(owner, "Corrections")
    assert "Corrections from the chat" in console.text(owner)
    await console.click(owner, "How much is delivery in Madrid?")
    assert "Answer: Delivery in Madrid costs 9 euros since December." in console.text(owner)
    await console.click(owner, "Edit the answer")
    await console.send(owner, "Delivery in Madrid costs 11 euros.")
    assert "Answer: Delivery in Madrid costs 11 euros." in console.text(owner)
    [pair] = (await storage.knowledge.get(org_id, corrections.id)).options["pairs"]
    assert pair["answer"] == "Delivery in Madrid costs 11 euros."
    await console.click(owner, "Delete")
    assert "Delete the correction «How much is delivery in Madrid?»" in console.text(owner)
    await console.click(owner, "Yes, delete")

    async def gone():
        return await storage.knowledge.get(org_id, corrections.id) is None
    await stack.until(gone, what="the emptied corrections source to be deleted")
