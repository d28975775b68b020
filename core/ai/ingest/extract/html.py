"""HTML pages and URLs: the main text (trafilatura), headings kept; fetching with limits.

Fetching caps the time, the size (read in pieces, stopped at the limit) and the content type;
the optional crawl follows same-site links breadth-first up to a page cap.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urldefrag, urljoin, urlparse

import aiohttp
import lxml.html
import trafilatura

from core.ai.errors import ExtractionError
from core.ai.ingest.extract.base import Section
from core.ai.ingest.extract.text import decode_text, parse_markdown

HTML_TYPES = ("text/html", "application/xhtml+xml", "text/plain")


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


async def fetch(session: aiohttp.ClientSession, url: str, *, max_bytes: int, timeout_s: float) -> tuple[str, str]:
    """(final url, decoded body); refuses non-HTML content, oversize bodies and slow servers."""
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout_s),
                               headers={"User-Agent": "KommoAgent/0.1 (+knowledge import)"}) as resp:
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
            return str(resp.url), decode_text(bytes(body))
    except TimeoutError:
        raise ExtractionError(f"{url} did not answer within {timeout_s:g} s") from None
    except aiohttp.ClientError as exc:
        raise ExtractionError(f"{url} cannot be fetched ({exc.__class__.__name__}: {exc})") from None


async def extract_url(url: str, *, max_bytes: int, timeout_s: float, crawl: bool = False,
                      max_pages: int = 20) -> list[Section]:
    if urlparse(url).scheme not in ("http", "https"):
        raise ExtractionError("only http:// and https:// links can be imported")
    sections: list[Section] = []
    queue, seen = [url], {url}
    async with aiohttp.ClientSession() as session:
        while queue and len(seen) - len(queue) < max_pages:
            current = queue.pop(0)
            try:
                final, html = await fetch(session, current, max_bytes=max_bytes, timeout_s=timeout_s)
                page = await asyncio.to_thread(extract_html, html, "", final)
            except ExtractionError:
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
