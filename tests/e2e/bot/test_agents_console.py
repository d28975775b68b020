"""/agents through the real dispatcher: the whole creation wizard with stages and fields from the
synced catalog, a wizard cancelled midway, a wizard resumed after the bot process restarts, an
old button after a restart, editing one field, enable/disable, delete with confirmation, a
viewer refused, and org A's manager never reaching org B's agent by forged callback data."""

from __future__ import annotations

from core.models.agent import AgentAction, DeliveryMode, LanguagePolicy
from core.models.kommo import KommoField, KommoPipeline, KommoStage
from core.models.org import Role
from core.orgs import create_agent
from tests.fixtures.telegram import add_member, org_with_owner, user


async def seed_catalog(storage, org_id: str) -> None:
    stages = [KommoStage(id=4001, name="Incoming", pipeline_id=3001, type=1),
              KommoStage(id=4002, name="Qualified", pipeline_id=3001),
              KommoStage(id=142, name="Won", pipeline_id=3001)]
    await storage.kommo_catalog.replace_pipelines(org_id, [KommoPipeline(
        _id=f"{org_id}:3001", org_id=org_id, pipeline_id=3001, name="Sales", is_main=True, statuses=stages)])
    await storage.kommo_catalog.replace_fields(org_id, "leads", [
        KommoField(_id=f"{org_id}:leads:502", org_id=org_id, entity="leads", field_id=502, name="Budget",
                   type="numeric")])


async def test_wizard_creates_an_agent_from_every_step(console, console_services):
    owner = user(4001, language_code="en")
    membership = await org_with_owner(console_services, owner, "Acme")
    await seed_catalog(console_services.storage, membership.org.id)
    await console.send(owner, "/agents")
    assert "Acme" in console.text(owner) and "Agents: 0" in console.text(owner)
    await console.click(owner, "New agent")
    await console.send(owner, "   ")  # empty name: explained in the window, no step taken
    assert "cannot be empty" in console.text(owner) and "step 1 of 10" in console.text(owner)
    await console.send(owner, "Sales bot")
    await console.send(owner, "a polite furniture seller")
    await console.send_document(owner, "instructions.txt", b"Offer delivery. Never promise discounts.")
    await console.click(owner, "Always English")
    await console.click(owner, "Default model")
    await console.click(owner, "Sales")
    await console.click(owner, "Qualified")
    await console.click(owner, "Done")
    await console.click(owner, "fill lead fields")
    await console.click(owner, "move leads")
    await console.click(owner, "Done")
    await console.click(owner, "Budget")
    await console.click(owner, "Done")
    await console.click(owner, "Salesbot run")
    await console.click(owner, "1-5 09:00-18:00")
    await console.send(owner, "when the customer asks for a discount")
    assert "Check the new agent" in console.text(owner) and "Sales: Qualified" in console.text(owner)
    await console.click(owner, "Create the agent")
    [agent] = await console_services.storage.agents.list(membership.org.id)
    assert agent.name == "Sales bot" and agent.persona == "a polite furniture seller"
    assert agent.instructions == "Offer delivery. Never promise discounts."
    assert agent.language_policy == LanguagePolicy.FIXED and agent.language == "en" and agent.model is None
    assert agent.pipeline_id == 3001 and agent.stage_ids == [4002]
    assert set(agent.allowed_actions) == {AgentAction.REPLY, AgentAction.HANDOFF_TO_HUMAN,
                                          AgentAction.MOVE_LEAD_STAGE, AgentAction.UPDATE_LEAD_FIELD}
    assert agent.writable_field_ids == [502] and [r.status_id for r in agent.stage_rules] == [4002]
    assert agent.delivery_mode == DeliveryMode.SALESBOT_RUN
    assert agent.working_hours.days[0] == ("09:00", "18:00") and 5 not in agent.working_hours.days
    assert agent.handoff_rules == "when the customer asks for a discount"
    assert "🤖 Sales bot" in console.text(owner)  # back on the agent's card
    # Every button the console sent fits Telegram's 64-byte callback limit (the fake enforces it).
    assert all(len(b.get("callback_data", "").encode()) <= 64
               for m in console.fake.messages.values() for b in m.buttons())

    # Edit one field, then turn it off, then delete with confirmation.
    await console.click(owner, "Edit")
    await console.click(owner, "Name")
    await console.send(owner, "Sales bot 2")
    assert (await console_services.storage.agents.get(membership.org.id, agent.id)).name == "Sales bot 2"
    assert "🤖 Sales bot 2" in console.text(owner)
    await console.click(owner, "Turn off")
    assert not (await console_services.storage.agents.get(membership.org.id, agent.id)).enabled
    await console.click(owner, "Delete")
    assert "Delete the agent Sales bot 2?" in console.text(owner)
    assert await console_services.storage.agents.get(membership.org.id, agent.id) is not None
    await console.click(owner, "Yes, delete")
    assert await console_services.storage.agents.get(membership.org.id, agent.id) is None


async def test_wizard_cancelled_midway_creates_nothing(console, console_services):
    owner = user(4002, language_code="en")
    membership = await org_with_owner(console_services, owner)
    await console.send(owner, "/agents")
    await console.click(owner, "New agent")
    await console.send(owner, "Half done")
    await console.click(owner, "Cancel")
    assert "What would you like to do?" in console.text(owner)
    assert await console_services.storage.agents.list(membership.org.id) == []
    # /cancel from any step does the same.
    await console.send(owner, "/agents")
    await console.click(owner, "New agent")
    await console.send(owner, "/cancel")
    assert "Cancelled." in console.fake.chat(owner.id)[-2].text
    await console.send(owner, "Not a name any more")  # no wizard is waiting for it
    assert await console_services.storage.agents.list(membership.org.id) == []


async def test_wizard_resumes_after_restart_and_old_buttons_restart_the_menu(console, console_services):
    owner = user(4003, language_code="en")
    await org_with_owner(console_services, owner)
    await console.send(owner, "/agents")
    await console.click(owner, "New agent")
    await console.send(owner, "Resumed bot")
    old_message, old_button = console.button(owner, "Back")
    await console.restart()  # a new Bot and Dispatcher, the same Redis
    await console.send(owner, "a calm consultant")
    assert "Step 3 of 10" in console.text(owner)
    await console.send(owner, "Be brief.")
    assert "Step 4 of 10" in console.text(owner)
    # The dialog state is lost (a renamed state, or Redis was emptied): an old button restarts
    # the menu politely instead of failing.
    await console.restart()
    for key in await console_services.redis.keys("fsm:*aiogd:context:*"):
        await console_services.redis.delete(key)
    message, button = console.button(owner, "Always English")
    await console.press(owner, message, button["callback_data"])
    assert "That button is from an old screen" in console.alerts()[-1]
    assert "What would you like to do?" in console.text(owner)
    assert not [c for c in console.fake.calls if "error" in (c.params.get("text") or "").lower()]


async def test_viewer_sees_agents_but_cannot_change_them(console, console_services):
    owner, viewer = user(4004), user(4005, language_code="en")
    membership = await org_with_owner(console_services, owner)
    agent = await create_agent(console_services.storage, membership.org.id, "Seller", "Sell.")
    await add_member(console_services, membership.org.id, viewer, Role.VIEWER)
    await console.send(viewer, "/agents")
    assert "Agents: 1" in console.text(viewer)
    message, _ = console.button(viewer, "Seller")
    assert not [b for b in console.fake.last(viewer.id).buttons() if "New agent" in b["text"]]
    await console.click(viewer, "Seller")
    buttons = [b["text"] for b in console.fake.last(viewer.id).buttons()]
    assert not any(t for t in buttons if "Edit" in t or "Delete" in t or "Turn off" in t)
    # The hidden "New agent" button pressed by hand (its callback data forged): refused politely.
    await console.click(viewer, "Back")
    list_message, seller = console.button(viewer, "Seller")
    intent = seller["callback_data"].split("\x1d", 1)[0]
    await console.press(viewer, list_message, f"{intent}\x1dag_new")
    assert "Your role cannot do this" in console.alerts()[-1]
    await console.send(viewer, "New name")  # no wizard is waiting
    assert [a.name for a in await console_services.storage.agents.list(membership.org.id)] == ["Seller"]
    assert (await console_services.storage.agents.get(membership.org.id, agent.id)).enabled


async def test_forged_callback_never_reaches_another_org(console, console_services):
    alice, bob = user(4006, language_code="en"), user(4007, language_code="en")
    org_a = await org_with_owner(console_services, alice, "Org A")
    org_b = await org_with_owner(console_services, bob, "Org B")
    agent_b = await create_agent(console_services.storage, org_b.org.id, "Secret agent", "B's instructions")
    await create_agent(console_services.storage, org_a.org.id, "Mine", "A's instructions")
    await console.send(alice, "/agents")
    message, button = console.button(alice, "Mine")
    forged = button["callback_data"].rsplit(":", 1)[0] + ":" + agent_b.id
    await console.press(alice, message, forged)
    shown = " ".join(m.text or "" for m in console.fake.chat(alice.id)) + " ".join(console.alerts())
    assert "Secret agent" not in shown and "B's instructions" not in shown
    assert "Not found" in console.alerts()[-1]
    # Nor by switching to org B's id in /org.
    await console.send(alice, "/org")
    message, button = console.button(alice, "Org A")
    await console.press(alice, message, button["callback_data"].rsplit(":", 1)[0] + ":" + org_b.org.id)
    assert "not a member" in console.text(alice)
    profile = await console_services.storage.db["console_profiles"].find_one({"_id": f"tg:{alice.id}"})
    assert profile["active_org_id"] == org_a.org.id
    assert (await console_services.storage.agents.get(org_b.org.id, agent_b.id)).enabled
