"""KommoActions against the fake Kommo: every reply mode, the journal on redelivery, dry run,
catalog validation, multi-value contact fields."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.clock import utcnow
from core.kommo.delivery.replies import DRAFT_PREFIX
from core.kommo.errors import ActionInProgress, DeliverySetupBroken, KommoValidationError
from core.models.agent import DeliveryMode
from core.models.events import ActionState
from core.models.kommo import KommoStage


def lead_of(fake_acc) -> int:
    return next(iter(fake_acc.leads))


async def test_note_draft_reply_and_redelivery_sends_once(kommo, connected, core_services):
    org, account, fake_acc = connected
    lead = lead_of(fake_acc)
    first = await kommo.actions.send_reply(org.id, lead_id=lead, text="Добрый день! Цена 100 ₽.",
                                           mode=DeliveryMode.NOTE_DRAFT, idempotency_key="reply:m1")
    assert first.state == ActionState.SENT and first.result["note_id"]
    again = await kommo.actions.send_reply(org.id, lead_id=lead, text="Добрый день! Цена 100 ₽.",
                                           mode=DeliveryMode.NOTE_DRAFT, idempotency_key="reply:m1")
    assert again.id == first.id and again.state == ActionState.SENT
    assert [n["params"]["text"] for n in fake_acc.notes] == [DRAFT_PREFIX + "Добрый день! Цена 100 ₽."]


async def test_crashed_sending_note_is_found_in_kommo_not_resent(kommo, connected, core_services):
    org, account, fake_acc = connected
    lead = lead_of(fake_acc)
    await kommo.actions.send_reply(org.id, lead_id=lead, text="Ответ", mode=DeliveryMode.NOTE_DRAFT,
                                   idempotency_key="reply:m2")
    # the worker crashed after Kommo stored the note but before the journal said SENT
    await core_services.storage.actions.collection.update_one({"idempotency_key": "reply:m2"},
                                                              {"$set": {"state": "sending"}})
    rec = await kommo.actions.send_reply(org.id, lead_id=lead, text="Ответ", mode=DeliveryMode.NOTE_DRAFT,
                                         idempotency_key="reply:m2")
    assert rec.state == ActionState.SENT and rec.result.get("recovered") is True
    assert len(fake_acc.notes) == 1


async def test_fresh_sending_salesbot_reply_is_not_resent_until_stale(kommo, connected, core_services, fake_kommo):
    org, account, fake_acc = connected
    return_url = fake_kommo.open_continue(fake_acc)
    await core_services.storage.actions.collection.insert_one({
        "_id": "act_x", "org_id": org.id, "idempotency_key": "reply:m3", "kind": "reply.salesbot", "params": {},
        "state": "sending", "dry_run": False, "result": {}, "created_at": utcnow(), "updated_at": utcnow()})
    with pytest.raises(ActionInProgress):
        await kommo.actions.send_reply(org.id, lead_id=1, text="Hi", mode=DeliveryMode.SALESBOT,
                                       idempotency_key="reply:m3", context={"return_url": return_url})
    await core_services.storage.actions.collection.update_one(
        {"_id": "act_x"}, {"$set": {"updated_at": utcnow() - timedelta(minutes=10)}})
    rec = await kommo.actions.send_reply(org.id, lead_id=1, text="Hi", mode=DeliveryMode.SALESBOT,
                                         idempotency_key="reply:m3", context={"return_url": return_url})
    assert rec.state == ActionState.SENT
    assert [c["state"] for c in fake_acc.continues.values()] == ["continued"]


async def test_salesbot_continue_carries_full_reply(kommo, connected, fake_kommo):
    org, account, fake_acc = connected
    long_text = "Здравствуйте! " + "Подробный ответ. " * 20
    return_url = fake_kommo.open_continue(fake_acc)
    rec = await kommo.actions.send_reply(org.id, lead_id=lead_of(fake_acc), text=long_text,
                                         mode=DeliveryMode.SALESBOT, idempotency_key="reply:sb",
                                         context={"return_url": return_url, "show": True, "goto_step": 3})
    assert rec.state == ActionState.SENT
    (cont,) = fake_acc.continues.values()
    # Over the 80-character `show` cap: the whole reply in data, for the bot's "send message" step.
    assert cont["body"]["data"]["reply"] == long_text
    (goto,) = cont["body"]["execute_handlers"]
    assert goto["handler"] == "goto" and goto["params"]["step"] == 3
    short_url = fake_kommo.open_continue(fake_acc)
    await kommo.actions.send_reply(org.id, lead_id=lead_of(fake_acc), text="Да, доставим завтра.",
                                   mode=DeliveryMode.SALESBOT, idempotency_key="reply:sb2",
                                   context={"return_url": short_url})
    short = fake_acc.continues[short_url.rsplit("/", 1)[-1]]["body"]
    assert short["execute_handlers"] == [{"handler": "show", "params": {"type": "text",
                                                                        "value": "Да, доставим завтра."}}]
    assert short["data"]["reply"] == ""  # shown once, not repeated by the send step


async def test_salesbot_return_url_on_another_host_is_refused(kommo, connected, fake_kommo):
    org, account, fake_acc = connected
    rec = await kommo.actions.send_reply(org.id, lead_id=1, text="x", mode=DeliveryMode.SALESBOT,
                                         idempotency_key="reply:evil",
                                         context={"return_url": "https://evil.example/api/v4/salesbot/1/continue/c1"})
    assert rec.state == ActionState.REFUSED and "host" in rec.error
    assert not any(r[2].startswith("/api/v4/salesbot") for r in fake_kommo.requests)


async def test_salesbot_run_writes_field_then_runs_bot(kommo, connected, core_services):
    org, account, fake_acc = connected
    lead = lead_of(fake_acc)
    with pytest.raises(DeliverySetupBroken, match="reply field and bot id"):  # not set up: nothing journaled
        await kommo.actions.send_reply(org.id, lead_id=lead, text="Ответ", mode=DeliveryMode.SALESBOT_RUN,
                                       idempotency_key="reply:run1")
    assert not fake_acc.bot_runs
    await core_services.storage.kommo_accounts.update(org.id, account.id, {"reply_field_id": 501,
                                                                           "salesbot_bot_id": 77})
    rec = await kommo.actions.send_reply(org.id, lead_id=lead, text="Ответ", mode=DeliveryMode.SALESBOT_RUN,
                                         idempotency_key="reply:run1")
    assert rec.state == ActionState.SENT
    (run,) = fake_acc.bot_runs
    assert run["bot_id"] == 77 and run["entity_id"] == lead
    assert run["lead_fields"] == [{"field_id": 501, "values": [{"value": "Ответ"}]}]  # field written first


async def test_chats_api_reply_is_signed(kommo, connected, core_services, fake_kommo):
    org, account, fake_acc = connected
    await core_services.storage.kommo_accounts.update(org.id, account.id,
                                                      {"chats_scope_id": fake_kommo.scope_id(fake_acc)})
    rec = await kommo.actions.send_reply(org.id, lead_id=lead_of(fake_acc), text="Привет из канала",
                                         mode=DeliveryMode.CHATS_API, idempotency_key="reply:chat",
                                         context={"conversation_id": "conv-1", "receiver": {"id": "cust-1"}})
    assert rec.state == ActionState.SENT and rec.result["msgid"]
    (msg,) = fake_acc.amojo_messages
    assert msg["payload"]["message"]["text"] == "Привет из канала" and msg["payload"]["conversation_id"] == "conv-1"


async def test_dry_run_records_planned_and_calls_nothing(kommo, connected, fake_kommo, core_services):
    org, account, fake_acc = connected
    lead = lead_of(fake_acc)
    before = len(fake_kommo.requests)
    rec = await kommo.actions.move_lead(org.id, lead, 3001, 4003, "move:dry", dry_run=True)
    task = await kommo.actions.create_task(org.id, lead, "Позвонить", None, utcnow() + timedelta(days=1),
                                           "task:dry", dry_run=True)
    reply = await kommo.actions.send_reply(org.id, lead_id=lead, text="x", mode=DeliveryMode.NOTE_DRAFT,
                                           idempotency_key="reply:dry", dry_run=True)
    assert {rec.state, task.state, reply.state} == {ActionState.PLANNED}
    assert len(fake_kommo.requests) == before and not fake_acc.notes and not fake_acc.tasks
    assert fake_acc.leads[lead]["status_id"] == 4001


async def test_move_lead_validated_against_synced_pipeline(kommo, connected, core_services, fake_kommo):
    org, account, fake_acc = connected
    lead = lead_of(fake_acc)
    moved = await kommo.actions.move_lead(org.id, lead, 3001, 4003, "move:1")
    assert moved.state == ActionState.SENT and fake_acc.leads[lead]["status_id"] == 4003
    assert (await kommo.actions.move_lead(org.id, lead, 3001, 999, "move:2")).state == ActionState.REFUSED
    assert (await kommo.actions.move_lead(org.id, lead, 3001, 4002, "move:3",
                                          allowed_stages=[(3001, 4003)])).state == ActionState.REFUSED
    # the stage is deleted in Kommo; after sync it is gone and cannot be chosen
    fake_acc.pipelines[0]["_embedded"]["statuses"] = [s for s in fake_acc.pipelines[0]["_embedded"]["statuses"]
                                                      if s["id"] != 4002]
    await kommo.sync_org(org.id)
    gone = await kommo.actions.move_lead(org.id, lead, 3001, 4002, "move:4")
    assert gone.state == ActionState.REFUSED and "does not exist" in gone.error
    assert fake_acc.leads[lead]["status_id"] == 4003


async def test_kommo_refusal_is_journaled_failed(kommo, connected, core_services):
    org, account, fake_acc = connected
    catalog = core_services.storage.kommo_catalog  # our catalog says fine, Kommo disagrees
    pipelines = await catalog.pipelines(org.id)
    pipelines[0].statuses.append(KommoStage(id=5555, name="Ghost", pipeline_id=3001))
    await catalog.replace_pipelines(org.id, pipelines)
    with pytest.raises(KommoValidationError):
        await kommo.actions.move_lead(org.id, lead_of(fake_acc), 3001, 5555, "move:ghost")
    rec = await core_services.storage.actions.by_key(org.id, "move:ghost")
    assert rec.state == ActionState.FAILED and "400" in rec.error


async def test_create_task_and_redelivery_finds_it(kommo, connected, core_services):
    org, account, fake_acc = connected
    lead = lead_of(fake_acc)
    manager = fake_acc.users[1]["id"]
    deadline = utcnow() + timedelta(hours=4)
    rec = await kommo.actions.create_task(org.id, lead, "Перезвонить клиенту", manager, deadline, "task:1")
    assert rec.state == ActionState.SENT
    (task,) = fake_acc.tasks
    assert task["responsible_user_id"] == manager and task["complete_till"] == int(deadline.timestamp())
    await core_services.storage.actions.collection.update_one({"idempotency_key": "task:1"},
                                                              {"$set": {"state": "sending"}})
    again = await kommo.actions.create_task(org.id, lead, "Перезвонить клиенту", manager, deadline, "task:1")
    assert again.state == ActionState.SENT and len(fake_acc.tasks) == 1
    bad_user = await kommo.actions.create_task(org.id, lead, "x", 12345, deadline, "task:2")
    past = await kommo.actions.create_task(org.id, lead, "x", manager, utcnow() - timedelta(hours=1), "task:3")
    assert bad_user.state == past.state == ActionState.REFUSED and len(fake_acc.tasks) == 1


async def test_fields_lead_and_multi_value_contact(kommo, connected):
    org, account, fake_acc = connected
    lead = lead_of(fake_acc)
    contact_id = next(iter(fake_acc.contacts))
    rec = await kommo.actions.update_lead_field(org.id, lead, 502, 15000, "field:1")
    assert rec.state == ActionState.SENT
    assert {"field_id": 502, "values": [{"value": 15000}]} in fake_acc.leads[lead]["custom_fields_values"]
    assert (await kommo.actions.update_lead_field(org.id, lead, 9999, 1, "field:2")).state == ActionState.REFUSED
    await kommo.actions.update_contact_field(org.id, contact_id, 601, "+79990000002", "phone:1", enum_code="MOB")
    phones = next(f for f in fake_acc.contacts[contact_id]["custom_fields_values"] if f["field_id"] == 601)
    assert [v["value"] for v in phones["values"]] == ["+79990000001", "+79990000002"]  # the old one kept
    await kommo.actions.update_contact_field(org.id, contact_id, 603, "Казань", "city:1")
    city = next(f for f in fake_acc.contacts[contact_id]["custom_fields_values"] if f["field_id"] == 603)
    assert city["values"] == [{"value": "Казань"}]


async def test_add_note_journaled(kommo, connected, core_services):
    org, account, fake_acc = connected
    rec = await kommo.actions.add_note(org.id, lead_of(fake_acc), "Клиент просит КП", "note:1",
                                       conversation_id="conv-9", agent_id="ag-1")
    assert rec.state == ActionState.SENT and rec.conversation_id == "conv-9" and rec.agent_id == "ag-1"
    await kommo.actions.add_note(org.id, lead_of(fake_acc), "Клиент просит КП", "note:1")
    assert len(fake_acc.notes) == 1
