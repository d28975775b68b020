"""Issue 17: `knowledge add <url>` fetched any host and followed redirects anywhere (server-side
request forgery). Every hop must lead to a public address, in any spelling, and a refused link
stores nothing."""

from __future__ import annotations

import pytest
from aiohttp import web

from core.ai.ingest.extract.html import extract_url
from core.ai.ingest.sources import SourceIntake
from core.config import KnowledgeSettings
from core.security.egress import EgressPolicy, EgressRefused, PublicResolver, check_url

DEFAULT = EgressPolicy()
LOOPBACK_TRUSTED = EgressPolicy.of(["127.0.0.1"], [80, 443])


@pytest.mark.parametrize("url,why", [
    ("http://127.0.0.1/", "loopback"),
    ("http://localhost/admin", "loopback"),  # a name that resolves there
    ("http://2130706433/", "loopback"),  # decimal
    ("http://0x7f000001/", "loopback"),  # hex
    ("http://0177.0.0.1/", "loopback"),  # octal
    ("http://127.1/", "loopback"),  # short form
    ("http://[::1]/", "loopback"),
    ("http://[::ffff:127.0.0.1]/", "loopback"),  # IPv6-mapped IPv4
    ("http://169.254.169.254/latest/meta-data/", "link-local"),  # cloud metadata
    ("http://[fe80::1]/", "link-local"),
    ("http://10.1.2.3/", "private"),
    ("http://192.168.0.10/", "private"),
    ("http://172.16.5.5/", "private"),
    ("http://[fd12:3456::1]/", "private"),
    ("http://100.100.100.200/", "carrier-grade NAT"),  # Alibaba's metadata address
    ("http://224.0.0.1/", "multicast"),
    ("http://0.0.0.0/", "unspecified"),
    ("https://93.184.216.34:8443/", "port 8443"),
    ("ftp://93.184.216.34/file", "only http"),
    ("file:///etc/passwd", "only http"),
    ("http://user:secret@93.184.216.34/", "user name or password"),
])
async def test_private_and_odd_destinations_are_refused_with_the_reason(url, why):
    with pytest.raises(EgressRefused, match=why):
        await check_url(url, DEFAULT)


async def test_the_resolver_hands_out_only_checked_addresses():
    """The connector connects to what the resolver returns, so the address connected to is the
    address checked: a name re-resolving elsewhere between check and connect gains nothing."""
    with pytest.raises(EgressRefused, match="loopback"):
        await PublicResolver(DEFAULT).resolve("localhost", 80)
    [trusted] = [r for r in await PublicResolver(LOOPBACK_TRUSTED).resolve("127.0.0.1", 80)]
    assert trusted["host"] == "127.0.0.1"


@pytest.fixture
async def redirecting_site():
    hits = {"secret": 0}

    async def to_localhost(request):
        raise web.HTTPFound(f"http://localhost:{request.url.port}/secret")

    async def to_metadata(_request):
        raise web.HTTPFound("http://169.254.169.254/latest/meta-data/iam/")

    async def secret(_request):
        hits["secret"] += 1
        return web.Response(text="<html><body><article><p>internal</p></article></body></html>",
                            content_type="text/html")

    app = web.Application()
    app.add_routes([web.get("/to-localhost", to_localhost), web.get("/to-metadata", to_metadata),
                    web.get("/secret", secret)])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", hits
    finally:
        await runner.cleanup()


async def test_redirects_into_private_addresses_are_refused(redirecting_site):
    base, hits = redirecting_site
    policy = EgressPolicy.of(["127.0.0.1"], [80, 443, int(base.rsplit(":", 1)[1])])
    with pytest.raises(EgressRefused, match="localhost .*loopback"):
        await extract_url(f"{base}/to-localhost", max_bytes=10_000, timeout_s=5, policy=policy)
    with pytest.raises(EgressRefused, match="169.254.169.254 is a link-local"):
        await extract_url(f"{base}/to-metadata", max_bytes=10_000, timeout_s=5, policy=policy)
    assert hits["secret"] == 0


async def test_a_refused_link_stores_no_source(storage):

    intake = SourceIntake(storage, KnowledgeSettings())
    with pytest.raises(EgressRefused, match="link-local"):
        await intake.add_url("org_a", "agt_a", "http://169.254.169.254/latest/meta-data/")
    assert await storage.knowledge.for_agent("org_a", "agt_a") == []
    trusting = SourceIntake(storage, KnowledgeSettings(url_allow_hosts="127.0.0.1", url_allowed_ports="80"))
    await trusting.add_url("org_a", "agt_a", "http://127.0.0.1/wiki")  # an operator's named internal host
    assert len(await storage.knowledge.for_agent("org_a", "agt_a")) == 1
