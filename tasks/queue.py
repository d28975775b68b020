"""The Celery implementation of `core.ports.TaskQueue` (used by the web app, CLI and bot)."""

from __future__ import annotations

import asyncio
import json

import structlog
from celery import Celery
from kombu.serialization import dumps
from kombu.utils.uuid import uuid

log = structlog.get_logger("tasks.queue")


class CeleryTaskQueue:
    def __init__(self, app: Celery) -> None:
        self.app = app

    def _send_many(self, name: str, arg_lists: list[tuple], countdown: float | None = None) -> None:
        # One producer connection for the whole batch: intake group-commits many events at once.
        with self.app.producer_or_acquire() as producer:
            for args in arg_lists:
                self.app.send_task(name, args=args, producer=producer, countdown=countdown)

    def _publish_batch(self, name: str, arg_lists: list[tuple]) -> None:
        """One Celery task message per item, all pushed to the broker with ONE Redis LPUSH.

        `send_task` costs about a millisecond per message here (a result-backend SUBSCRIBE/
        UNSUBSCRIBE per task although results are ignored, routing, declaring and a Redis round
        trip per message), and kombu's `Producer.publish` still ~100 us. The first message of a
        batch is built and serialized by Celery and kombu themselves (`amqp.create_task_message`,
        the producer's serializer, the channel's `prepare_message` and body encoding, exactly as
        `send_task` publishes to a direct queue: anonymous exchange, queue name as routing key);
        the others are that envelope with their own task id, delivery tag and arguments. They go
        to the queue's Redis list like kombu's own `_put` (LPUSH, consumed from the other end).
        A failed push is retried once on a fresh connection: a task published twice is harmless
        (the worker claims the event by its status).
        """
        if not arg_lists:
            return
        for attempt in (1, 2):
            try:
                with self.app.producer_or_acquire() as producer:
                    key, messages = self._envelopes(producer, name, arg_lists)
                    with producer.channel.conn_or_acquire() as client:
                        client.lpush(key, *messages)
                return
            except Exception as exc:
                if attempt == 2:
                    raise
                log.warning("task batch publish failed; retrying on a fresh connection", error=str(exc)[:200],
                            tasks=len(arg_lists))

    def _envelopes(self, producer, name: str, arg_lists: list[tuple]) -> tuple[str, list[str]]:
        amqp = self.app.amqp
        queue = amqp.router.route({}, name, None, None, None)["queue"]
        channel = producer.channel
        first = arg_lists[0]
        headers, properties, body, _ = amqp.create_task_message(
            uuid(), name, first, {}, argsrepr=repr(first), kwargsrepr="{}", reply_to=self.app.thread_oid,
            ignore_result=True)
        content_type, content_encoding, payload = dumps(body, serializer=self.app.conf.task_serializer)
        if content_type != "application/json":  # the template below re-serializes with json
            raise RuntimeError(f"fast publish expects json task bodies, got {content_type}")
        properties = dict(properties, delivery_mode=queue.exchange.delivery_mode or 2)
        template = channel.prepare_message(payload, 0, content_type, content_encoding, headers, properties)
        channel._inplace_augment_message(template, "", queue.name)  # body encoding + delivery info
        encoding = template["properties"]["body_encoding"]
        key = channel._q_for_pri(queue.name, channel._get_message_priority(template, reverse=False))
        embed = body[2]
        out = []
        for args in arg_lists:
            task_id = uuid()
            raw = json.dumps([list(args), {}, embed]).encode()
            msg = dict(template, body=channel.encode_body(raw, encoding)[0],
                       headers=dict(template["headers"], id=task_id, root_id=task_id, argsrepr=repr(args)),
                       properties=dict(template["properties"], correlation_id=task_id, delivery_tag=uuid()))
            out.append(json.dumps(msg))
        return key, out

    async def process_events(self, refs: list[tuple[str, str]]) -> None:
        if refs:
            await asyncio.to_thread(self._publish_batch, "inbound.process_event", list(refs))

    async def index_source(self, org_id: str, source_id: str) -> None:
        await asyncio.to_thread(self._send_many, "ingest.index_source", [(org_id, source_id)])

    async def sync_account(self, org_id: str) -> None:
        await asyncio.to_thread(self._send_many, "kommo.sync_account", [(org_id,)])

    async def schedule_turn(self, org_id: str, conversation_id: str, trigger_message_id: str | None,
                            countdown: float) -> None:
        await asyncio.to_thread(self._send_many, "inbound.run_turn",
                                [(org_id, conversation_id, trigger_message_id)], countdown or None)

    async def schedule_turns(self, refs: list[tuple[str, str]]) -> None:
        if refs:
            await asyncio.to_thread(self._send_many, "inbound.run_turn",
                                    [(org_id, conversation_id, None) for org_id, conversation_id in refs])

    async def backlog(self) -> int:
        def inbound_length() -> int:
            with self.app.connection_for_write() as conn:
                return int(conn.default_channel.client.llen("inbound"))

        return await asyncio.to_thread(inbound_length)
