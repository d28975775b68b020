"""A whole deployment for reliability tests: its own nx-27017 and Redis (both restartable), the
web app (in this process), Celery worker and beat as real subprocesses, the fake Kommo and the
fake LLM as HTTP servers in this process. Webhooks go in over HTTP like Kommo sends them
(form-encoded, re-sent on a non-2xx answer); replies are counted at the fake Kommo."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from pydantic import SecretStr

from core.config import KommoSettings, LLMSettings, MongoSettings, RedisSettings, Settings, WorkerSettings
from core.ids import new_id
from core.models.agent import Agent
from core.security.keyring import parse_keys
from core.services import CoreServices, build_services
from core.storage.embedded import free_port, mongo_command, redis_binary, wait_for_port
from tasks.app import create_celery
from tasks.queue import CeleryTaskQueue
from tests.fakes.kommo import FakeKommo
from tests.fakes.llm import FakeLLMServer
from web.app import create_app

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Server:
    """A restartable child server on a fixed port."""

    name: str
    argv: list[str]
    port: int
    log: Path
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_port(self.port, timeout=30, proc=self.proc)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@dataclass
class Tenant:
    org_id: str
    hook_url: str
    fake_acc: object
    leads: list[int]


@dataclass
class Stack:
    tmp: Path
    orgs: int = 10
    leads_per_org: int = 25
    fault_rate: float = 0.0
    debounce_s: float = 0.0
    worker_concurrency: int = 8
    worker_processes: int = 1
    tenants: list[Tenant] = field(default_factory=list)
    workers: list[subprocess.Popen] = field(default_factory=list)

    async def start(self) -> None:
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.mongo = Server("mongo", [], free_port(), self.tmp / "mongo.log")
        self.mongo.argv = mongo_command(self.tmp / "mongo", self.mongo.port)
        self.redis = Server("redis", [], free_port(), self.tmp / "redis.log")
        # No persistence: a restart loses every queued task, the worst case to recover from.
        self.redis.argv = [redis_binary(), "--port", str(self.redis.port), "--bind", "127.0.0.1",
                           "--save", "", "--appendonly", "no"]
        self.mongo.start()
        self.redis.start()
        self.fake = FakeKommo(fault_rate=0.0, retry_after=1)
        await self.fake.start()
        self.llm = FakeLLMServer()
        await self.llm.start()
        key = base64.urlsafe_b64encode(os.urandom(32)).decode()
        self.keys_spec = f"e2e:{key}"
        self.settings = Settings(
            data_dir=self.tmp / "data", mongo=MongoSettings(url=self.mongo_url, database="e2e"),
            redis=RedisSettings(url=self.redis_url), kommo=self._kommo_settings(),
            llm=LLMSettings(base_url=self.llm.base_url, api_key=SecretStr("sk-e2e")),
            worker=WorkerSettings(debounce_s=self.debounce_s))
        self.queue = CeleryTaskQueue(create_celery(self.redis_url))
        self.services: CoreServices = await build_services(self.settings, keyring=parse_keys(self.keys_spec),
                                                           queue=self.queue)
        self.web_port = free_port()
        self.runner = web.AppRunner(create_app(self.services), access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.web_port).start()
        await self._tenants()
        self.fake.fault_rate = self.fault_rate  # faults only after set-up, as in a live account
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64))
        for slot in range(self.worker_processes):
            self.start_worker(slot)
        self.beat = subprocess.Popen([sys.executable, "-m", "cli", "beat"], env=self.env(), cwd=self.tmp,
                                     stdout=open(self.tmp / "beat.log", "ab"), stderr=subprocess.STDOUT,
                                     start_new_session=True)

    @property
    def mongo_url(self) -> str:
        return f"mongodb://127.0.0.1:{self.mongo.port}/"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis.port}/0"

    def _kommo_settings(self) -> KommoSettings:
        return KommoSettings(api_base_url=self.fake.base_url, public_base_url="http://127.0.0.1",
                             request_timeout_s=2.0)

    def env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items()
                if not k.startswith(("MONGO_", "REDIS_", "QDRANT_", "LLM_", "KOMMO_", "SECRETS_", "WORKER_", "WEB_"))}
        return {**keep, "PYTHONPATH": str(ROOT), "KOMMO_AGENT_HOME": str(self.tmp / "home"),  # not the user's
                "MONGO_URL": self.mongo_url, "MONGO_DATABASE": "e2e",
                "REDIS_URL": self.redis_url, "DATA_DIR": str(self.tmp / "data"), "SECRETS_KEYS": self.keys_spec,
                "KOMMO_API_BASE_URL": self.fake.base_url, "KOMMO_REQUEST_TIMEOUT_S": "2",
                "KOMMO_RESEND_UNCERTAIN_AFTER_S": "6", "KOMMO_RETRY_BUDGET_S": "3",
                "LLM_BASE_URL": self.llm.base_url, "LLM_API_KEY": "sk-e2e",
                "WORKER_DEBOUNCE_S": str(self.debounce_s), "WORKER_VISIBILITY_TIMEOUT_S": "30",
                "WORKER_MAX_RETRY_COUNTDOWN_S": "3", "WORKER_SWEEP_INTERVAL_S": "2", "WORKER_SWEEP_STALE_S": "8",
                "LOG_LEVEL": "INFO"}

    async def _tenants(self) -> None:
        kommo = await self.services.kommo()
        storage = self.services.storage
        for i in range(self.orgs):
            org = await storage.orgs.create(f"Shop {i}")
            acc = self.fake.add_account(f"shop{i}-{new_id('s')[-6:]}")
            base_lead = next(iter(acc.leads.values()))
            leads = [base_lead["id"]]
            for n in range(1, self.leads_per_org):
                lead_id = base_lead["id"] * 1000 + n
                acc.leads[lead_id] = {**base_lead, "id": lead_id, "name": f"Lead {n}"}
                leads.append(lead_id)
            token = self.fake.book.issue_long_lived(acc.id)
            result = await kommo.connections.connect_long_lived(org.id, acc.subdomain, token)
            await storage.agents.insert(org.id, Agent(_id=new_id("agt"), org_id=org.id, name="Sales", language="en"))
            hook = kommo.connections.hook_token(result.account)
            self.tenants.append(Tenant(org.id, f"http://127.0.0.1:{self.web_port}/webhooks/kommo/{hook}", acc, leads))

    # -- processes ------------------------------------------------------------------------------
    def start_worker(self, slot: int = 0) -> subprocess.Popen:
        # Each worker process gets its own data folder: embedded Qdrant Edge allows one process
        # per folder (these tests use no knowledge, so the stores stay empty).
        env = {**self.env(), "DATA_DIR": str(self.tmp / f"data-w{slot}")}
        proc = subprocess.Popen([sys.executable, "-m", "cli", "worker", "-c", str(self.worker_concurrency)],
                                env=env, cwd=self.tmp, stdout=open(self.tmp / "worker.log", "ab"),
                                stderr=subprocess.STDOUT, start_new_session=True)
        proc.slot = slot  # type: ignore[attr-defined]
        self.workers.append(proc)
        return proc

    def kill_worker(self, slot: int = 0) -> None:
        """SIGKILL a running worker (mid-reply, whatever it was doing) and start a new one."""
        for proc in self.workers:
            if proc.poll() is None and getattr(proc, "slot", 0) == slot:
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
        self.start_worker(slot)

    # -- traffic --------------------------------------------------------------------------------
    async def send(self, tenant: Tenant, *, lead_id: int, chat_id: str, msg_id: str, text: str,
                   deadline_s: float = 180) -> None:
        """POST a `message[add]` webhook; like Kommo, re-send until it is answered with 2xx."""
        body = urlencode({
            "message[add][0][id]": msg_id, "message[add][0][chat_id]": chat_id,
            "message[add][0][talk_id]": "1", "message[add][0][contact_id]": "1", "message[add][0][text]": text,
            "message[add][0][created_at]": str(int(time.time())), "message[add][0][element_type]": "2",
            "message[add][0][entity_type]": "lead", "message[add][0][element_id]": str(lead_id),
            "message[add][0][entity_id]": str(lead_id), "message[add][0][type]": "incoming",
            "message[add][0][author][id]": "c1", "message[add][0][author][type]": "external",
            "message[add][0][author][name]": "Customer", "message[add][0][origin]": "telegram",
            "account[subdomain]": tenant.fake_acc.subdomain, "account[id]": str(tenant.fake_acc.id),
        })
        deadline = time.monotonic() + deadline_s
        while True:
            try:
                async with self.http.post(tenant.hook_url, data=body, headers={
                        "Content-Type": "application/x-www-form-urlencoded"},
                        timeout=aiohttp.ClientTimeout(total=5)) as resp:
                    if 200 <= resp.status < 300:
                        return
            except (TimeoutError, aiohttp.ClientError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"webhook {msg_id} was never accepted")
            await asyncio.sleep(0.5)

    def replies(self, marker: str) -> int:
        """Notes at the fake Kommo whose text carries `marker` (our reply drafts echo it)."""
        return sum(marker in n["params"]["text"] for t in self.tenants for n in t.fake_acc.notes
                   if "params" in n and "text" in n["params"])

    def reply_counts(self, markers: list[str]) -> dict[str, int]:
        texts = [n["params"]["text"] for t in self.tenants for n in t.fake_acc.notes
                 if "params" in n and "text" in n["params"]]
        counts = dict.fromkeys(markers, 0)
        for text in texts:
            for token in text.split():
                if token in counts:
                    counts[token] += 1
        return counts

    async def wait_for(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            await asyncio.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what}\n{await self.diagnose()}\n"
                             f"worker log tail:\n{self.log_tail('worker.log')}")

    async def diagnose(self) -> str:
        """Where the work stands, to explain a failure."""
        db = self.services.storage.db
        lines = []
        for name, field_ in (("webhook_events", "status"), ("turns", "outcome"), ("agent_actions", "state"),
                             ("conversations", "state")):
            counts: dict[str, int] = {}
            async for doc in db[name].find({}, {field_: 1}):
                counts[str(doc.get(field_))] = counts.get(str(doc.get(field_)), 0) + 1
            lines.append(f"{name} by {field_}: {counts}")
        pending = await db["conversations"].count_documents({"pending_turn_id": {"$type": "string"}})
        unanswered = await db["messages"].count_documents({"role": "customer", "turn_id": None})
        lines.append(f"conversations with a pending turn: {pending}; unanswered messages: {unanswered}")
        lines.append(f"fake kommo: {self.fake.stats()['rate_limited']} rate-limited, {self.fake.faults} faults")
        try:
            broker = {q: await self.services.redis.llen(q) for q in ("inbound", "kommo", "ingest")}
        except Exception as exc:  # noqa: BLE001 - a diagnosis must not fail the diagnosis
            broker = {"error": repr(exc)}
        lines.append(f"broker queue lengths: {broker}")
        worker_log = self.tmp / "worker.log"
        if worker_log.exists():
            problems = [line for line in worker_log.read_text(errors="replace").splitlines()
                        if any(w in line for w in ("ERROR", "error", "Traceback", "Connection", "WARNING"))]
            lines.append("worker log problems (last 15):\n" + "\n".join(problems[-15:]))
        return "\n".join(lines)

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.tmp / name
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    async def stop(self) -> None:
        for proc in [*self.workers, self.beat]:
            if proc.poll() is None:
                proc.terminate()
        for proc in [*self.workers, self.beat]:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        await self.http.close()
        await self.runner.cleanup()
        await self.services.close()
        await self.fake.stop()
        await self.llm.close()
        self.redis.stop()
        self.mongo.stop()
