"""Kommo's 7 requests/s per calling IP, measured at the fake Kommo (which answers 429 as soon as
more than 7 calls from one IP arrive within a second, whatever accounts they are for): two
accounts in two processes share one budget, a busy account does not starve a quiet one, and a
429 still pauses every caller."""

from __future__ import annotations

import asyncio
import time

from core.kommo.service import build_kommo


def second_process(services):
    """The Kommo area as another process builds it: its own HTTP session, the same Redis."""
    return build_kommo(services.settings.kommo, storage=services.storage, redis=services.redis,
                       keyring=services.keyring)


async def connect(kommo, storage, fake, name: str):
    org = await storage.orgs.create(name)
    fake_acc = fake.add_account(name)
    result = await kommo.connections.connect_long_lived(org.id, name, fake.book.issue_long_lived(fake_acc.id))
    return result.account, fake_acc


async def test_two_accounts_share_one_ip_budget_and_the_quiet_one_is_not_starved(kommo, core_services, fake_kommo):
    storage = core_services.storage
    busy, busy_fake = await connect(kommo, storage, fake_kommo, "busy")
    quiet, quiet_fake = await connect(kommo, storage, fake_kommo, "quiet")
    other = second_process(core_services)
    await asyncio.sleep(1.1)  # the connects' calls are out of the fake's 1-second window
    start = len(fake_kommo.requests)
    done: dict[str, list[float]] = {"busy": [], "quiet": []}

    async def call(service, account, name):
        await service.api.pipelines(account)
        done[name].append(time.monotonic())

    try:
        busy_calls = [call(kommo if i % 2 else other, busy, "busy") for i in range(36)]
        await asyncio.sleep(0)
        quiet_calls = [call(other if i % 2 else kommo, quiet, "quiet") for i in range(6)]
        await asyncio.gather(*busy_calls, *quiet_calls)
    finally:
        await other.close()
    assert len(done["busy"]) == 36 and len(done["quiet"]) == 6
    assert fake_kommo.rate_limited == 0  # Kommo never had to push back
    assert fake_kommo.max_in_window() <= 7  # both accounts together, as Kommo counts them
    calls = fake_kommo.requests[start:]
    assert {a for a, *_ in calls} == {busy_fake.id, quiet_fake.id}
    # Fair shares: the quiet account's few calls went out beside the busy one's, not after them.
    quiet_last = max(done["quiet"])
    assert sum(1 for t in done["busy"] if t <= quiet_last) < 24, "the busy account went first"


async def test_a_429_pauses_every_account_of_the_ip_and_calls_still_succeed(kommo, core_services, fake_kommo):
    storage = core_services.storage
    first, _ = await connect(kommo, storage, fake_kommo, "first")
    second, _ = await connect(kommo, storage, fake_kommo, "second")
    await asyncio.sleep(1.1)
    fake_kommo.rate_limit, fake_kommo.retry_after = 3, 1  # stricter than our pace: Kommo answers 429
    start = len(fake_kommo.requests)
    results = await asyncio.gather(*[kommo.api.pipelines(first if i % 2 else second) for i in range(16)])
    assert all(len(r) == 2 for r in results)
    assert fake_kommo.rate_limited > 0
    times = [t for *_, t in fake_kommo.requests[start:]]
    # After Kommo said 429 (retry_after 1 s), calls of both accounts held off for the pause:
    # only calls already on their way land in its first moments, none in the rest of it (at our
    # pace of 5 a second, two or three would have).
    first_429 = fake_kommo.first_429_at
    assert first_429 is not None
    assert [t - first_429 for t in times if first_429 + 0.4 < t < first_429 + 0.95] == []
