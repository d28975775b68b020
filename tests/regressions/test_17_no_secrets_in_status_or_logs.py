"""Issue 17: `/readyz` returned exception text (a connection URL with its password could come out)
and log lines carried whatever the exception said. The status page names the failing part only;
logs are scrubbed by shape."""

from __future__ import annotations

import redis.asyncio as aioredis
import structlog
from aiohttp.test_utils import TestClient, TestServer

from core.config import Settings
from core.logging import configure_logging, scrub
from core.redact import redact_secrets, url_without_password
from core.services import build_services
from core.storage.embedded import free_port
from tasks.app import create_celery
from tasks.queue import CeleryTaskQueue
from web.app import create_app


async def test_readyz_names_the_part_but_shows_no_internals(mongo_url, redis_url, keyring):
    settings = Settings(_env_file=None)
    settings.mongo.url, settings.redis.url = mongo_url, redis_url
    services = await build_services(settings, keyring=keyring, queue=CeleryTaskQueue(create_celery(redis_url)))
    await services.redis.aclose()
    services.redis = aioredis.from_url(f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0",
                                       socket_connect_timeout=0.5)
    client = TestClient(TestServer(create_app(services)))
    await client.start_server()
    try:
        resp = await client.get("/readyz")
        text = await resp.text()
        assert resp.status == 503 and (await resp.json())["failing"] == {"redis": "unreachable"}
        assert "hunter2" not in text and "Error" not in text and "127.0.0.1" not in text
    finally:
        await client.close()
        await services.close()


def test_log_lines_are_scrubbed_whatever_carries_the_secret():
    configure_logging("INFO", json=True)
    assert scrub in structlog.get_config()["processors"]
    event = scrub(None, "error", {"event": "connect failed: mongodb://agent:Pa55w0rd-x@db:27017/",
                                  "error": "401 Bearer abcdefghijklmnopqrstuvwxyz123456",
                                  "key": "sk-or-v1-0123456789abcdef0123", "count": 3})
    assert "Pa55w0rd" not in event["event"] and "mongodb://agent:***@db:27017/" in event["event"]
    assert "abcdefghijklmnop" not in event["error"] and event["key"] == "[redacted]" and event["count"] == 3
    assert url_without_password("redis://:pw@h:6379/0 and https://u:p@x.example/a") == \
        "redis://:***@h:6379/0 and https://u:***@x.example/a"
    assert redact_secrets("plain words stay") == "plain words stay"
