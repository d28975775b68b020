"""A fake OpenAI-compatible LLM server on 127.0.0.1 for tests and benchmarks.

The real `openai` SDK talks to it over HTTP. Each test scripts it either with a queue of
responses (`server.push(...)`) or with a callable that sees the request body and returns one
(`server.handler = fn`). Every request body is recorded in `server.requests` so a test can
assert on the exact prompt the SDK sent.

Response kinds: `Reply` (content and/or tool calls, optional usage, optional delay), `Fail`
(HTTP error such as 429 or 500, optional Retry-After), `Hang` (sleep longer than the client's
timeout). Without a script the default behaviour answers instantly (see `default_script`).

Run standalone for engine tests and benchmarks:
    python -m tests.fakes.llm --port 8765 [--fail-rate 0.2] [--delay-ms 0]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)  # str: sent verbatim (bad JSON tests)


@dataclass
class Reply:
    content: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    prompt_tokens: int | None = None  # None: estimated from the request
    completion_tokens: int | None = None
    delay_s: float = 0.0
    cost_usd: float | None = None  # OpenRouter's `usage.cost` (the call's price in USD)
    omit_usage: bool = False  # an answer without `usage`, as some proxies send


@dataclass
class Fail:
    status: int = 500
    message: str = "injected failure"
    retry_after: float | None = None


@dataclass
class Hang:
    seconds: float = 30.0  # longer than the client's timeout: the SDK sees APITimeoutError


Response = Reply | Fail | Hang
Handler = Callable[[dict[str, Any]], Response]

# Markers the default script understands inside the customer's text.
_MOVE = re.compile(r"#move:(\d+):(\d+)")
_CUSTOMER_BLOCK = re.compile(r"<<<CUSTOMER_MESSAGE[^>]*>>>\n?(.*?)\n?<<<END CUSTOMER_MESSAGE[^>]*>>>", re.S)


def _text_of(content: Any) -> str:
    if isinstance(content, list):  # content parts
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content or ""


def last_user_text(body: dict[str, Any]) -> str:
    """The customer's text of the last user message, unwrapped from the runtime's fence."""
    for msg in reversed(body.get("messages", [])):
        if msg.get("role") == "user":
            text = _text_of(msg.get("content"))
            blocks = _CUSTOMER_BLOCK.findall(text)
            return blocks[-1].strip() if blocks else text.strip()
    return ""


def tool_names(body: dict[str, Any]) -> list[str]:
    return [t["function"]["name"] for t in body.get("tools") or []]


def is_translation_request(body: dict[str, Any]) -> bool:
    """A query-translation call (`core.ai.retrieval.translation`), told apart by its system rules."""
    messages = body.get("messages") or [{}]
    return "You translate a customer's message" in _text_of(messages[0].get("content"))


def default_script(body: dict[str, Any]) -> Response:
    """Echo the customer, or call a tool when the text carries a marker:
    `#handoff` -> handoff_to_human, `#move:<pipeline>:<status>` -> move_lead_stage. A query
    translation gets the text back unchanged (this fake cannot translate), which the product
    treats as "no translation"."""
    text = last_user_text(body)
    if is_translation_request(body):
        return Reply(content=text)
    offered = tool_names(body)
    if "#handoff" in text and "handoff_to_human" in offered:
        return Reply(content=None, tool_calls=[ToolCall("handoff_to_human", {"reason": "customer asked"})])
    if (m := _MOVE.search(text)) and "move_lead_stage" in offered:
        args = {"pipeline_id": int(m.group(1)), "status_id": int(m.group(2)), "reason": "marker"}
        return Reply(content=f"OK: {text}", tool_calls=[ToolCall("move_lead_stage", args)])
    return Reply(content=f"OK: {text}")


def _estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4)


def fake_embedding(text: str, dims: int = 384) -> list[float]:
    """Deterministic unit vector from the text's hash: same text, same vector."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    rng = random.Random(seed)
    vec = [rng.uniform(-1, 1) for _ in range(dims)]
    norm = sum(v * v for v in vec) ** 0.5 or 1.0
    return [v / norm for v in vec]


class FakeLLMServer:
    def __init__(self, handler: Handler | None = None, *, models: list[str] | None = None,
                 fail_rate: float = 0.0, delay_s: float = 0.0) -> None:
        self.handler: Handler = handler or default_script
        self.queue: deque[Response] = deque()
        self.requests: list[dict[str, Any]] = []  # chat completion bodies, in arrival order
        self.embedding_requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.models = models or ["fake-model", "openai/gpt-4o-mini"]
        self.fail_rate = fail_rate
        self.delay_s = delay_s
        self._rng = random.Random(7)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- scripting ---------------------------------------------------------------------------
    def push(self, *responses: Response) -> None:
        self.queue.extend(responses)

    def reset(self) -> None:
        self.queue.clear()
        self.requests.clear()
        self.embedding_requests.clear()
        self.headers.clear()
        self.handler = default_script

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- lifecycle ---------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_get("/v1/models", self._models)
        return app

    async def start(self, port: int = 0) -> str:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self.base_url

    async def close(self) -> None:
        if self._runner:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeLLMServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- routes ------------------------------------------------------------------------------
    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        if self.fail_rate and self._rng.random() < self.fail_rate:
            return _error(Fail(self._rng.choice([429, 500, 503])))
        response = self.queue.popleft() if self.queue else self.handler(body)
        if isinstance(response, Hang):
            await asyncio.sleep(response.seconds)
            return _error(Fail(504, "hang ended"))
        if isinstance(response, Fail):
            return _error(response)
        delay = response.delay_s or self.delay_s
        if delay:
            await asyncio.sleep(delay)
        return web.json_response(_completion(body, response))

    async def _embeddings(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.embedding_requests.append(body)
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
        dims = int(body.get("dimensions") or 384)
        data = [{"object": "embedding", "index": i, "embedding": fake_embedding(str(t), dims)}
                for i, t in enumerate(texts)]
        tokens = sum(_estimate_tokens(str(t)) for t in texts)
        return web.json_response({"object": "list", "data": data, "model": body.get("model", "fake-embed"),
                                  "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [
            {"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models]})


def _error(fail: Fail) -> web.Response:
    headers = {"retry-after": str(fail.retry_after)} if fail.retry_after is not None else None
    kind = "rate_limit_exceeded" if fail.status == 429 else "server_error"
    return web.json_response({"error": {"message": fail.message, "type": kind, "code": fail.status}},
                             status=fail.status, headers=headers)


def _completion(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    prompt_text = json.dumps(body.get("messages", []), ensure_ascii=False)
    tool_calls = [{
        "id": f"call_{i}_{hashlib.md5(tc.name.encode()).hexdigest()[:8]}",
        "type": "function",
        "function": {"name": tc.name, "arguments": tc.arguments if isinstance(tc.arguments, str)
                     else json.dumps(tc.arguments, ensure_ascii=False)},
    } for i, tc in enumerate(reply.tool_calls)]
    prompt = reply.prompt_tokens if reply.prompt_tokens is not None else _estimate_tokens(prompt_text)
    out_text = (reply.content or "") + "".join(t["function"]["arguments"] for t in tool_calls)
    completion = reply.completion_tokens if reply.completion_tokens is not None else _estimate_tokens(out_text)
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    answer: dict[str, Any] = {
        "id": f"chatcmpl-{int(time.time() * 1000)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake-model"),
        "choices": [{"index": 0, "message": message,
                     "finish_reason": "tool_calls" if tool_calls else "stop"}],
    }
    if not reply.omit_usage:
        answer["usage"] = {"prompt_tokens": prompt, "completion_tokens": completion,
                           "total_tokens": prompt + completion}
        if reply.cost_usd is not None:
            answer["usage"]["cost"] = reply.cost_usd
    return answer


def main() -> None:
    parser = argparse.ArgumentParser(description="Fake OpenAI-compatible LLM server")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--fail-rate", type=float, default=0.0, help="share of chat calls answered 429/5xx")
    parser.add_argument("--delay-ms", type=float, default=0.0)
    args = parser.parse_args()
    server = FakeLLMServer(fail_rate=args.fail_rate, delay_s=args.delay_ms / 1000)

    async def serve() -> None:
        # Print the URL (port 0 picks a free one) so a parent process can read where we listen.
        print(await server.start(args.port), flush=True)
        await asyncio.Event().wait()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass

if __name__ == "__main__":
    main()
