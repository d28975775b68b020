import asyncio
import uuid
from datetime import timedelta

import pytest
from pymongo import AsyncMongoClient, monitoring

from core.clock import utcnow
from core.errors import AlreadyExists, InvalidInput, KommoAgentError, NotFound
from core.kommo.actions.journal import run_journaled
from core.models.agent import Agent, WorkingHours
from core.models.conversation import Message
from core.models.events import ActionRecord, ActionState, WebhookEvent
from core.models.org import Role
from core.storage import Storage
from core.storage.indexes import ensure_indexes


async def test_operator_unique_per_org_and_tenant_isolation(storage):
    a = await storage.orgs.create("A")
    b = await storage.orgs.create("B")
    await storage.operators.add(a.id, 42, Role.OWNER)
    with pytest.raises(AlreadyExists):
        await storage.operators.add(a.id, 42, Role.EDITOR)
    await storage.operators.add(b.id, 42, Role.VIEWER)  # same user, other org: allowed
    agent = await storage.agents.insert(a.id, Agent(_id="ag1", org_id=a.id, name="Sales"))
    assert await storage.agents.get(b.id, agent.id) is None  # guessed id from another tenant
    assert (await storage.agents.get(a.id, agent.id)).name == "Sales"
    assert await storage.agents.delete(b.id, agent.id) is False
    assert await storage.agents.update(b.id, agent.id, {"name": "X"}) is None
    with pytest.raises(InvalidInput):
        await storage.agents.get("", agent.id)
    members = await storage.operators.memberships(42)
    assert {m.org_id for m in members} == {a.id, b.id}


async def test_invite_is_single_use(storage):
    org = await storage.orgs.create("A")
    inv = await storage.invites.create(org.id, Role.EDITOR, None, timedelta(hours=1))
    assert (await storage.invites.claim(org.id, inv.token, 1)).used_by == 1
    assert await storage.invites.claim(org.id, inv.token, 2) is None
    expired = await storage.invites.create(org.id, Role.EDITOR, None, timedelta(seconds=-1))
    assert await storage.invites.claim(org.id, expired.token, 3) is None


async def test_webhook_batch_dedupe(storage):
    org = await storage.orgs.create("A")

    def mk(i: int, key: str) -> WebhookEvent:
        return WebhookEvent(_id=f"ev{i}", org_id=org.id, kind="message.add", dedupe_key=key, raw_body="x")

    assert len(await storage.events.insert_new([mk(1, "a"), mk(2, "b")])) == 2
    fresh = await storage.events.insert_new([mk(3, "a"), mk(4, "c"), mk(5, "b")])
    assert [e.id for e in fresh] == ["ev4"]
    assert await storage.events.count(org.id) == 3


async def test_action_journal_claims_once(storage):
    org = await storage.orgs.create("A")
    rec = ActionRecord(_id="act1", org_id=org.id, idempotency_key="reply:m1", kind="reply", state=ActionState.SENDING)
    first, created = await storage.actions.begin(org.id, rec)
    assert created and first.state == ActionState.SENDING
    await storage.actions.finish(org.id, first.id, ActionState.SENT)
    again, created2 = await storage.actions.begin(org.id, rec.model_copy(update={"id": "act2"}))
    assert not created2 and again.state == ActionState.SENT and again.id == "act1"


async def test_gridfs_owner_checked(storage):
    a = await storage.orgs.create("A")
    b = await storage.orgs.create("B")
    fid = await storage.files.put(a.id, "price.csv", b"a,b\n1,2\n")
    assert await storage.files.get(a.id, fid) == b"a,b\n1,2\n"
    with pytest.raises(NotFound):
        await storage.files.get(b.id, fid)


async def test_agent_with_working_hours_round_trips(storage):
    org = await storage.orgs.create("A")
    hours = WorkingHours(timezone="Europe/Moscow", days={0: ("09:00", "18:00")}, out_of_hours_reply="Мы ответим утром")
    await storage.agents.insert(org.id, Agent(_id="ag", org_id=org.id, name="S", working_hours=hours))
    assert (await storage.agents.get(org.id, "ag")).working_hours == hours


@pytest.mark.parametrize("collection,query", [
    ("messages", {"org_id": "o", "conversation_id": "c"}),  # a turn's recent messages
    ("messages", {"org_id": "o", "role": "customer", "turn_id": None}),  # the sweep's unanswered
    ("conversations", {"org_id": "o", "conversation_key": "chat:1"}),  # every inbound message
    ("conversations", {"org_id": "o", "pending_turn_id": {"$gt": ""}}),  # the sweep's unfinished turns
    ("agent_actions", {"org_id": "o", "idempotency_key": "turn_1:reply"}),  # the action journal
    ("webhook_events", {"status": "queued", "received_at": {"$lte": "2026-12-01"}, "org_id": "o"}),
])
async def test_hot_lookups_are_served_by_an_index_on_the_embedded_server(storage, collection, query):
    # nx-27017 scans the whole collection for a query its single-field indexes cannot answer,
    # so these would slow down linearly as the data grows (core/storage/indexes.py).
    plan = await storage.db.command("explain", {"find": collection, "filter": query})
    detail = " ".join(step["detail"] for step in plan["queryPlanner"]["winningPlan"])
    assert "USING INDEX" in detail and f"SCAN {collection}" not in detail, detail


async def test_recent_and_unanswered_reads_all_unanswered_when_they_overflow_the_window(storage):
    org = await storage.orgs.create("A")
    start = utcnow() - timedelta(minutes=10)

    async def say(i: int, role: str, turn_id: str | None) -> None:
        await storage.messages.insert(org.id, Message(_id=f"m{i:02d}", org_id=org.id, conversation_id="c1", role=role,
                                                      text=f"t{i}", turn_id=turn_id,
                                                      created_at=start + timedelta(seconds=i)))

    await say(0, "customer", "turn_m00")
    await say(1, "agent", "turn_m00")
    for i in range(2, 6):
        await say(i, "customer", None)
    recent, unanswered = await storage.messages.recent_and_unanswered(org.id, "c1", limit=10)
    assert [m.id for m in recent] == [f"m{i:02d}" for i in range(6)]
    assert [m.id for m in unanswered] == ["m02", "m03", "m04", "m05"]  # the tail, from the one read
    recent, unanswered = await storage.messages.recent_and_unanswered(org.id, "c1", limit=3)
    assert [m.id for m in recent] == ["m03", "m04", "m05"]
    assert [m.id for m in unanswered] == ["m02", "m03", "m04", "m05"]  # older than the window: read in full


class _WriteFilters(monitoring.CommandListener):
    """Collects the filter of every update and findAndModify a client sends."""

    def __init__(self) -> None:
        self.filters: list[tuple[str, dict]] = []

    def started(self, event) -> None:
        if event.command_name == "update":
            self.filters += [(event.command["update"], u["q"]) for u in event.command["updates"]]
        elif event.command_name == "findAndModify":
            self.filters.append((event.command["findAndModify"], event.command["query"]))

    def succeeded(self, event) -> None: ...

    def failed(self, event) -> None: ...


async def test_conversation_and_journal_writes_address_documents_by_id(mongo_url):
    # nx-27017 serves a find by any indexed field from its index, but an update or findAndModify
    # filtered by anything but `_id` scans the collection: with the journal and conversations
    # growing by one document per turn, such writes made a 10,000-message soak slow down by half.
    listener = _WriteFilters()
    client = AsyncMongoClient(mongo_url, event_listeners=[listener], retryWrites=False, tz_aware=True)
    name = f"t_{uuid.uuid4().hex[:12]}"
    try:
        await ensure_indexes(client[name])
        storage = Storage.from_db(client[name])
        org = await storage.orgs.create("A")
        conv = await storage.conversations.get_or_create(org.id, "chat:1", {"lead_id": 7})
        again = await storage.conversations.get_or_create(org.id, "chat:1", {"lead_id": 8}, {"talk_id": 9})
        assert again.id == conv.id and again.lead_id == 7 and again.talk_id == 9

        async def ok() -> dict:
            return {"note_id": 1}

        async def refused() -> dict:
            raise KommoAgentError("refused")

        sent = await run_journaled(storage.actions, org.id, kind="note", key="k1", params={}, perform=ok)
        assert sent.state == ActionState.SENT
        with pytest.raises(KommoAgentError):
            await run_journaled(storage.actions, org.id, kind="note", key="k2", params={}, perform=refused)
        retried = await run_journaled(storage.actions, org.id, kind="note", key="k2", params={}, perform=ok)
        assert retried.state == ActionState.SENT and retried.result == {"note_id": 1}
        assert listener.filters, "nothing was written"
        by_other_fields = [(coll, q) for coll, q in listener.filters if "_id" not in q]
        assert by_other_fields == []
    finally:
        await client.drop_database(name)
        await client.close()


async def test_racing_first_messages_share_one_conversation(storage):
    org = await storage.orgs.create("A")
    convs = await asyncio.gather(*(storage.conversations.get_or_create(org.id, "chat:race", {"lead_id": 1},
                                                                      {"talk_id": n}) for n in range(10)))
    assert len({c.id for c in convs}) == 1
    assert await storage.conversations.count(org.id) == 1
    stored = await storage.conversations.by_key(org.id, "chat:race")
    assert stored.lead_id == 1 and stored.talk_id in range(10)  # the last writer's change stands


async def test_embedded_server_keeps_only_indexes_it_can_use(mongo_url):
    # nx-27017 answers no query from a compound index but pays for every index on every write
    # (the webhook intake bench lost a fifth of its throughput to two such indexes).
    client = AsyncMongoClient(mongo_url, tz_aware=True)
    name = f"t_{uuid.uuid4().hex[:12]}"
    try:
        db = client[name]
        await db.webhook_events.create_index([("status", 1), ("received_at", 1)])  # an earlier version's
        await ensure_indexes(db)
        await ensure_indexes(db)  # idempotent
        keys = [tuple(ix["key"].items()) for ix in await (await db.webhook_events.list_indexes()).to_list()]
        assert (("status", 1), ("received_at", 1)) not in keys
        assert (("org_id", 1), ("dedupe_key", 1)) in keys and (("status", 1),) in keys
        storage = Storage.from_db(db)
        org = await storage.orgs.create("A")
        event = WebhookEvent(_id="e1", org_id=org.id, source="kommo", kind="message.add", dedupe_key="m:1",
                             raw_body="x", content_type="application/x-www-form-urlencoded")
        again = event.model_copy(update={"id": "e2"})
        assert [e.id for e in await storage.events.insert_new([event, again])] == ["e1"]  # still unique
    finally:
        await client.drop_database(name)
        await client.close()
