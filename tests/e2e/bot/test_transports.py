"""How updates arrive: long polling (getUpdates on the fake Bot API) by default, or the web
app's webhook route with Telegram's secret-token header checked."""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient, TestServer

from bot.main import build_console, webhook_secret
from tests.fixtures.telegram import message_update, user
from web.app import create_app


async def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_long_polling_serves_queued_updates(console_services, fake_telegram):
    console = build_console(console_services)
    anna = user(7001, language_code="en")
    fake_telegram.queue_update(message_update(anna, "/help", 1))
    await console.start_background()  # command menus per language, the notification loop
    assert set(fake_telegram.commands) == {"", "ru", "en", "es"}
    assert fake_telegram.commands["es"][0] == {"command": "start", "description": "Menú principal"}
    polling = asyncio.create_task(console.dp.start_polling(console.bot, handle_signals=False,
                                                           close_bot_session=False, polling_timeout=1))
    try:
        await wait_for(lambda: fake_telegram.calls_of("sendMessage", anna.id))
    finally:
        await console.dp.stop_polling()
        await polling
        await console.close()
    assert "/agents" in fake_telegram.last(anna.id).text
    assert fake_telegram.calls_of("getUpdates")


async def test_webhook_route_checks_the_secret_and_feeds_the_console(console_services, fake_telegram, celery_queue):
    telegram = console_services.settings.telegram.model_copy(
        update={"webhook_url": "https://agent.example/telegram/hook"})
    console_services.settings = console_services.settings.model_copy(update={"telegram": telegram})
    client = TestClient(TestServer(create_app(console_services)))
    await client.start_server()
    try:
        [registered] = fake_telegram.calls_of("setWebhook")
        assert registered.params["url"] == "https://agent.example/telegram/hook"
        assert registered.params["secret_token"] == webhook_secret(telegram)
        anna = user(7002, language_code="en")
        update = message_update(anna, "/help", 1)
        bad = await client.post("/telegram/hook", json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "nope"})
        assert bad.status == 401
        missing = await client.post("/telegram/hook", json=update)
        assert missing.status == 401
        ok = await client.post("/telegram/hook", json=update,
                               headers={"X-Telegram-Bot-Api-Secret-Token": webhook_secret(telegram)})
        assert ok.status == 200
        await wait_for(lambda: fake_telegram.calls_of("sendMessage", anna.id))
        assert "/agents" in fake_telegram.last(anna.id).text
        assert len(fake_telegram.calls_of("sendMessage", anna.id)) == 1  # the 401s fed nothing
    finally:
        await client.close()
