"""Issue 17: `update_lead_field` accepted any synced field with any value, and every lead field
went into the prompt. An agent now writes only the fields of its allowlist (empty: none), each
value checked against the field's type, options and a length cap (by the tool validator and
again right before the write), and only the fields it may read or write reach its prompt."""

from __future__ import annotations

import json

import pytest

from core.models.agent import AgentAction
from core.models.events import ActionState
from tests.fakes.llm import Reply, ToolCall

ACTIONS = [AgentAction.REPLY, AgentAction.UPDATE_LEAD_FIELD, AgentAction.HANDOFF_TO_HUMAN]


async def _configure(shop, **changes) -> None:
    await shop.services.kommo()  # synced: 501 textarea, 502 numeric, 504 select (Kazan, Moscow)
    await shop.services.storage.agents.update(shop.org_id, shop.agent.id, {"allowed_actions": ACTIONS, **changes})


def _field(shop, field_id: int):
    return next((f for f in shop.fake_acc.leads[shop.lead_id]["custom_fields_values"] if f["field_id"] == field_id),
                None)


async def _turn(shop, fake_llm, calls: list[ToolCall], text: str = "Here is my info") -> list[dict]:
    fake_llm.push(Reply(content="Thank you, noted.", tool_calls=calls))
    msg = await shop.customer_says(text)
    conv = await shop.conversation()
    assert await shop.engine.run_turn(shop.org_id, conv.id, msg) == "replied"
    plan = await shop.services.storage.turns.get(shop.org_id, f"turn_{msg}")
    return plan.actions


async def test_an_empty_allowlist_writes_nothing(shop, fake_llm):
    await _configure(shop, writable_field_ids=[])
    await _turn(shop, fake_llm, [ToolCall("update_lead_field", {"field_id": 502, "value": 15000})])
    assert _field(shop, 502) is None
    # The model was not even offered a field to write.
    tools = {t["function"]["name"]: t for t in fake_llm.requests[-1]["tools"]}
    assert "502" not in json.dumps(tools.get("update_lead_field", {}))


async def test_only_allowlisted_fields_with_fitting_values_are_written(shop, fake_llm):
    await _configure(shop, writable_field_ids=[502, 501])
    await _turn(shop, fake_llm, [
        ToolCall("update_lead_field", {"field_id": 504, "value": "Kazan"}),  # real field, not allowlisted
        ToolCall("update_lead_field", {"field_id": 502, "value": "a lot"}),  # numeric field, not a number
        ToolCall("update_lead_field", {"field_id": 501, "value": "x" * 4001}),  # textarea over its cap
        ToolCall("update_lead_field", {"field_id": 502, "value": "15 000"}),  # a number, written as one
    ])
    assert _field(shop, 504) is None and _field(shop, 501) is None
    assert _field(shop, 502)["values"] == [{"value": 15000}]
    records = await shop.services.storage.actions.list(shop.org_id, {"kind": "update_lead_field"})
    assert len(records) == 1 and records[0].state == ActionState.SENT


@pytest.mark.parametrize("field_id,value,allowed,reason", [
    (502, 100, [501], "not among the fields this agent may write"),  # allowlist changed since the plan
    (502, "abc", None, "takes a number"),
    (502, 10**18, None, "within"),
    (504, "Paris", None, "not an option"),
    (501, "y" * 5000, None, "at most 4000 characters"),
])
async def test_the_kommo_side_checks_again_right_before_writing(kommo, connected, field_id, value, allowed, reason):
    org, _account, fake_acc = connected
    lead = next(iter(fake_acc.leads))
    record = await kommo.actions.update_lead_field(org.id, lead, field_id, value, f"w:{field_id}:{reason}",
                                                   allowed_field_ids=allowed)
    assert record.state == ActionState.REFUSED and reason in record.error
    assert all(f["field_id"] != field_id for f in fake_acc.leads[lead]["custom_fields_values"])


async def test_only_readable_and_writable_fields_reach_the_prompt(shop, fake_llm):
    await _configure(shop, writable_field_ids=[502], readable_field_ids=[504])
    shop.fake_acc.leads[shop.lead_id]["custom_fields_values"] = [
        {"field_id": 501, "field_name": "AI reply", "values": [{"value": "INTERNAL-MARGIN-NOTE-31%"}]},
        {"field_id": 502, "field_name": "Budget", "values": [{"value": "90000"}]},
        {"field_id": 504, "field_name": "Delivery city", "values": [{"value": "Moscow", "enum_id": 42}]},
    ]
    await _turn(shop, fake_llm, [], text="What do you know about my order?")
    prompt = json.dumps(fake_llm.requests[-1]["messages"], ensure_ascii=False)
    assert "Budget: 90000" in prompt and "Delivery city: Moscow" in prompt
    assert "INTERNAL-MARGIN-NOTE" not in prompt and "AI reply" not in prompt
