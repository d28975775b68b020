"""Issue 14: `update_lead_field` on a select field dropped the option id the tool had resolved,
so Kommo got a bare text value (and refuses one that is not exactly an option's text)."""

from __future__ import annotations

from core.models.agent import AgentAction
from tests.fakes.llm import Reply, ToolCall


async def test_select_field_is_written_with_its_option_id(shop, fake_llm):
    storage = shop.services.storage
    await shop.services.kommo()  # the account is synced: field 504 is a select with options
    await storage.agents.update(shop.org_id, shop.agent.id, {"allowed_actions": [
        AgentAction.REPLY, AgentAction.UPDATE_LEAD_FIELD, AgentAction.HANDOFF_TO_HUMAN],
        "writable_field_ids": [504]})  # an explicit allowlist (issue 17): empty means none
    fake_llm.push(Reply(content="Noted, Kazan it is.",
                        tool_calls=[ToolCall("update_lead_field", {"field_id": 504, "value": "kazan"})]))
    msg = await shop.customer_says("Please deliver to Kazan")
    conv = await shop.conversation()
    assert await shop.engine.run_turn(shop.org_id, conv.id, msg) == "replied"
    field = next(f for f in shop.fake_acc.leads[shop.lead_id]["custom_fields_values"] if f["field_id"] == 504)
    assert field["values"] == [{"value": "Kazan", "enum_id": 41}]
