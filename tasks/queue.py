"""The Celery implementation of `core.ports.TaskQueue` (used by the web app, CLI and bot)."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter

import redis.asyncio as aioredis
import structlog
from celery import Celery
from kombu.serialization import dumps
from kombu.utils.uuid import uuid
from redis.exceptions import RedisError

log = structlog.get_logger("tasks.queue")
FAIR_SHARE_PER_MINUTE = 120
# kombu's Redis transport keeps one list per priority step and its consumers pop the lists in
# order, 0 first: an organisation past its fair share publishes to the last one, so its excess
# waits behind everyone else's work instead of in front of it.
LOW_PRIORITY = 9
_FAIR_TTL_S = 120


def _minute() -> int:
    return int(time.time() // 60)


class CeleryTaskQueue:
    def __init__(self, app: Celery, *, fair_share_per_minute: int = FAIR_SHARE_PER_MINUTE) -> None:
        self.app = app
        self.fair_share = fair_share_per_minute
        self._templates: dict[str, tuple] = {}
        self._brokers: dict[asyncio.AbstractEventLoop, aioredis.Redis] = {}
        # kombu's producer and channel are not thread-safe: concurrent first publishes of one
        # task name must not prepare its template in several threads at once.
        self._preparing: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}
        # org -> (minute, its inbound tasks that minute as Redis last counted them, every
        # publishing process included); plus what this process published since
        self._seen: dict[str, tuple[int, int]] = {}

    def _lane_counter(self):
        """Per message, whether it goes past its organisation's share this minute."""
        minute = _minute()
        running: dict[str, int] = {}

        def past_share(org_id: str) -> bool:
            seen_minute, count = self._seen.get(org_id, (minute, 0))
            base = count if seen_minute == minute else 0
            running[org_id] = running.get(org_id, base) + 1
            return running[org_id] > self.fair_share

        return past_share

    def _note_counts(self, counts: dict[str, int]) -> None:
        minute = _minute()
        for org_id, count in counts.items():
            self._seen[org_id] = (minute, count)
        if len(self._seen) > 10_000:
            self._seen = {k: v for k, v in self._seen.items() if v[0] == minute}

    def _count_sync(self, orgs: dict[str, int]) -> None:
        with self.app.connection_for_write() as conn:
            client = conn.default_channel.client
            pipe = client.pipeline(transaction=False)
            minute = _minute()
            for org_id, n in orgs.items():
                pipe.incrby(f"fair:{org_id}:{minute}", n)
                pipe.expire(f"fair:{org_id}:{minute}", _FAIR_TTL_S)
            self._note_counts(dict(zip(orgs, pipe.execute()[0::2], strict=True)))

    def _send_many(self, name: str, arg_lists: list[tuple], countdown: float | None = None) -> None:
        # One producer connection for the whole batch: intake group-commits many events at once.
        fair = name.startswith("inbound.") and arg_lists
        past_share = self._lane_counter()
        with self.app.producer_or_acquire() as producer:
            for args in arg_lists:
                priority = LOW_PRIORITY if fair and past_share(str(args[0])) else None
                self.app.send_task(name, args=args, producer=producer, countdown=countdown, priority=priority)
        if fair:
            self._count_sync(_per_org(arg_lists))

    async def _publish_batch(self, name: str, arg_lists: list[tuple]) -> None:
        """One Celery task message per item, all pushed to the broker with ONE Redis LPUSH from
        the event loop.

        `send_task` costs about a millisecond per message here (a result-backend SUBSCRIBE/
        UNSUBSCRIBE per task although results are ignored, routing, declaring and a Redis round
        trip per message), and even one kombu producer per batch, used from a thread, cost the
        web app ~2 ms of CPU per batch. The messages are those Celery and kombu build (see
        `_template`), pushed to the queue's Redis list like kombu's own `_put` (LPUSH, consumed
        from the other end) by an asyncio Redis client of this event loop. A failed push is
        retried once on a fresh connection: a task published twice is harmless (the worker
        claims the event by its status).
        """
        if not arg_lists:
            return
        if name not in self._templates:
            async with self._preparing.setdefault(asyncio.get_running_loop(), asyncio.Lock()):
                if name not in self._templates:
                    await asyncio.to_thread(self._prepare, name)  # once per task name: kombu connects
        fair = name.startswith("inbound.")
        lanes = self._envelopes(name, arg_lists, fair)
        for attempt in (1, 2):
            try:
                broker = self._broker()
                if not fair:
                    [(key, messages)] = lanes.items()
                    await broker.lpush(key, *messages)
                    return
                # The push and the count of each organisation's work this minute in one round
                # trip; the count (every process's) is where the next batch's lanes start from.
                pipe = broker.pipeline(transaction=False)
                for key, messages in lanes.items():
                    pipe.lpush(key, *messages)
                orgs, minute = _per_org(arg_lists), _minute()
                for org_id, n in orgs.items():
                    pipe.incrby(f"fair:{org_id}:{minute}", n)
                    pipe.expire(f"fair:{org_id}:{minute}", _FAIR_TTL_S)
                results = await pipe.execute()
                self._note_counts(dict(zip(orgs, results[len(lanes):][0::2], strict=True)))
                return
            except RedisError as exc:
                if attempt == 2:
                    raise
                log.warning("task batch publish failed; retrying on a fresh connection", error=str(exc)[:200],
                            tasks=len(arg_lists))
                await self._drop_broker()

    def _broker(self) -> aioredis.Redis:
        loop = asyncio.get_running_loop()
        client = self._brokers.get(loop)
        if client is None:
            client = self._brokers[loop] = aioredis.Redis.from_url(self.app.conf.broker_url)
        return client

    async def _drop_broker(self) -> None:
        client = self._brokers.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose(close_connection_pool=True)

    async def close(self) -> None:
        """Close this event loop's broker connection (the web app calls it on shutdown)."""
        await self._drop_broker()

    def _prepare(self, name: str) -> None:
        with self.app.producer_or_acquire() as producer:
            self._templates[name] = self._template(producer, name)

    def _envelopes(self, name: str, arg_lists: list[tuple], fair: bool = False) -> dict[str, list[str]]:
        """Messages per Redis list: all on the queue's list, or (`fair`) those of organisations
        past their share this minute on its low-priority list."""
        key, low_key, parts, embed, encode_body = self._templates[name]
        lanes: dict[str, list[str]] = {}
        past_share = self._lane_counter()
        for args in arg_lists:
            task_id = uuid()
            fields = {"id": task_id, "argsrepr": json.dumps(repr(args)), "tag": uuid(),
                      "body": encode_body(json.dumps([list(args), {}, embed]).encode())}
            lane = low_key if fair and past_share(str(args[0])) else key
            lanes.setdefault(lane, []).append("".join(fields[p] if i % 2 else p for i, p in enumerate(parts)))
        return lanes

    def _template(self, producer, name: str):
        """The message Celery and kombu would publish for `name`, built once by them (task
        message, serializer, the channel's `prepare_message` and body encoding, exactly as
        `send_task` publishes to a direct queue: anonymous exchange, queue name as routing key),
        serialised with markers where each message differs: task id, argsrepr, delivery tag and
        body. Each message is then that text with its own values, a few microseconds instead of
        a few tens for building and dumping a dict per message."""
        amqp = self.app.amqp
        queue = amqp.router.route({}, name, None, None, None)["queue"]
        channel = producer.channel
        sample = ("org", "id")
        headers, properties, body, _ = amqp.create_task_message(
            "@@id@@", name, sample, {}, argsrepr="@@argsrepr@@", kwargsrepr="{}", reply_to=self.app.thread_oid,
            ignore_result=True)
        content_type, content_encoding, payload = dumps(body, serializer=self.app.conf.task_serializer)
        if content_type != "application/json":  # the messages below are json
            raise RuntimeError(f"fast publish expects json task bodies, got {content_type}")
        properties = dict(properties, delivery_mode=queue.exchange.delivery_mode or 2, correlation_id="@@id@@")
        message = channel.prepare_message(payload, 0, content_type, content_encoding, headers, properties)
        channel._inplace_augment_message(message, "", queue.name)  # body encoding + delivery info
        encoding = message["properties"]["body_encoding"]
        key = channel._q_for_pri(queue.name, channel._get_message_priority(message, reverse=False))
        low_key = channel._q_for_pri(queue.name, LOW_PRIORITY)
        message = dict(message, body="@@body@@", headers=dict(message["headers"], root_id="@@id@@"),
                       properties=dict(message["properties"], delivery_tag="@@tag@@"))
        text = json.dumps(message).replace('"@@argsrepr@@"', "@@argsrepr@@")
        parts = text.split("@@")  # literal, field, literal, field, ..., literal
        if parts.count("id") < 3 or len(parts) % 2 == 0:
            raise RuntimeError("unexpected task message shape")

        def encode_body(raw: bytes) -> str:
            return channel.encode_body(raw, encoding)[0]

        return key, low_key, parts, body[2], encode_body

    async def process_events(self, refs: list[tuple[str, str]]) -> None:
        await self._publish_batch("inbound.process_event", list(refs))

    async def index_source(self, org_id: str, source_id: str) -> None:
        await asyncio.to_thread(self._send_many, "ingest.index_source", [(org_id, source_id)])

    async def delete_source(self, org_id: str, source_id: str) -> None:
        await asyncio.to_thread(self._send_many, "ingest.delete_source", [(org_id, source_id)])

    async def test_turn(self, org_id: str, request_id: str) -> None:
        await self._publish_batch("ingest.test_turn", [(org_id, request_id)])

    async def approval_decided(self, org_id: str, card_id: str) -> None:
        await asyncio.to_thread(self._send_many, "inbound.approval", [(org_id, card_id)])

    async def sync_account(self, org_id: str) -> None:
        await asyncio.to_thread(self._send_many, "kommo.sync_account", [(org_id,)])

    async def run_campaign(self, org_id: str, campaign_id: str) -> None:
        await asyncio.to_thread(self._send_many, "campaigns.run", [(org_id, campaign_id)])

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
                channel = conn.default_channel
                return sum(int(channel.client.llen(channel._q_for_pri("inbound", pri)))
                           for pri in channel.priority_steps)

        return await asyncio.to_thread(inbound_length)


def _per_org(arg_lists: list[tuple]) -> dict[str, int]:
    return dict(Counter(str(args[0]) for args in arg_lists))
