"""KommoClient and TokenManager against the fake Kommo over real HTTP, with the test Mongo/Redis."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from bot.i18n import build_i18n
from bot.notify import notification_text
from core.clock import aware, utcnow
from core.kommo.errors import KommoBlocked, KommoForbidden, KommoNotConnected, KommoTokenRevoked
from core.kommo.http.ratelimit import RateLimiter
from core.kommo.service import build_kommo
from core.models.kommo import AuthKind, ConnectionStatus


def second_process(services):
    """The Kommo area as another process builds it: its own HTTP session, the same Redis."""
    return build_kommo(services.settings.kommo, storage=services.storage, redis=services.redis,
                       keyring=services.keyring)


async def connect_oauth(kommo, storage, fake, subdomain="acme"):
    org = await storage.orgs.create("OAuth org")
    acc = fake.add_account(subdomain)
    url = await kommo.oauth.authorize_url(org.id, 42)
    state = parse_qs(urlsplit(url).query)["state"][0]
    outcome = await kommo.oauth.handle_callback(code=fake.book.issue_code(acc.id), state=state,
                                                referer=f"{subdomain}.kommo.com")
    assert outcome.status == "connected"
    return org, outcome.result.account, acc


def fast(service, redis, rps=500):
    # Only for tests about refresh concurrency: pacing is tested on its own below.
    service.client.limiter = RateLimiter(redis, rps, prefix="kommo:rl-fast")
    return service


async def test_fifty_concurrent_calls_with_locally_expired_token_refresh_once_across_processes(
        kommo, core_services, fake_kommo, redis_client):
    storage = core_services.storage
    org, account, fake_acc = await connect_oauth(kommo, storage, fake_kommo)
    fake_kommo.rate_limit = 10_000
    await storage.kommo_accounts.update(org.id, account.id, {"expires_at": utcnow() - timedelta(minutes=1)})
    fake_kommo.book.expire_all_access()
    other = fast(second_process(core_services), redis_client)  # a second "process": own session, same Redis
    fast(kommo, redis_client)
    try:
        calls = []
        for i in range(50):
            service = kommo if i % 2 else other
            acc = await storage.kommo_accounts.get(org.id, account.id)  # each task loads its own copy
            calls.append(service.api.account(acc))
        results = await asyncio.gather(*calls)
    finally:
        await other.close()
    assert all(r["id"] == fake_acc.id for r in results)
    assert fake_kommo.refresh_calls == 1
    stored = await storage.kommo_accounts.get(org.id, account.id)
    assert aware(stored.expires_at) > utcnow() + timedelta(hours=23) and stored.status == ConnectionStatus.ACTIVE


async def test_fifty_concurrent_401s_refresh_once(kommo, core_services, fake_kommo, redis_client):
    storage = core_services.storage
    org, account, _ = await connect_oauth(kommo, storage, fake_kommo)
    fake_kommo.rate_limit = 10_000
    fake_kommo.book.expire_all_access()  # Kommo says expired while we still think it is valid
    fast(kommo, redis_client)
    acc = await storage.kommo_accounts.get(org.id, account.id)
    results = await asyncio.gather(*(kommo.api.pipelines(acc) for _ in range(50)))
    assert all(len(r) == 2 for r in results)
    assert fake_kommo.refresh_calls == 1


async def test_reused_refresh_token_marks_needs_reauth_and_alerts_once(kommo, core_services, fake_kommo):
    storage = core_services.storage
    org, account, _ = await connect_oauth(kommo, storage, fake_kommo)
    old = await storage.kommo_accounts.get(org.id, account.id)
    await kommo.tokens.refresh(await storage.kommo_accounts.get(org.id, account.id), min_validity=timedelta(days=2))
    await kommo.api.account(await storage.kommo_accounts.get(org.id, account.id))  # new pair used: old dies
    # Another writer restores the old pair (e.g. a stale backup): Kommo answers "revoked".
    await storage.kommo_accounts.update(org.id, account.id, {"secrets": old.secrets,
                                                             "expires_at": utcnow() - timedelta(seconds=1)})
    stale = await storage.kommo_accounts.get(org.id, account.id)
    with pytest.raises(KommoTokenRevoked):
        await kommo.api.account(stale)
    calls = fake_kommo.refresh_calls
    with pytest.raises((KommoTokenRevoked, KommoNotConnected)):
        await kommo.api.account(await storage.kommo_accounts.get(org.id, account.id))
    assert fake_kommo.refresh_calls == calls  # no endless retry
    stored = await storage.kommo_accounts.get(org.id, account.id)
    assert stored.status == ConnectionStatus.NEEDS_REAUTH and "revoked" in stored.status_reason
    alerts = await storage.notifications.pending(org.id)
    assert [a["kind"] for a in alerts] == ["kommo_needs_reauth"]


async def test_renamed_subdomain_is_followed_and_the_call_succeeds(kommo, core_services, fake_kommo):
    storage = core_services.storage
    org, account, fake_acc = await connect_oauth(kommo, storage, fake_kommo)
    old_host = (await storage.kommo_accounts.get(org.id, account.id)).host
    fake_acc.rename("acme-renamed")  # an admin renamed the account in Kommo: the old host is gone
    acc = await storage.kommo_accounts.get(org.id, account.id)
    info = await kommo.api.account(acc)  # 401 at the old host -> refresh 404 -> lookup -> new host
    assert info["subdomain"] == "acme-renamed" and acc.host == "acme-renamed.kommo.com"
    assert fake_kommo.subdomain_lookups == 1
    stored = await storage.kommo_accounts.get(org.id, account.id)
    assert stored.host == "acme-renamed.kommo.com" and stored.status == ConnectionStatus.ACTIVE
    alerts = await storage.notifications.pending(org.id)
    assert [(a["kind"], a["params"]["old_host"], a["params"]["new_host"]) for a in alerts] == [
        ("kommo_subdomain_changed", old_host, "acme-renamed.kommo.com")]
    assert (await kommo.api.account(stored))["id"] == fake_acc.id  # later calls go to the new host
    assert fake_kommo.subdomain_lookups == 1


async def test_refresh_refused_at_an_unrenamed_host_still_needs_reauth(kommo, core_services, fake_kommo):
    storage = core_services.storage
    org, account, _ = await connect_oauth(kommo, storage, fake_kommo)
    for state in fake_kommo.book.tokens.values():
        state.valid = False  # the integration was uninstalled: every token is dead
    fake_kommo.book.expire_all_access()
    acc = await storage.kommo_accounts.get(org.id, account.id)
    with pytest.raises(KommoTokenRevoked):
        await kommo.api.account(acc)
    stored = await storage.kommo_accounts.get(org.id, account.id)
    assert stored.status == ConnectionStatus.NEEDS_REAUTH and stored.host == account.host
    assert fake_kommo.subdomain_lookups == 0  # the lookup refused the dead refresh token: nothing moved


async def test_rename_reported_by_a_webhook_is_followed_on_a_long_lived_token(kommo, connected, core_services,
                                                                           fake_kommo):
    """A long-lived token has no refresh token to ask Kommo with; webhooks name the account's
    current subdomain, and our token answering there for the same account id is the proof."""
    storage = core_services.storage
    org, account, fake_acc = connected
    old_host = account.host
    fake_acc.rename("shop-renamed")
    with pytest.raises(KommoTokenRevoked):  # a call before any webhook: 401 at the old host
        await kommo.api.account(account)
    assert (await storage.kommo_accounts.get(org.id, account.id)).status == ConnectionStatus.NEEDS_REAUTH
    acc = await storage.kommo_accounts.get(org.id, account.id)
    probes = len(fake_kommo.requests)
    assert not await kommo.client.follow_reported_subdomain(acc, "someone-else")  # not our account's host
    assert not await kommo.client.follow_reported_subdomain(acc, "../evil")  # not a subdomain: no call
    assert len(fake_kommo.requests) == probes + 1
    assert await kommo.client.follow_reported_subdomain(acc, "Shop-Renamed")
    stored = await storage.kommo_accounts.get(org.id, account.id)
    assert stored.host == "shop-renamed.kommo.com" and stored.status == ConnectionStatus.ACTIVE
    assert (await kommo.api.account(stored))["id"] == fake_acc.id  # calls work again, at the new host
    kinds = [(a["kind"], a["params"].get("new_host")) for a in await storage.notifications.pending(org.id)]
    assert ("kommo_subdomain_changed", "shop-renamed.kommo.com") in kinds and old_host != stored.host
    probes = len(fake_kommo.requests)
    assert not await kommo.client.follow_reported_subdomain(stored, "someone-else")  # checked once per 10 min
    assert not await kommo.client.follow_reported_subdomain(stored, "shop-renamed")  # the stored name: no call
    assert len(fake_kommo.requests) == probes


async def test_a_403_at_a_reported_host_does_not_block_the_connection(kommo, connected, core_services, fake_kommo):
    storage = core_services.storage
    org, account, fake_acc = connected
    fake_acc.rename("shop-forbidden")
    fake_acc.blocked = True  # Kommo answers 403 there
    assert not await kommo.client.follow_reported_subdomain(account, "shop-forbidden")
    stored = await storage.kommo_accounts.get(org.id, account.id)
    assert stored.status == ConnectionStatus.ACTIVE and stored.host == account.host
    assert [a["kind"] for a in await storage.notifications.pending(org.id)] == []


async def test_long_lived_token_rejected_needs_reauth(kommo, connected, core_services, fake_kommo):
    org, account, fake_acc = connected
    fake_kommo.book.tokens.clear()  # revoked in Kommo's Authorization tab
    with pytest.raises(KommoTokenRevoked):
        await kommo.api.account(account)
    stored = await core_services.storage.kommo_accounts.get(org.id, account.id)
    assert stored.status == ConnectionStatus.NEEDS_REAUTH and stored.auth_kind == AuthKind.LONG_LIVED
    assert fake_kommo.refresh_calls == 0


async def test_repeated_403_blocks_account_alerts_with_the_reason_and_stops_calling(kommo, connected, core_services,
                                                                                    fake_kommo):
    org, account, fake_acc = connected
    fake_acc.blocked = True
    before = len(fake_kommo.requests)
    for _ in range(2):  # one 403 fails its call only: it may be one lead this user may not see
        with pytest.raises(KommoForbidden):
            await kommo.api.lead(account, next(iter(fake_acc.leads)))
        stored = await core_services.storage.kommo_accounts.get(org.id, account.id)
        assert stored.status == ConnectionStatus.ACTIVE
    with pytest.raises(KommoBlocked):
        await kommo.api.pipelines(account)
    assert len(fake_kommo.requests) == before + 3  # 403 is not retried
    with pytest.raises(KommoNotConnected):
        await kommo.api.pipelines(await core_services.storage.kommo_accounts.get(org.id, account.id))
    assert len(fake_kommo.requests) == before + 3  # and nothing more is sent
    stored = await core_services.storage.kommo_accounts.get(org.id, account.id)
    assert stored.status == ConnectionStatus.BLOCKED and "403" in stored.status_reason
    (alert,) = await core_services.storage.notifications.pending(org.id)
    assert alert["kind"] == "kommo_blocked"
    assert "3 requests" in alert["params"]["detail"] and "rights" in alert["params"]["detail"]
    # The console tells each operator why, in their language.
    org_doc = await core_services.storage.orgs.get(org.id)
    ru = notification_text(build_i18n(), "ru", org_doc, alert)
    assert "3 отказов (403) за 10 мин" in ru and "прав" in ru and "IP" in ru and "?" not in ru


async def test_pagination_follows_next_and_204_is_empty(kommo, connected, fake_kommo):
    org, account, fake_acc = connected
    fake_kommo.rate_limit = 10_000
    for i in range(600):
        fake_acc.leads[10_000 + i] = {"id": 10_000 + i, "pipeline_id": 3002, "status_id": 4101, "name": f"L{i}"}
    leads = await kommo.api.leads(account, {"pipeline_id": 3002})
    assert len(leads) == 600 and len({x["id"] for x in leads}) == 600
    pages = [r for r in fake_kommo.requests if r[2] == "/api/v4/leads"]
    assert len(pages) == 3  # 250 + 250 + 100, limit=250
    assert await kommo.api.leads(account, {"pipeline_id": 999}) == []  # 204
    assert await kommo.api.lead_notes(account, next(iter(fake_acc.leads))) == []


async def test_fault_mode_is_retried_and_retry_after_honoured(kommo, connected, fake_kommo):
    org, account, fake_acc = connected
    fake_kommo.fault_rate, fake_kommo.fault_kinds, fake_kommo.timeout_delay = 0.5, ("429", "500", "timeout"), 2.5
    fake_kommo.retry_after = 1
    results = [await kommo.api.pipelines(account) for _ in range(6)]
    assert all(len(r) == 2 for r in results)
    assert fake_kommo.faults > 0


@pytest.mark.slow
async def test_burst_of_200_calls_never_exceeds_kommo_rate(kommo, connected, core_services, fake_kommo):
    """Two processes (two services, one Redis) send 200 calls for one account at once."""
    org, account, fake_acc = connected
    other = second_process(core_services)
    try:
        calls = [(kommo if i % 2 else other).api.account(account) for i in range(200)]
        results = await asyncio.gather(*calls)
    finally:
        await other.close()
    assert len(results) == 200
    assert fake_kommo.rate_limited == 0
    assert fake_kommo.max_in_window(fake_acc.id) <= 7
