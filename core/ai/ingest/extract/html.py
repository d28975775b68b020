"""HTML pages and URLs: the main text (trafilatura), headings kept; fetching with limits.

Fetching caps the time, the size (read in pieces, stopped at the limit) and the content type,
and goes only where `core.security.egress` allows: every hop (redirects are followed here, one
checked hop at a time) to public addresses only, connected to the very addresses checked. The
optional crawl follows same-site links breadth-first up to a page cap.
"""

from __future__ import annotations

import asyncio
import ipaddress
from urllib.parse import urldefrag, urljoin, urlparse

import aiohttp
import lxml.html
import trafilatura

from core.ai.errors import ExtractionError
from core.ai.ingest.extract.base import Section
from core.ai.ingest.extract.text import decode_text, parse_markdown
from core.errors import plain_reason
from core.security.egress import EgressPolicy, EgressRefused, PublicResolver, address_problem, check_url

HTML_TYPES = ("text/html", "application/xhtml+xml", "text/plain")
MAX_REDIRECTS = 5


def extract_html(html: str | bytes, title: str = "", url: str | None = None) -> list[Section]:
    if isinstance(html, bytes):
        html = decode_text(html)
    markdown = trafilatura.extract(html, url=url, output_format="markdown", include_tables=True,
                                   include_links=False, include_comments=False, favor_recall=True)
    if not markdown:
        raise ExtractionError("no readable main text was found on the page")
    page_title = title
    if not page_title:
        meta = trafilatura.extract_metadata(html)
        page_title = (meta.title if meta is not None and meta.title else "") or (url or "")
    return parse_markdown(markdown, page_title)


def same_site_links(html: str, base_url: str) -> list[str]:
    try:
        tree = lxml.html.fromstring(html)
    except (lxml.etree.ParserError, ValueError):
        return []
    host = urlparse(base_url).netloc
    out = []
    for href in tree.xpath("//a/@href"):
        link = urldefrag(urljoin(base_url, href))[0]
        parsed = urlparse(link)
        if parsed.scheme in ("http", "https") and parsed.netloc == host and link not in out:
            out.append(link)
    return out


async def fetch(session: aiohttp.ClientSession, url: str, *, max_bytes: int, timeout_s: float,
                policy: EgressPolicy) -> tuple[str, str]:
    """(final url, decoded body); refuses private destinations on any hop, non-HTML content,
    oversize bodies and slow servers."""
    try:
        async with asyncio.timeout(timeout_s):
            for _ in range(MAX_REDIRECTS + 1):
                await check_url(url, policy)
                async with session.get(url, allow_redirects=False,
                                       headers={"User-Agent": "KommoAgent/0.1 (+knowledge import)"}) as resp:
                    _check_peer(resp, url, policy)
                    if resp.status in (301, 302, 303, 307, 308) and resp.headers.get("Location"):
                        url = urldefrag(urljoin(str(resp.url), resp.headers["Location"]))[0]
                        continue
                    return str(resp.url), await _read_page(resp, url, max_bytes)
            raise ExtractionError(f"{url} redirects more than {MAX_REDIRECTS} times")
    except TimeoutError:
        raise ExtractionError(f"{url} did not answer within {timeout_s:g} s") from None
    except aiohttp.ClientError as exc:
        raise ExtractionError(f"{url} cannot be fetched ({plain_reason(exc)})") from None


def _check_peer(resp: aiohttp.ClientResponse, url: str, policy: EgressPolicy) -> None:
    """The address actually connected to passed the resolver; checked again, as a last guard."""
    peer = resp.connection.transport.get_extra_info("peername") if resp.connection and resp.connection.transport else None
    host = resp.url.host or ""
    if peer and not policy.trusted(host):
        why = address_problem(ipaddress.ip_address(peer[0].split("%")[0]))
        if why:
            raise EgressRefused(f"{url} led to {peer[0]}, {why}")


async def _read_page(resp: aiohttp.ClientResponse, url: str, max_bytes: int) -> str:
    if resp.status >= 400:
        raise ExtractionError(f"{url} answered HTTP {resp.status}", status=resp.status)
    ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if ctype and ctype not in HTML_TYPES:
        raise ExtractionError(f"{url} is {ctype}, not a web page; upload such files directly")
    if resp.content_length is not None and resp.content_length > max_bytes:
        raise ExtractionError(f"{url} is larger than the {max_bytes} byte limit")
    body = bytearray()
    async for piece in resp.content.iter_chunked(65536):
        body += piece
        if len(body) > max_bytes:
            raise ExtractionError(f"{url} is larger than the {max_bytes} byte limit")
    return decode_text(bytes(body))


async def extract_url(url: str, *, max_bytes: int, timeout_s: float, crawl: bool = False,
                      max_pages: int = 20, policy: EgressPolicy | None = None) -> list[Section]:
    policy = policy or EgressPolicy()
    await check_url(url, policy)
    sections: list[Section] = []
    queue, seen = [url], {url}
    connector = aiohttp.TCPConnector(resolver=PublicResolver(policy), use_dns_cache=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        while queue and len(seen) - len(queue) < max_pages:
            current = queue.pop(0)
            try:
                final, html = await fetch(session, current, max_bytes=max_bytes, timeout_s=timeout_s, policy=policy)
                page = await asyncio.to_thread(extract_html, html, "", final)
            except (ExtractionError, EgressRefused):
                if current == url:
                    raise  # the page the manager gave must work; crawled pages may fail quietly
                continue
            for s in page:
                s.metadata["url"] = final
            sections += page
            if crawl:
                for link in same_site_links(html, final):
                    if link not in seen and len(seen) < max_pages:
                        seen.add(link)
                        queue.append(link)
    return sections
