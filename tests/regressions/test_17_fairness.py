"""Issue 17: a backlog of more than 20 inbound tasks of one tenant stopped the recovery sweep for
every tenant, and the one inbound queue served tasks first come first served, so one flooded
account delayed everyone. Sweeps and queues are now fair per account."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.clock import utcnow
from core.conversations.errors import OrganisationBusy
from core.conversations.sweeper import MAX_REQUEUE_PER_ORG
from core.ids import new_id
from core.locks import renewable_lock
from core.models.events import EventStatus, WebhookEvent
from tasks.app import create_celery
from tasks.queue import CeleryTaskQueue
from tests.fixtures.engine import message_body

SHARE = 20


def _consume_all(app) -> list[list]:
    """What kombu's Redis consumer gets, in its order (it pops the priority lists in turn)."""
    taken = []
    with app.connection_for_read() as conn:
        channel = conn.default_channel
        while True:
            try:
                message = channel._get("inbound")
            except Exception:  # noqa: BLE001 - kombu's Empty: the queue is drained
                return taken
            taken.append(message["headers"]["argsrepr"])


async def test_a_flooded_account_waits_behind_the_others_in_the_queue(redis_url, redis_client):
    app = create_celery(redis_url)
    queue = CeleryTaskQueue(app, fair_share_per_minute=SHARE)
    for batch in range(12):  # tenant A floods: 12 group commits of 16 events
        await queue.process_events([("org_a", f"evt_a{batch}_{i}") for i in range(16)])
    await queue.process_events([("org_b", f"evt_b{i}") for i in range(3)])  # tenant B: three events
    await queue.schedule_turn("org_a", "conv_a", None, 0)  # A's turn too: past its share
    order = [r for r in _consume_all(app)]
    assert len(order) == 12 * 16 + 3 + 1
    b_positions = [i for i, r in enumerate(order) if "org_b" in r]
    # A's first 20 tasks (its share) went ahead; everything after waits behind B.
    assert b_positions == [SHARE, SHARE + 1, SHARE + 2]
    assert all("org_a" in r for r in order[SHARE + 3:])
    assert await queue.backlog() == 0


async def test_one_accounts_backlog_does_not_stop_the_sweep_for_the_others(shop, fake_kommo, redis_client):
    """Tenant A has 600 events pending (its workers are behind); tenant B lost one turn. B's
    turn is re-enqueued at once; A's backlog only a share per sweep, without duplicates."""
    storage = shop.services.storage
    kommo = await shop.services.kommo()
    org_a = await storage.orgs.create("Flooded")
    acc_a = fake_kommo.add_account("flooded")
    await kommo.connections.connect_long_lived(org_a.id, "flooded", fake_kommo.book.issue_long_lived(acc_a.id))
    old = utcnow() - timedelta(minutes=10)
    docs = [WebhookEvent(_id=new_id("evt"), org_id=org_a.id, kind="message.add", dedupe_key=f"a:{i}", raw_body="x",
                         status=EventStatus.QUEUED, received_at=old) for i in range(600)]
    await storage.events.insert_new(docs)
    await redis_client.rpush("inbound", *[b"{}"] * 600)  # A's tasks, waiting in the broker

    await shop.customer_says("Is anyone there?")
    conv = await shop.conversation()
    await storage.messages.collection.update_many({"conversation_id": conv.id}, {"$set": {"created_at": old}})

    first = await shop.engine.sweep(stale_after_s=60)
    assert first.turns_requeued == 1  # used to be 0 for everyone while the broker held > 20 tasks
    assert first.events_requeued == MAX_REQUEUE_PER_ORG  # A gets its share of this sweep
    second = await shop.engine.sweep(stale_after_s=60)
    assert second.turns_requeued == 0 and second.recently_requeued >= MAX_REQUEUE_PER_ORG + 1
    assert second.events_requeued == MAX_REQUEUE_PER_ORG  # the next share, never the same ones twice


async def test_a_flooding_organisation_holds_at_most_its_turn_slots(shop, redis_client):
    """Its other turns step aside at once (no retry used up, no attempt counted) instead of
    holding worker threads while Kommo paces that account; other organisations are not held."""
    deps = shop.engine.deps
    deps.turns_per_org = 1
    storage = shop.services.storage
    [event_id] = await shop.event(message_body(shop.fake_acc, "m-busy", "Hi?", chat_id="c-busy",
                                               lead_id=shop.lead_id))
    deps.debounce_s = 0  # the turn runs inside the event's task
    async with renewable_lock(redis_client, f"lock:orgslot:{shop.org_id}:0", hold_s=30, wait_s=None) as held:
        assert held  # another worker runs this organisation's one turn
        for _ in range(deps.max_event_attempts + 2):
            with pytest.raises(OrganisationBusy):
                await shop.engine.process_event(shop.org_id, event_id)
        event = await storage.events.get(shop.org_id, event_id)
        assert event.status == EventStatus.QUEUED and event.attempts == 0  # never parked for waiting
        other = await storage.orgs.create("Other")
        async with renewable_lock(redis_client, f"lock:orgslot:{other.id}:0", hold_s=30, wait_s=None) as free:
            assert free  # another organisation's slot is its own
    assert await shop.engine.process_event(shop.org_id, event_id) in ("replied", "handed_off")
