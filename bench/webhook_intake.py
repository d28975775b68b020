"""Webhook intake benchmark: our `POST /webhooks/kommo/{token}` vs a bare aiohttp 200 handler.

Both servers run in this process (one event loop, like one `web` process); a separate load
process (aiohttp client, N connections) drives each for the same duration with real-shaped,
~1 KB `message[add]` bodies, each with a fresh message id (so nothing is a duplicate). Starts
its own nx-27017 in a temp folder; Redis from REDIS_URL or 127.0.0.1:6379, db 15 (flushed).
After the run every acknowledged event is checked: stored in Mongo and present in the broker.

    .venv/bin/python bench/webhook_intake.py [--duration 8] [--connections 32]

Last line: RESULT ratio=<ours/bare rps> p99_ms=<ours> rps=<ours>
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cProfile
from urllib.parse import urlsplit

import aiohttp
import psutil
from aiohttp import web

from core.config import MongoSettings, RedisSettings, Settings
from core.ids import new_id, new_token
from core.kommo.auth.tokens import seal
from core.logging import configure_logging
from core.models.kommo import AuthKind, KommoAccount
from core.security.keyring import Keyring
from core.services import build_services
from core.storage.embedded import free_port, mongo_command, wait_for_port
from core.storage.repositories.kommo_accounts import hook_token_hash
from tasks.app import create_celery
from tasks.queue import CeleryTaskQueue
from web.app import create_app
from web.routes.kommo import KOMMO

TEMPLATE = Path(__file__).resolve().parents[2] / "shared/fixtures/kommo/webhooks_form/kommo2026_message_add_waba_text.pairs.json"


def body_template() -> str:
    """The captured Kommo message[add] body, its id replaced by a marker, padded to ~1 KB like
    real hooks with longer texts."""
    if TEMPLATE.exists():
        body = json.loads(TEMPLATE.read_text())["derived_body"]
        body = body.replace("ae7243c7-e973-4aa5-ad43-ae3a95d74233", "{MID}")
    else:
        body = ("account%5Bsubdomain%5D=acme&account%5Bid%5D=35199648&message%5Badd%5D%5B0%5D%5Bid%5D={MID}"
                "&message%5Badd%5D%5B0%5D%5Btext%5D=Hola")
    pad = "+%D0%97%D0%B4%D1%80%D0%B0%D0%B2%D1%81%D1%82%D0%B2%D1%83%D0%B9%D1%82%D0%B5"  # " Здравствуйте"
    while len(body) < 1000:
        body = body.replace("&message%5Badd%5D%5B0%5D%5Bcreated_at%5D", pad + "&message%5Badd%5D%5B0%5D%5Bcreated_at%5D", 1)
    return body


# ---- load process --------------------------------------------------------------------------------
def _summary(latencies: list[float], statuses: dict, acked: int, duration: float, cpu_s: float) -> dict:
    latencies.sort()
    n = len(latencies)
    return {"requests": n, "rps": n / duration, "p50_ms": latencies[n // 2] * 1000 if n else 0,
            "p99_ms": latencies[int(n * 0.99)] * 1000 if n else 0, "statuses": statuses, "acked": acked,
            "load_cpu_ms_per_req": cpu_s * 1000 / max(1, n)}


async def load_aiohttp(url: str, duration: float, connections: int, warmup: float) -> dict:
    """The first load generator: aiohttp's client. It costs several hundred microseconds of CPU
    per request, so on a 2-core box it, not the server, caps the bare handler."""

    template = body_template()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    acked: list[str] = []
    stop_at = time.perf_counter() + warmup + duration
    measure_from = time.perf_counter() + warmup
    headers = {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "amoCRM-Webhooks/3.0"}

    async def worker(session):
        while (now := time.perf_counter()) < stop_at:
            mid = str(uuid.uuid4())
            t0 = time.perf_counter()
            async with session.post(url, data=template.replace("{MID}", mid), headers=headers) as resp:
                await resp.read()
                status = resp.status
            t1 = time.perf_counter()
            if status == 200:
                acked.append(mid)
            if now >= measure_from:
                latencies.append(t1 - t0)
                statuses[status] = statuses.get(status, 0) + 1

    cpu0 = time.process_time()
    conn = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=conn) as session:
        await asyncio.gather(*(worker(session) for _ in range(connections)))
    return _summary(latencies, statuses, len(acked), duration, time.process_time() - cpu0)


class _RawConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection sending POSTs back to back (like one wrk connection):
    pre-built request bytes, and just enough response parsing (status, Content-Length)."""

    def __init__(self, run: dict) -> None:
        self.run = run
        self.buf = bytearray()
        self.need: int | None = None
        self.status = 0
        self.t0 = self.started = 0.0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        self._send()

    def _send(self) -> None:
        run = self.run
        now = time.perf_counter()
        if now >= run["stop_at"]:
            self.transport.close()
            return
        body = run["template"].replace(b"{MID}", str(uuid.uuid4()).encode())
        self.started, self.t0 = now, time.perf_counter()
        self.transport.write(run["head"] % len(body) + body)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.need is None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).lower()
            self.status = int(head[9:12])
            at = head.find(b"\r\ncontent-length:")
            if at < 0:
                raise RuntimeError("response without Content-Length")
            eol = head.find(b"\r\n", at + 2)
            length = int(head[at + 17:eol if eol > 0 else len(head)])
            self.need = end + 4 + length
        if len(self.buf) < self.need:
            return
        t1 = time.perf_counter()
        del self.buf[:self.need]
        self.need = None
        run = self.run
        if self.status == 200:
            run["acked"] += 1
        if self.started >= run["measure_from"]:
            run["latencies"].append(t1 - self.t0)
            run["statuses"][self.status] = run["statuses"].get(self.status, 0) + 1
        self._send()

    def connection_lost(self, exc) -> None:
        if not self.run["done"].done():
            self.run["closed"] += 1
            if self.run["closed"] == self.run["connections"]:
                self.run["done"].set_result(None)


async def load_raw(url: str, duration: float, connections: int, warmup: float) -> dict:
    """The default load generator: N raw keep-alive connections, each one request in flight at a
    time (closed loop, as wrk), costing a few tens of microseconds per request, so the servers
    are what is measured. Same bodies and headers as the aiohttp client."""

    parts = urlsplit(url)
    loop = asyncio.get_running_loop()
    head = (f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUser-Agent: amoCRM-Webhooks/3.0\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n").encode()
    now = time.perf_counter()
    run = {"template": body_template().encode(), "head": head, "stop_at": now + warmup + duration,
           "measure_from": now + warmup, "latencies": [], "statuses": {}, "acked": 0, "closed": 0,
           "connections": connections, "done": loop.create_future()}
    cpu0 = time.process_time()
    for _ in range(connections):
        await loop.create_connection(lambda: _RawConnection(run), parts.hostname, parts.port)
    await run["done"]
    return _summary(run["latencies"], run["statuses"], run["acked"], duration, time.process_time() - cpu0)


def run_load(url: str, args) -> dict:
    out = subprocess.run([sys.executable, __file__, "--load", url, "--duration", str(args.duration),
                          "--connections", str(args.connections), "--warmup", str(args.warmup),
                          "--client", args.client],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---- servers -------------------------------------------------------------------------------------
async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"


async def bare_app() -> web.Application:
    async def ok(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/webhooks/kommo/{token}", ok)
    return app


async def main(args) -> None:

    configure_logging("WARNING", json=True)
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0] + "/15"
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        mongo = subprocess.Popen(mongo_command(Path(tmp), port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_port(port, proc=mongo)
            settings = Settings(mongo=MongoSettings(url=f"mongodb://127.0.0.1:{port}/"), redis=RedisSettings(url=redis_url))
            services = await build_services(settings, keyring=Keyring(keys={"k1": os.urandom(32)}, primary="k1"))
            await services.redis.flushdb()
            org = await services.storage.orgs.create("Bench")
            hook = new_token(32)
            await services.storage.kommo_accounts.insert(org.id, KommoAccount(
                _id=new_id("kac"), org_id=org.id, subdomain="marketingfagmotorsurfacom", base_domain="amocrm.com",
                auth_kind=AuthKind.LONG_LIVED, secrets=seal(services.keyring, org.id, {"access_token": "x",
                                                                                      "hook_token": hook}),
                hook_token_hash=hook_token_hash(hook), account_id=35199648, bot_user_id=1))
            queue = CeleryTaskQueue(create_celery(redis_url))
            if args.diagnose_no_enqueue:  # diagnosis only: how much of the cost is the Celery publish
                class _NullQueue:
                    async def process_events(self, refs):
                        await services.redis.rpush("inbound", *[f"{o}:{e}" for o, e in refs])
                queue = _NullQueue()
            bare_runner, bare_url = await serve(await bare_app())
            services.queue = queue
            ours_app = create_app(services)
            ours_runner, ours_url = await serve(ours_app)

            me, db = psutil.Process(), psutil.Process(mongo.pid)

            async def phase(url: str) -> dict:
                cpu = [sum(p.cpu_times()[:2]) for p in (me, db)]
                out = await asyncio.to_thread(run_load, url, args)
                cpu = [sum(p.cpu_times()[:2]) - c for p, c in zip((me, db), cpu, strict=True)]
                n = max(1, out["rps"] * (args.duration + args.warmup))  # ~requests served in the phase
                out["server_cpu_ms_per_req"], out["db_cpu_ms_per_req"] = (c * 1000 / n for c in cpu)
                return out

            load_before = os.getloadavg()[0]
            try:
                bare = await phase(f"{bare_url}/webhooks/kommo/{hook}")
                profiler = None
                if args.profile:  # diagnosis only: cProfile of the server's event loop thread

                    profiler = cProfile.Profile()
                    profiler.enable()
                ours = await phase(f"{ours_url}/webhooks/kommo/{hook}")
                if profiler is not None:
                    profiler.disable()
                    profiler.dump_stats(args.profile)
                await asyncio.sleep(0.5)  # QUEUED bookkeeping after the last answers
                stored = await services.storage.events.count(org.id)

                batches = ours_app[KOMMO].intake.committer.batches
                enqueued = await services.redis.llen("inbound")
            finally:
                await ours_runner.cleanup()
                await bare_runner.cleanup()
                await services.redis.flushdb()
                await services.close()
        finally:
            mongo.terminate()
            try:
                mongo.wait(10)
            except subprocess.TimeoutExpired:  # never leave a server behind
                mongo.kill()
                mongo.wait(10)
    print(f"load generator: {args.client}, {args.connections} keep-alive connections, {args.duration:g} s "
          f"(+{args.warmup:g} s warm-up); load average {load_before:.2f} -> {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} CPUs")
    for name, r in (("bare aiohttp", bare), ("kommo intake", ours)):
        print(f"{name} : {r['rps']:8.0f} req/s  p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms"
              f"  statuses {r['statuses']}")
        print(f"{'':15s}CPU per request: server {r['server_cpu_ms_per_req']:.3f} ms, nx-27017 "
              f"{r['db_cpu_ms_per_req']:.3f} ms, load generator {r['load_cpu_ms_per_req']:.3f} ms")
    print(f"acknowledged {ours['acked']} events; stored {stored} in {batches} group commits "
          f"({stored / max(1, batches):.1f} events each); in broker queue 'inbound' {enqueued}")
    ok = ours["acked"] == stored == enqueued
    print("every acknowledged event stored and enqueued:", "yes" if ok else "NO")
    ratio = ours["rps"] / bare["rps"] if bare["rps"] else 0
    print(f"RESULT ratio={ratio:.3f} p99_ms={ours['p99_ms']:.2f} rps={ours['rps']:.0f}")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--load", help=argparse.SUPPRESS)
    parser.add_argument("--diagnose-no-enqueue", action="store_true",
                        help="replace the Celery publish by one RPUSH per batch (not a valid result)")
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile of our server's phase (not a valid result)")
    parser.add_argument("--client", choices=("raw", "aiohttp"), default="raw",
                        help="load generator: raw keep-alive sockets (default) or aiohttp's client (the first one)")
    a = parser.parse_args()
    if a.load:
        load = load_raw if a.client == "raw" else load_aiohttp
        print(json.dumps(asyncio.run(load(a.load, a.duration, a.connections, a.warmup))))
    else:
        from core.eventloop import run  # the web process's event loop (uvloop where installed)

        run(main(a))
