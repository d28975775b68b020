"""Test-chat sessions and turns.

A session (per organisation and console user) names the agent, the lead stage the manager
pretends to be at, and the conversation so far; it lives in Redis until the manager leaves.
Each message runs the real agent runtime with `dry_run=True`: planned actions are described,
never executed, and the LLM calls are metered as `test_chat`.

The runtime needs the knowledge area, which in the embedded default only the worker may open,
so the turn itself runs behind a `TurnRunner`: in this process (`RuntimeRunner`, when the
process owns the knowledge, e.g. with a Qdrant server, and in benchmarks) or in a worker
(`QueuedRunner`: the request goes out as a task, the answer comes back on a Redis list).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from core.ai.answer.turn import TurnResult
from core.clock import day_key, utcnow
from core.errors import InvalidInput, KommoAgentError, NotFound
from core.ids import new_id
from core.logging import get_logger
from core.models.conversation import Message
from core.storage import Storage
from core.usage.pricing import PriceTable, nano_to_usd
from core.usage.quota import QuotaExceeded

log = get_logger(__name__)
SESSION_TTL_S = 24 * 3600
HISTORY_LIMIT = 30  # messages of memory handed to the runtime, as in a real conversation
MAX_TEXT = 4000


class TestChatUnavailable(KommoAgentError):
    """The worker did not answer in time (not running, or busy)."""

    code = "test_chat_unavailable"


class TestTurnRefused(KommoAgentError):
    """The worker refused the turn with a domain error; its code travels back to the console."""

    def __init__(self, code: str, message: str, **params) -> None:
        super().__init__(message, **params)
        self.code = code


class NoTestChat(KommoAgentError):
    code = "test_chat_not_open"


@dataclass
class TestSession:
    agent_id: str
    agent_name: str
    pipeline_id: int | None = None
    status_id: int | None = None
    stage_name: str = ""
    history: list[dict[str, str]] = field(default_factory=list)  # {"role": customer|agent, "text"}


@dataclass
class TestAnswer:
    """One answer as the console shows it."""

    turn_id: str
    agent_id: str
    question: str
    reply_text: str
    mode: str
    sources: list[dict[str, Any]]  # title, quote, source_id
    actions: list[dict[str, Any]]  # kind, params, valid, refusal_reason
    handoff: bool
    handoff_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    model: str


class TurnRunner(Protocol):
    async def run(self, org_id: str, request: dict[str, Any]) -> dict[str, Any]:
        """Run one dry-run turn described by `request`; the `TurnResult.to_dict()` of it."""


def _history(org_id: str, session: TestSession) -> list[Message]:
    return [Message(_id=f"tc{i}", org_id=org_id, conversation_id="test-chat", role=m["role"], text=m["text"])
            for i, m in enumerate(session.history[-HISTORY_LIMIT:])]


class TestTurns:
    """Runs a stored test-chat request with the process's runtime (the worker side, or in process)."""

    def __init__(self, storage: Storage, runtime_provider, quota=None) -> None:
        self.storage = storage
        self.runtime_provider = runtime_provider  # async () -> AgentRuntime: built on first use
        self.quota = quota  # core.usage.quota.PlanQuota: the test chat stops where the agent would

    async def run(self, org_id: str, request: dict[str, Any]) -> dict[str, Any]:
        agent = await self.storage.agents.get(org_id, request["agent_id"])
        if agent is None:
            raise NotFound("agent not found", agent_id=request["agent_id"])
        if self.quota is not None:
            decision = await self.quota.check_reply(org_id, agent.id)
            if not decision.allowed:
                raise QuotaExceeded(f"the plan's monthly limit is reached ({decision.reason})", reason=decision.reason)
        session = TestSession(**request["session"])
        facts: dict[str, Any] = {}
        if session.stage_name:
            facts = {"lead_name": "Test lead", "pipeline_stage": session.stage_name}
        runtime = await self.runtime_provider()
        result: TurnResult = await runtime.run_turn(
            org_id, agent, customer_text=request["text"], conversation=None, history=_history(org_id, session),
            lead_facts=facts, dry_run=True, turn_id=request["turn_id"])
        return result.to_dict()


class RuntimeRunner:
    """The turn in this process (the process may open the knowledge area)."""

    def __init__(self, turns: TestTurns) -> None:
        self.turns = turns

    async def run(self, org_id: str, request: dict[str, Any]) -> dict[str, Any]:
        return await self.turns.run(org_id, request)


class QueuedRunner:
    """The turn in a worker: request in Redis, a task through the queue, the answer on a list."""

    def __init__(self, redis: aioredis.Redis, queue, timeout_s: float = 60.0) -> None:
        self.redis, self.queue, self.timeout_s = redis, queue, timeout_s

    @staticmethod
    def request_key(request_id: str) -> str:
        return f"testchat:req:{request_id}"

    @staticmethod
    def answer_key(request_id: str) -> str:
        return f"testchat:ans:{request_id}"

    async def run(self, org_id: str, request: dict[str, Any]) -> dict[str, Any]:
        request_id = request["turn_id"]
        try:
            await self.redis.set(self.request_key(request_id), json.dumps({"org_id": org_id, **request}),
                                 ex=int(self.timeout_s) + 60)
            await self.queue.test_turn(org_id, request_id)
            got = await self.redis.blpop([self.answer_key(request_id)], timeout=self.timeout_s)
        except RedisError as exc:
            raise TestChatUnavailable(f"the task queue is unreachable ({type(exc).__name__})") from exc
        if got is None:
            raise TestChatUnavailable("no worker answered the test chat in time")
        answer = json.loads(got[1])
        if answer.get("code"):  # refused for a reason the console can name (e.g. the plan's quota)
            raise TestTurnRefused(answer["code"], answer["error"], **answer.get("params", {}))
        if "error" in answer:
            raise TestChatUnavailable(answer["error"])
        return answer["result"]


async def answer_queued_turn(redis: aioredis.Redis, turns: TestTurns, org_id: str, request_id: str) -> str:
    """The worker side of `QueuedRunner`: run the stored request, push its answer (or why not)."""
    raw = await redis.getdel(QueuedRunner.request_key(request_id))
    if raw is None:
        return "expired"  # the console gave up waiting (or this is a redelivery): nobody to answer
    request = json.loads(raw)
    if request.pop("org_id") != org_id:
        return "refused"
    key = QueuedRunner.answer_key(request_id)
    try:
        payload = {"result": await turns.run(org_id, request)}
    except KommoAgentError as exc:
        payload = {"error": str(exc)[:300], "code": exc.code, "params": {k: str(v) for k, v in exc.params.items()}}
    except Exception as exc:  # the console waits on this list: it must hear of any failure at once
        log.exception("test_turn_failed", org_id=org_id, request_id=request_id)
        payload = {"error": f"the test turn failed ({type(exc).__name__})"}
    await redis.rpush(key, json.dumps(payload, ensure_ascii=False, default=str))
    await redis.expire(key, 120)
    return "answered"


def _quote(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


class TestChatService:
    def __init__(self, storage: Storage, redis: aioredis.Redis, runner: TurnRunner, prices: PriceTable | None = None,
                 ttl_s: int = SESSION_TTL_S) -> None:
        self.storage, self.redis, self.runner = storage, redis, runner
        self.prices = prices  # the usage price table: the cost shown is the cost metered
        self.ttl_s = ttl_s

    @staticmethod
    def _key(org_id: str, user_key: str) -> str:
        return f"testchat:session:{org_id}:{user_key}"

    async def session(self, org_id: str, user_key: str) -> TestSession | None:
        raw = await self.redis.get(self._key(org_id, user_key))
        return TestSession(**json.loads(raw)) if raw else None

    async def _save(self, org_id: str, user_key: str, session: TestSession) -> None:
        await self.redis.set(self._key(org_id, user_key), json.dumps(asdict(session), ensure_ascii=False),
                             ex=self.ttl_s)

    async def open(self, org_id: str, user_key: str, agent_id: str) -> TestSession:
        """A fresh conversation with one of the organisation's agents."""
        agent = await self.storage.agents.get(org_id, agent_id)
        if agent is None:
            raise NotFound("agent not found", agent_id=agent_id)
        session = TestSession(agent_id=agent.id, agent_name=agent.name)
        await self._save(org_id, user_key, session)
        return session

    async def stages(self, org_id: str) -> list[tuple[int, int, str]]:
        """(pipeline id, stage id, "Pipeline: Stage") of the synced account, to pretend to be at."""
        out = []
        for pipeline in await self.storage.kommo_catalog.pipelines(org_id):
            out += [(pipeline.pipeline_id, s.id, f"{pipeline.name}: {s.name}") for s in pipeline.statuses
                    if not getattr(s, "gone", False)]
        return out

    async def pretend_stage(self, org_id: str, user_key: str, pipeline_id: int | None,
                            status_id: int | None) -> TestSession:
        session = await self._require(org_id, user_key)
        if pipeline_id is None:
            session.pipeline_id = session.status_id = None
            session.stage_name = ""
        else:
            found = next((name for p, s, name in await self.stages(org_id) if p == pipeline_id and s == status_id),
                         None)
            if found is None:
                raise NotFound("stage not found in the synced account", status_id=status_id)
            session.pipeline_id, session.status_id, session.stage_name = pipeline_id, status_id, found
        await self._save(org_id, user_key, session)
        return session

    async def _require(self, org_id: str, user_key: str) -> TestSession:
        session = await self.session(org_id, user_key)
        if session is None:
            raise NoTestChat("no test chat is open")
        return session

    async def ask(self, org_id: str, user_key: str, text: str) -> TestAnswer:
        text = (text or "").strip()
        if not text:
            raise InvalidInput("the message is empty")
        if len(text) > MAX_TEXT:
            raise InvalidInput(f"the message is longer than {MAX_TEXT} characters", limit=MAX_TEXT)
        session = await self._require(org_id, user_key)
        turn_id = new_id("tst")
        request = {"agent_id": session.agent_id, "text": text, "turn_id": turn_id, "session": asdict(session),
                   "at": utcnow().isoformat()}
        result = await self.runner.run(org_id, request)
        session.history += [{"role": "customer", "text": text}, {"role": "agent", "text": result["reply_text"]}]
        session.history = session.history[-2 * HISTORY_LIMIT:]
        await self._save(org_id, user_key, session)
        return self._answer(session.agent_id, text, result)

    def _answer(self, agent_id: str, question: str, result: dict[str, Any]) -> TestAnswer:
        sources = []
        for s in result.get("sources") or []:
            sources.append({"title": s.get("title") or "", "heading": s.get("heading") or "",
                            "source_id": s.get("source_id"), "quote": _quote(s.get("quote") or s.get("text") or ""),
                            "ref": s.get("ref")})
        usage = result.get("usage") or {}
        prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        actions = [a for a in result.get("planned_actions") or [] if a.get("kind") != "reply"]
        return TestAnswer(turn_id=result["turn_id"], agent_id=agent_id, question=question,
                          reply_text=result.get("reply_text") or "", mode=result.get("mode") or "",
                          sources=sources, actions=actions,
                          handoff=bool(result.get("handoff")), handoff_reason=result.get("handoff_reason"),
                          prompt_tokens=prompt, completion_tokens=completion,
                          cost_usd=self._cost(usage.get("model") or "", prompt, completion),
                          model=usage.get("model") or "")

    def _cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        if self.prices is None or not (prompt_tokens or completion_tokens):
            return 0.0
        nano, _unknown = self.prices.cost_nano(model, day_key(utcnow()), prompt_tokens, completion_tokens)
        return float(nano_to_usd(nano))

    async def leave(self, org_id: str, user_key: str) -> bool:
        return bool(await self.redis.delete(self._key(org_id, user_key)))
