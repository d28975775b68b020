"""Issue 17: webhook fuzzing across two tenants at once. Hostile bodies (out-of-range numbers,
huge item counts, broken encodings, conflicting keys, deep nesting, odd content types) go to
tenant A while tenant B sends well-formed webhooks at the same time through the same web app
and the same group commits: B gets 0 responses 5xx and every one of its events is stored and
enqueued; A gets only 2xx/4xx answers with a reason, never a 5xx.

The bodies come from hypothesis strategies, drawn deterministically (derandomize) before the
requests are sent, since the requests share one event loop and one served app."""

from __future__ import annotations

import asyncio
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fixtures.kommo import inbound_queue_length
from tests.fixtures.tenants import FORM

FUZZ_BODIES = 400
INT64 = 2**63 - 1

numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from([str(INT64), str(INT64 + 1), str(2**64), "-1", "0", "1e30", "0x10", "١٢٣", "9" * 40]),
)
texts = st.one_of(st.text(max_size=40), st.sampled_from(["", "%", "%%", "%zz", "%FF%FE", "&&", "=", "[]", "\x00"]))
entity = st.sampled_from(["leads", "contacts", "message", "talk", "unsorted", "task", "catalogs", "zzz", ""])
action = st.sampled_from(["add", "update", "delete", "status", "note", "restore", "weird", ""])
field = st.sampled_from(["id", "entity_id", "element_id", "talk_id", "contact_id", "created_user_id", "text",
                         "status_id", "updated_at", "chat_id", "author][id", "note][element_id"])


@st.composite
def hostile_body(draw) -> tuple[str, bytes, str]:
    """(shape, body, content type): a form body built from hostile parts, or raw bytes."""
    shape = draw(st.sampled_from(["pairs", "many_items", "raw", "deep", "conflict", "account"]))
    ctype = draw(st.sampled_from([FORM["Content-Type"]] * 6 + ["application/json", "text/plain", ""]))
    account = [("account[subdomain]", "{sub}"), ("account[id]", "{acc}")]
    if shape == "pairs":
        pairs = account + [(f"{draw(entity)}[{draw(action)}][{draw(st.integers(0, 3))}][{draw(field)}]",
                            draw(st.one_of(numbers, texts))) for _ in range(draw(st.integers(1, 12)))]
        body = urlencode(pairs)
    elif shape == "many_items":  # huge item counts, within the body size limit or past it
        n = draw(st.sampled_from([101, 500, 2000, 6000]))
        body = "&".join(["account%5Bsubdomain%5D={sub}"] + [f"leads%5Bdelete%5D%5B{i}%5D%5Bid%5D={i + 1}"
                                                           for i in range(n)])
    elif shape == "raw":
        body = draw(st.binary(max_size=300)).decode("latin-1")
    elif shape == "deep":
        body = "account%5Bsubdomain%5D={sub}&leads" + "%5Ba%5D" * draw(st.integers(10, 400)) + "=1"
    elif shape == "conflict":
        body = urlencode(account + [("leads[add][0][id]", "1"), ("leads[add][0][id][x]", "2"),
                                    ("leads[add]", draw(texts))])
    else:  # account fields themselves
        body = urlencode([("account[subdomain]", draw(texts)), ("account[id]", draw(numbers)),
                          ("message[add][0][id]", draw(texts))])
    return shape, body.encode("latin-1", errors="replace"), ctype


def draw_bodies(n: int) -> list[tuple[str, bytes, str]]:
    drawn: list[tuple[str, bytes, str]] = []

    @settings(max_examples=n, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(hostile_body())
    def collect(case):
        drawn.append(case)

    collect()
    return drawn


def fill(body: bytes, tenant) -> bytes:
    return (body.replace(b"{sub}", quote(tenant.fake_acc.subdomain).encode())
                .replace(b"{acc}", str(tenant.fake_acc.id).encode()))


@pytest.mark.intake_limits(webhook_events_per_minute=100_000, webhook_unknown_tokens_per_minute=100_000)
async def test_hostile_bodies_for_one_tenant_never_affect_the_other(two_tenants, redis_client):
    t = two_tenants
    cases = draw_bodies(FUZZ_BODIES)
    assert len(cases) >= FUZZ_BODIES * 0.9 and len({s for s, _, _ in cases}) == 6  # every shape drawn
    good_count = 120

    async def hostile(i: int, case):
        _shape, body, ctype = case
        headers = {"Content-Type": ctype} if ctype else {}
        url = t.a.url if i % 10 else f"/webhooks/kommo/{'x' * (i % 200)}"  # some to unknown tokens too
        resp = await t.client.post(url, data=fill(body, t.a), headers=headers)
        return resp.status, (await resp.read())[:200]

    async def good(i: int):
        resp = await t.client.post(t.b.url, data=t.b.message(f"ok-{i}"), headers=FORM)
        return resp.status

    hostile_tasks = [hostile(i, c) for i, c in enumerate(cases)]
    good_tasks = [good(i) for i in range(good_count)]
    # Interleaved, so B's requests share group commits with A's.
    mixed = [x for pair in zip(hostile_tasks[:good_count], good_tasks, strict=True) for x in pair]
    results = await asyncio.gather(*mixed, *hostile_tasks[good_count:])
    hostile_results = [r for r in results if isinstance(r, tuple)]
    good_results = [r for r in results if not isinstance(r, tuple)]
    assert good_results == [200] * good_count  # 0 responses 5xx (or anything else) for the well-formed tenant
    server_errors = [(s, b) for s, b in hostile_results if s >= 500]
    assert server_errors == []  # the hostile tenant gets reasons, never a 5xx
    assert {s for s, _ in hostile_results} <= {200, 400, 404, 413}
    assert await t.services.storage.events.count(t.b.org_id) == good_count
    assert await inbound_queue_length(redis_client, t.b.org_id) == good_count
    print(f"FUZZ bodies={len(hostile_results)} good={good_count} 5xx=0 "
          f"statuses={sorted({s for s, _ in hostile_results})}")
