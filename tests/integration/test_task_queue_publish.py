"""CeleryTaskQueue.process_events publishes a batch with one LPUSH: the messages must be the ones
Celery's own send_task would publish (same envelope, headers and body), and kombu must read them."""

from __future__ import annotations

import json

import redis

from tasks.app import create_celery
from tasks.queue import CeleryTaskQueue

VARYING = {"id", "root_id", "correlation_id", "delivery_tag", "argsrepr", "ignore_result", "origin", "body",
           "reply_to"}  # reply_to: the publishing thread's oid


def _flatten(msg: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in msg.items():
        if isinstance(v, dict) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


async def test_batch_messages_match_send_task_and_are_consumable(redis_url):
    app = create_celery(redis_url)
    queue = CeleryTaskQueue(app)
    client = redis.Redis.from_url(redis_url)
    client.delete("inbound")
    try:
        queue._send_many("inbound.process_event", [("org_ref", "evt_ref")])  # Celery's own path
        refs = [("org_a", f"evt_{i}") for i in range(5)]
        await queue.process_events(refs)
        raw = client.lrange("inbound", 0, -1)  # LPUSH: newest first
        assert len(raw) == 6
        reference = json.loads(raw[-1])
        ours = [json.loads(m) for m in reversed(raw[:-1])]
        ref_flat = _flatten(reference)
        for msg in ours:
            flat = _flatten(msg)
            assert set(flat) == set(ref_flat)
            assert {k: v for k, v in flat.items() if k.rsplit(".", 1)[-1] not in VARYING} == \
                   {k: v for k, v in ref_flat.items() if k.rsplit(".", 1)[-1] not in VARYING}
            assert msg["headers"]["id"] == msg["headers"]["root_id"] == msg["properties"]["correlation_id"]
            assert msg["headers"]["ignore_result"] is True
        assert len({m["headers"]["id"] for m in ours}) == len({m["properties"]["delivery_tag"] for m in ours}) == 5

        with app.connection_for_read() as conn:  # kombu reads them back in publish order
            channel = conn.default_channel
            got = []
            for _ in range(6):
                message = channel.basic_get("inbound", no_ack=True)
                got.append((message.headers["task"], message.decode()[0], message.headers["argsrepr"]))
        assert got[0][1] == ["org_ref", "evt_ref"]
        assert [g[1] for g in got[1:]] == [list(r) for r in refs]
        assert all(task == "inbound.process_event" for task, _, _ in got)
        assert got[1][2] == repr(refs[0])
    finally:
        client.delete("inbound")
        client.close()
