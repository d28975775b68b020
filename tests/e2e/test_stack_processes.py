"""Every process works while `kommo-agent up` runs (issue 23), through the CLI as a user runs it.

One `up` session for the module (its worker owns the embedded vector store; a Telegram bot with a
bad token keeps failing and is restarted), on free ports, with the fake Kommo and the fake LLM
served from this test process: the worker answers a customer, then `knowledge add`, `ask` and
`knowledge remove` succeed through it; `ask` answers while the worker ingests a large source;
SIGINT during that ingestion ends in `failed: interrupted` and a re-run succeeds; a command run
from another directory uses the same home, and a command of another home refuses the stack's
servers. A separate short `up` is interrupted 2 s after its start.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import pytest

from core.storage.embedded import free_port
from tests.fakes.kommo import FakeKommo
from tests.fakes.llm import FakeLLMServer

pytestmark = pytest.mark.timeout(900)
ROOT = Path(__file__).resolve().parents[2]
CLEARED = ("MONGO_", "REDIS_", "QDRANT_", "LLM_", "TELEGRAM_", "SECRETS_", "WEB_", "KOMMO_", "WORKER_",
           "DATA_DIR", "KNOWLEDGE_")


def _base_env(home: Path, ports: dict[str, int]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(CLEARED)}
    env.update(PYTHONPATH=str(ROOT), KOMMO_AGENT_HOME=str(home), MONGO_EMBEDDED_PORT=str(ports["mongo"]),
               REDIS_EMBEDDED_PORT=str(ports["redis"]), WEB_PORT=str(ports["web"]), LOG_LEVEL="WARNING")
    return env


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "cli", *args]


@dataclass
class Up:
    home: Path
    env: dict[str, str]
    proc: subprocess.Popen
    log: Path
    fake: FakeKommo
    hook_url: str = ""
    org: str = ""
    agent: str = ""
    acc: object = None
    llm: FakeLLMServer | None = None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def run(self, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
                  timeout: float = 300) -> subprocess.CompletedProcess:
        return await asyncio.to_thread(subprocess.run, _cli(*args), cwd=cwd or self.home, env=env or self.env,
                                       capture_output=True, text=True, timeout=timeout)

    async def ok(self, *args: str, **kw) -> str:
        done = await self.run(*args, **kw)
        assert done.returncode == 0, f"{args}: rc={done.returncode}\n{done.stdout}\n{done.stderr}"
        _assert_plain(done.stdout + done.stderr)
        return done.stdout

    async def sources(self) -> list[list[str]]:
        out = await self.ok("knowledge", "list", "--org", self.org, "--agent", self.agent)
        return [line.split("\t") for line in out.splitlines() if line.strip()]


def _assert_plain(text: str) -> None:
    """What a user sees: no traceback, no WAL lock error, no exception class names."""
    for bad in ("Traceback", "WouldBlock", "Can't init WAL", "ConnectionError", "Exception:"):
        assert bad not in text, f"{bad!r} reached the user:\n{text[-2000:]}"


async def _wait_for(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


async def _webhook(up: Up, acc, marker: str) -> None:
    lead_id = next(iter(acc.leads))
    body = urlencode({
        "message[add][0][id]": f"msg-{marker}", "message[add][0][chat_id]": f"chat-{marker}",
        "message[add][0][talk_id]": "1", "message[add][0][contact_id]": "1",
        "message[add][0][text]": f"{marker} how much is delivery?",
        "message[add][0][created_at]": str(int(time.time())), "message[add][0][element_type]": "2",
        "message[add][0][entity_type]": "lead", "message[add][0][element_id]": str(lead_id),
        "message[add][0][entity_id]": str(lead_id), "message[add][0][type]": "incoming",
        "message[add][0][author][id]": "c1", "message[add][0][author][type]": "external",
        "message[add][0][author][name]": "Customer", "message[add][0][origin]": "telegram",
        "account[subdomain]": acc.subdomain, "account[id]": str(acc.id),
    })
    async with aiohttp.ClientSession() as http, http.post(
            up.hook_url, data=body, headers={"Content-Type": "application/x-www-form-urlencoded"}) as resp:
        assert resp.status == 200, await resp.text()


def _replied(acc, marker: str) -> bool:
    return any(marker in str(n.get("params", {}).get("text", "")) for n in acc.notes)


@pytest.fixture(scope="module")
async def up(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("home")
    ports = {"mongo": free_port(), "redis": free_port(), "web": free_port()}
    fake = FakeKommo()
    await fake.start()
    llm = FakeLLMServer()
    await llm.start()
    acc = fake.add_account("shop-up")
    env = _base_env(home, ports)
    env.update(KOMMO_API_BASE_URL=fake.base_url, KOMMO_PUBLIC_BASE_URL=f"http://127.0.0.1:{ports['web']}",
               KOMMO_REQUEST_TIMEOUT_S="3", LLM_BASE_URL=llm.base_url, LLM_API_KEY="sk-e2e-" + "x" * 30,
               WORKER_DEBOUNCE_S="0", KNOWLEDGE_INGEST_HEARTBEAT_S="1",
               # A token Telegram would refuse, at an address where nothing answers: the bot fails.
               TELEGRAM_BOT_TOKEN="not-a-token", TELEGRAM_API_BASE_URL=f"http://127.0.0.1:{free_port()}")
    log = home.parent / f"{home.name}-up.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(_cli("up", "--no-demo", "--ready-timeout", "180"), cwd=home, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    stack = Up(home, env, proc, log, fake, llm=llm)

    async def ready():
        assert proc.poll() is None, stack.output()[-3000:]
        return "Press Ctrl-C to stop." in stack.output()

    try:
        await _wait_for(ready, 200, "up to be ready")
        stack.org = (await stack.ok("org", "create", "Shop")).strip()
        stack.agent = (await stack.ok("agent", "create", "--org", "Shop", "--name", "Sales")).strip()
        token = home.parent / f"{home.name}-token"
        token.write_text(fake.book.issue_long_lived(acc.id))
        connected = await stack.ok("kommo", "connect", "--org", stack.org, "--subdomain", acc.subdomain,
                                   "--token-file", str(token))
        stack.hook_url = next(w for w in connected.split() if "/webhooks/kommo/" in w)
        stack.acc = acc
        yield stack
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
        await fake.stop()
        await llm.close()


async def test_worker_answers_a_customer_then_knowledge_and_ask_go_through_it(up: Up, tmp_path: Path):
    await _webhook(up, up.acc, "first-turn")
    await _wait_for(lambda: asyncio.sleep(0, _replied(up.acc, "first-turn")), 240, "the worker's reply")
    # The worker has opened the vector store for that turn: from here on a second opener fails.
    faq = tmp_path / "delivery.md"
    faq.write_text("# Delivery\n\nDelivery to the door costs 7 euros and takes three days.\n")
    out = await up.ok("knowledge", "add", "--org", "Shop", "--agent", "Sales", str(faq))
    source_id = out.strip().splitlines()[-1]
    assert source_id.startswith("src_")
    again = await up.run("knowledge", "add", "--org", up.org, "--agent", up.agent, str(faq))
    assert again.returncode == 0 and "already added" in again.stderr
    asked_before = len(up.llm.requests)
    answer = await up.ok("ask", "--org", up.org, "--agent", "Sales", "how much does delivery cost?")
    assert answer.startswith("answer (llm, en):\nOK: how much does delivery cost?")
    # The worker retrieved the passage just added and gave it to the LLM.
    assert any("7 euros" in json.dumps(r, ensure_ascii=False) for r in up.llm.requests[asked_before:])
    assert await up.ok("knowledge", "remove", "--org", up.org, source_id) == f"removed {source_id}\n"
    assert await up.sources() == []
    unknown = await up.run("knowledge", "list", "--org", up.org, "--agent", "agt_nope")
    assert unknown.returncode == 1 and unknown.stderr.startswith("error: no agent agt_nope")


async def test_ask_answers_during_a_large_ingestion_which_sigint_interrupts_and_a_rerun_completes(
        up: Up, tmp_path: Path):
    rows = ["sku,name,price"] + [f"A{i:05d},Garden chair model {i} with cushion,{100 + i}" for i in range(1000)]
    big = tmp_path / "prices.csv"
    big.write_text("\n".join(rows) + "\n")
    adding = subprocess.Popen(_cli("knowledge", "add", "--org", up.org, "--agent", up.agent, str(big)),
                              cwd=up.home, env=up.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    async def embedding():
        return any(s[1] == "embedding" for s in await up.sources())

    await _wait_for(embedding, 240, "the large source to be embedding")
    answer = await up.ok("ask", "--org", up.org, "--agent", up.agent, "what is the price of a chair?",
                         timeout=240)
    assert answer.startswith("answer (")
    assert [s[1] for s in await up.sources()] == ["embedding"]  # still working on it meanwhile
    adding.send_signal(signal.SIGINT)
    out, err = await asyncio.to_thread(adding.communicate, timeout=60)
    assert adding.returncode == 130, err
    _assert_plain(out + err)
    assert "interrupted" in err
    [source] = await up.sources()
    assert source[1] == "failed" and source[-1] == "interrupted"
    rerun = await up.run("knowledge", "add", "--org", up.org, "--agent", up.agent, str(big), timeout=900)
    assert rerun.returncode == 0, rerun.stderr
    [source] = await up.sources()
    assert source[0] == rerun.stdout.strip() and source[1] == "ready"


async def test_a_command_from_elsewhere_uses_the_same_home_and_another_home_is_refused(up: Up, tmp_path: Path):
    elsewhere = tmp_path / "some" / "other" / "folder"
    elsewhere.mkdir(parents=True)
    listed = await up.ok("org", "list", cwd=elsewhere)
    assert up.org in listed
    assert not (elsewhere / "var").exists() and list(elsewhere.iterdir()) == []
    other = {**up.env, "KOMMO_AGENT_HOME": str(tmp_path / "other-home")}
    refused = await up.run("org", "list", env=other)
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: port ") and "another MongoDB" in refused.stderr
    assert up.org not in refused.stdout
    shown = await up.ok("--help", cwd=elsewhere)
    assert f"Home: {up.home}" in shown.replace("\n", " ")


async def test_a_bot_with_a_bad_token_is_restarted_and_webhooks_keep_working(up: Up):
    await _wait_for(lambda: asyncio.sleep(0, "Restarting it in" in up.output()), 60, "the bot's restart notice")
    assert f"home: {up.home}" in up.output()
    assert up.proc.poll() is None
    await _webhook(up, up.acc, "after-bot-failed")
    await _wait_for(lambda: asyncio.sleep(0, _replied(up.acc, "after-bot-failed")), 120, "a reply")
    assert up.proc.poll() is None


def _processes_with(home: Path) -> list[int]:
    """Processes whose environment names this home (every child of `up` inherits it)."""
    mark = f"KOMMO_AGENT_HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if mark in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc to find the children")
def test_sigint_two_seconds_into_up_stops_everything_within_five_seconds(tmp_path: Path):
    home = tmp_path / "home"
    env = _base_env(home, {"mongo": free_port(), "redis": free_port(), "web": free_port()})
    proc = subprocess.Popen(_cli("up", "--no-demo"), cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT,
                            text=True)
    time.sleep(2)
    assert _processes_with(home), "up started nothing in 2 s"
    proc.send_signal(signal.SIGINT)
    started = time.monotonic()
    out, _ = proc.communicate(timeout=30)
    took = time.monotonic() - started
    assert took < 5, f"up took {took:.1f}s to stop:\n{out}"
    assert "Traceback" not in out
    deadline = time.monotonic() + 2
    while _processes_with(home) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_with(home) == []
