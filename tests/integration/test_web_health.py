"""Health, readiness (naming the failing part) and metrics of the web app."""

from __future__ import annotations

import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from core.config import Settings
from core.services import CoreServices, build_services
from core.storage.embedded import free_port
from tasks.app import create_celery
from tasks.queue import CeleryTaskQueue
from web.app import create_app


async def _client(services: CoreServices, redis_url: str) -> TestClient:
    app = create_app(services)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


def _sample(text: str, series: str) -> float:
    """The value of one series in a Prometheus text exposition (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _settings(mongo_url: str, redis_url: str) -> Settings:
    s = Settings(_env_file=None)
    s.mongo.url = mongo_url
    s.redis.url = redis_url
    return s


async def test_ready_health_metrics(mongo_url, redis_url, keyring):
    services = await build_services(_settings(mongo_url, redis_url), keyring=keyring,
                                    queue=CeleryTaskQueue(create_celery(redis_url)))
    client = await _client(services, redis_url)
    try:
        assert (await client.get("/healthz")).status == 200
        ready = await client.get("/readyz")
        assert ready.status == 200 and (await ready.json())["status"] == "ready"
        assert ready.headers["X-Request-Id"]
        metrics = await (await client.get("/metrics")).text()
        assert 'http_requests_total{route="/readyz",status="200"}' in metrics

        # Webhooks by outcome, and the broker's queue depth read at scrape time.
        before = _sample(metrics, 'kommo_webhooks_total{outcome="unknown_hook",route="kommo"}')
        assert (await client.post("/webhooks/kommo/not-a-token", data=b"leads[add][0][id]=1")).status == 404
        await services.redis.rpush("ingest", b"a", b"b", b"c")
        metrics = await (await client.get("/metrics")).text()
        assert _sample(metrics, 'kommo_webhooks_total{outcome="unknown_hook",route="kommo"}') == before + 1
        assert _sample(metrics, 'queue_depth{queue="ingest"}') == 3
        assert "not-a-token" not in metrics  # no label carries a request's own values
    finally:
        await client.close()
        await services.close()


async def test_readyz_names_the_failing_part(mongo_url, redis_url, keyring):
    services = await build_services(_settings(mongo_url, redis_url), keyring=keyring,
                                    queue=CeleryTaskQueue(create_celery(redis_url)))
    dead = f"redis://127.0.0.1:{free_port()}/0"
    await services.redis.aclose()
    services.redis = aioredis.from_url(dead, socket_connect_timeout=0.5)
    client = await _client(services, redis_url)
    try:
        resp = await client.get("/readyz")
        body = await resp.json()
        assert resp.status == 503
        assert set(body["failing"]) == {"redis"}
        assert (await client.get("/healthz")).status == 200  # alive, just not ready
    finally:
        await client.close()
        await services.close()
