"""Issue 17 (low): the token refresh lock (30 s) was not renewed while a slow refresh ran; the
webhook URL's token could not be rotated; the human who connected Kommo was taken for the bot,
so their chat messages were ignored instead of handing the conversation over."""

from __future__ import annotations

import asyncio
import base64
import os
import sys
from datetime import timedelta
from types import SimpleNamespace

from core.clock import utcnow
from core.config import MongoSettings, RedisSettings, Settings
from core.kommo.errors import UnknownHook
from core.kommo.intake.parser import SUBSCRIBED_EVENTS
from core.kommo.service import build_kommo
from core.models.conversation import ConversationState
from core.models.events import EventStatus
from core.security.keyring import parse_keys
from core.services import CoreServices
from tests.fixtures.engine import message_body
from tests.fixtures.kommo import kommo_settings
from tests.integration.test_kommo_client import connect_oauth, fast, second_process


async def test_a_slow_refresh_keeps_its_lock_and_spends_the_refresh_token_once(kommo, core_services, fake_kommo,
                                                                               redis_client):
    storage = core_services.storage
    org, account, _ = await connect_oauth(kommo, storage, fake_kommo)
    await storage.kommo_accounts.update(org.id, account.id, {"expires_at": utcnow() - timedelta(minutes=1)})
    fake_kommo.book.expire_all_access()
    fake_kommo.refresh_delay = 1.6  # longer than the lock's hold below (within the request timeout)
    other = fast(second_process(core_services), redis_client)
    fast(kommo, redis_client)
    for service in (kommo, other):
        service.tokens.lock_timeout_s = 0.6
    calls_before = fake_kommo.refresh_calls
    try:
        first = asyncio.ensure_future(kommo.api.account(await storage.kommo_accounts.get(org.id, account.id)))
        while fake_kommo.refresh_calls == calls_before:  # the first refresh is running at Kommo
            await asyncio.sleep(0.02)
        second = await other.api.account(await storage.kommo_accounts.get(org.id, account.id))
        assert (await first)["id"] == second["id"]
    finally:
        fake_kommo.refresh_delay = 0
        await other.close()
    assert fake_kommo.refresh_calls - calls_before == 1  # the second process waited, then reused the new pair


async def test_the_token_owner_writing_in_the_chat_is_a_manager_taking_over(shop):
    storage = shop.services.storage
    account = await storage.kommo_accounts.for_org(shop.org_id)
    assert account.bot_user_id  # the user whose token we call with: a person
    await shop.customer_says("Hello, is the sofa in stock?")
    body = message_body(shop.fake_acc, "m-owner", "Hi, I am the owner, I will help you", chat_id="chat-1",
                        lead_id=shop.lead_id, outgoing=True, author_type="user")
    body = body.replace(b"=u-1&", f"={account.bot_user_id}&".encode())
    [event_id] = await shop.event(body)
    event = await storage.events.get(shop.org_id, event_id)
    assert event.status != EventStatus.IGNORED  # was ignored as "our own write"
    await shop.engine.process_event(shop.org_id, event_id)
    conv = await shop.conversation()
    assert conv.state == ConversationState.HANDED_OFF and conv.state_reason == "manager_replied"


async def test_rotate_hook_token_from_the_cli(storage, redis_client, mongo_client, mongo_url, redis_url, fake_kommo,
                                              celery_queue, tmp_path):
    spec = "k1:" + base64.b64encode(os.urandom(32)).decode()
    keyring = parse_keys(spec)
    settings = Settings(mongo=MongoSettings(url=mongo_url), redis=RedisSettings(url=redis_url),
                        kommo=kommo_settings(fake_kommo))
    services = CoreServices.over(settings, mongo_client=mongo_client, storage=storage, redis=redis_client,
                                 keyring=keyring, queue=celery_queue)
    try:
        kommo = await services.kommo()
        org = await storage.orgs.create("Rotating")
        fake_acc = fake_kommo.add_account("rotating")
        connected = await kommo.connections.connect_long_lived(org.id, "rotating",
                                                               fake_kommo.book.issue_long_lived(fake_acc.id))
        old_token = kommo.connections.hook_token(connected.account)
        assert [w["destination"] for w in fake_acc.webhooks] == [connected.webhook_url]

        env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGO_", "REDIS_", "SECRETS_", "KOMMO_"))}
        env.update(MONGO_URL=mongo_url, MONGO_DATABASE=storage.db.name, REDIS_URL=redis_url, DATA_DIR=str(tmp_path),
                   SECRETS_KEYS=spec, PYTHONPATH=os.getcwd(), KOMMO_API_BASE_URL=fake_kommo.base_url,
                   KOMMO_PUBLIC_BASE_URL="https://agent.example", KOMMO_REQUEST_TIMEOUT_S="2",
                   KOMMO_AGENT_HOME=str(tmp_path))  # no operator .env leaks in
        # Asynchronously: the fake Kommo answers the CLI from this test's event loop.
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "cli", "kommo", "rotate-hook-token",
                                                    "--org", org.id, cwd=tmp_path, env=env,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 120)
        out = SimpleNamespace(returncode=proc.returncode, stdout=stdout.decode(), stderr=stderr.decode())
        assert out.returncode == 0, out.stderr
        account = await storage.kommo_accounts.for_org(org.id)
        new_token = kommo.connections.hook_token(account)
        assert new_token != old_token and f"/webhooks/kommo/{new_token}" in out.stdout
        assert all(event in out.stdout for event in SUBSCRIBED_EVENTS) and "no longer works" in out.stdout
        assert [w["destination"] for w in fake_acc.webhooks] == [kommo.connections.webhook_url(account)], out.stdout

        intake = build_kommo(settings.kommo, storage=storage, redis=redis_client, keyring=keyring,
                             queue=celery_queue).intake  # a web process started after the rotation
        try:
            await intake.resolve(old_token)
            raise AssertionError("the old webhook token still resolves")
        except UnknownHook:
            pass
        assert (await intake.resolve(new_token)).org_id == org.id
    finally:
        await services.close_areas()
