"""Kommo as Kommo behaves (issue 15, section 4): renamed subdomains on both domains, 403 from
admin-only calls, when an account is really stopped, and the OAuth link per domain. Against the
fake Kommo over real HTTP, with the test Mongo and Redis."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from core.kommo.errors import KommoError, KommoTokenRevoked
from core.kommo.http.hosts import lookup_base_domain
from core.kommo.service import build_kommo
from core.models.kommo import ConnectionStatus


async def connect_oauth(kommo, storage, fake, subdomain: str, base_domain: str):
    org = await storage.orgs.create(f"{subdomain} org")
    acc = fake.add_account(subdomain, base_domain=base_domain)
    url = await kommo.oauth.authorize_url(org.id, 42)
    state = parse_qs(urlsplit(url).query)["state"][0]
    outcome = await kommo.oauth.handle_callback(code=fake.book.issue_code(acc.id), state=state,
                                                referer=f"{subdomain}.{base_domain}")
    return org, outcome.result.account, acc


def test_the_subdomain_lookup_names_the_whole_host_not_the_base_domain():
    assert lookup_base_domain({"subdomain": "shop2", "domain": "shop2.amocrm.ru", "top_level_domain": "ru"},
                              "kommo.com") == "amocrm.ru"
    assert lookup_base_domain({"subdomain": "shop2", "domain": "amocrm.ru"}, "kommo.com") == "amocrm.ru"
    assert lookup_base_domain({"subdomain": "shop2", "domain": "evil.example", "top_level_domain": "com"},
                              "amocrm.ru") == "kommo.com"
    assert lookup_base_domain({"subdomain": "shop2", "domain": "evil.example"}, "amocrm.ru") == "amocrm.ru"


@pytest.mark.parametrize("base_domain", ["amocrm.ru", "kommo.com"])
async def test_renamed_account_is_followed_to_its_real_host(kommo, core_services, fake_kommo, base_domain):
    storage = core_services.storage
    org, account, fake_acc = await connect_oauth(kommo, storage, fake_kommo, "shop", base_domain)
    assert account.host == f"shop.{base_domain}"
    fake_acc.rename("shop2")
    acc = await storage.kommo_accounts.get(org.id, account.id)
    info = await kommo.api.account(acc)  # 401 at the old host -> refresh 404 -> lookup -> the new host
    assert info["id"] == fake_acc.id
    stored = await storage.kommo_accounts.get(org.id, account.id)
    assert (stored.subdomain, stored.base_domain) == ("shop2", base_domain)
    assert stored.host == f"shop2.{base_domain}"  # not shop2.shop2.<domain>
    assert await kommo.api.pipelines(stored)  # and later calls land there too
    assert f"shop2.{base_domain}" in fake_kommo.api_hosts
    assert not [h for h in fake_kommo.api_hosts if h.count("shop2") > 1]


async def test_a_non_admin_token_gets_403_on_users_and_sync_still_completes(kommo, core_services, fake_kommo):
    storage = core_services.storage
    org = await storage.orgs.create("Managers only")
    fake_acc = fake_kommo.add_account("shop")
    manager = fake_acc.add_manager("Sales manager")
    token = fake_kommo.book.issue_long_lived(fake_acc.id, user_id=manager)
    result = await kommo.connections.connect_long_lived(org.id, "shop", token)
    assert result.sync_error is None
    assert result.sync.pipelines == 2 and result.sync.fields == 6 and result.sync.users == 0
    assert "forbidden" in result.sync.users_skipped
    stored = await storage.kommo_accounts.get(org.id, result.account.id)
    assert stored.status == ConnectionStatus.ACTIVE and stored.bot_user_id == manager
    assert not result.webhook_registered  # admin-only as well: the URL is shown to paste by hand
    assert [n["kind"] for n in await storage.notifications.pending(org.id)] == []
    # Calls go on after the 403s: a second sync, then a lead read.
    again = await kommo.sync.sync_account(stored)
    assert again.pipelines == 2 and again.users_skipped
    assert (await kommo.api.lead(stored, next(iter(fake_acc.leads))))["id"] in fake_acc.leads


async def test_a_401_to_a_freshly_refreshed_token_stops_the_account_and_says_why(kommo, core_services, fake_kommo):
    storage = core_services.storage
    org, account, fake_acc = await connect_oauth(kommo, storage, fake_kommo, "shop", "kommo.com")
    fake_acc.refuses_tokens = True  # Kommo turns every token down, even the one it issues now
    acc = await storage.kommo_accounts.get(org.id, account.id)
    with pytest.raises(KommoTokenRevoked):
        await kommo.api.pipelines(acc)
    assert fake_kommo.refresh_calls == 1  # one refresh, not a loop
    stored = await storage.kommo_accounts.get(org.id, account.id)
    assert stored.status == ConnectionStatus.NEEDS_REAUTH and "refreshed token (401)" in stored.status_reason
    (alert,) = await storage.notifications.pending(org.id)
    assert alert["kind"] == "kommo_needs_reauth" and "401" in alert["params"]["reason"]
    sent = len(fake_kommo.requests)
    with pytest.raises(Exception, match="calls are stopped"):
        await kommo.api.pipelines(stored)
    assert len(fake_kommo.requests) == sent


async def test_oauth_link_for_kommo_and_amocrm_accounts(kommo, core_services, fake_kommo):
    storage = core_services.storage
    org = await storage.orgs.create("New")
    assert (await kommo.oauth.authorize_url(org.id, 1)).startswith("https://www.kommo.com/oauth?")
    assert (await kommo.oauth.authorize_url(org.id, 1, domain="amocrm.ru")).startswith("https://www.amocrm.ru/oauth?")
    ru_org, ru_account, _ = await connect_oauth(kommo, storage, fake_kommo, "shop", "amocrm.ru")
    assert ru_account.base_domain == "amocrm.ru"
    # Reconnecting an amoCRM account sends its admin to amoCRM's consent page by itself.
    url = await kommo.oauth.authorize_url(ru_org.id, 1)
    assert url.startswith("https://www.amocrm.ru/oauth?")
    query = parse_qs(urlsplit(url).query)
    assert query["client_id"] == [fake_kommo.client_id] and query["mode"] == ["post_message"]
    with pytest.raises(Exception, match="kommo.com or amocrm.ru"):
        await kommo.oauth.authorize_url(org.id, 1, domain="evil.example")


async def test_reconnecting_a_blocked_account_lifts_the_block_in_every_process(kommo, core_services, fake_kommo):
    storage = core_services.storage
    org = await storage.orgs.create("Blocked")
    fake_acc = fake_kommo.add_account("shop")
    result = await kommo.connections.connect_long_lived(org.id, "shop", fake_kommo.book.issue_long_lived(fake_acc.id))
    worker = build_kommo(core_services.settings.kommo, storage=storage, redis=core_services.redis,
                         keyring=core_services.keyring)  # another process: it sees the 403s, not the reconnect
    try:
        fake_acc.blocked = True
        for _ in range(3):
            with pytest.raises(KommoError):
                await worker.api.pipelines(result.account)
        assert (await storage.kommo_accounts.for_org(org.id)).status == ConnectionStatus.BLOCKED
        fake_acc.blocked = False  # the admin fixed the user's rights and reconnects from the console
        await kommo.connections.connect_long_lived(org.id, "shop", fake_kommo.book.issue_long_lived(fake_acc.id))
        account = await storage.kommo_accounts.for_org(org.id)
        assert account.status == ConnectionStatus.ACTIVE
        assert len(await worker.api.pipelines(account)) == 2  # the worker calls again
    finally:
        await worker.close()
