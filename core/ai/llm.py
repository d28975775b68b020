"""The LLM client: chat completions with tool calling over the `openai` SDK, retried, metered.

Retries: the SDK's own retry loop is switched off (`max_retries=0`) and tenacity drives it
instead, because we want (a) exactly our transient set retried (timeouts, connection errors,
429, 5xx) and everything else failing at once, (b) a log line per attempt and the attempt count
in the result, (c) Retry-After honoured but capped so a provider cannot park a worker for
minutes, (d) one typed final error (`LLMUnavailable`) the runtime turns into a handoff, and
(e) a tiny backoff in tests. Leaving SDK retries on as well would multiply the attempts.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import openai
from openai import AsyncOpenAI
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_exponential_jitter

from core import metrics
from core.ai.errors import LLMRejected, LLMUnavailable
from core.config import LLMSettings
from core.errors import ConfigurationError, plain_reason
from core.logging import get_logger
from core.usage.metering import UsageContext, UsageMeter

log = get_logger(__name__)

TRANSIENT = (openai.APITimeoutError, openai.APIConnectionError, openai.RateLimitError,
             openai.InternalServerError)


@dataclass
class LLMToolCall:
    id: str
    name: str
    arguments: str  # raw JSON text as the model wrote it; validated later

    def parsed(self) -> dict[str, Any] | None:
        try:
            value = json.loads(self.arguments or "{}")
        except (TypeError, ValueError):
            return None
        return value if isinstance(value, dict) else None


@dataclass
class LLMResponse:
    content: str | None
    tool_calls: list[LLMToolCall] = field(default_factory=list)
    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    attempts: int = 1


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class LLMClient:
    """One per process; `chat` is safe to call concurrently."""

    def __init__(self, settings: LLMSettings, *, meter: UsageMeter | None = None,
                 client: AsyncOpenAI | None = None, backoff_base_s: float = 0.5,
                 backoff_max_s: float = 8.0) -> None:
        self.settings = settings
        self.meter = meter
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self._closed = False
        key = settings.api_key.get_secret_value() if settings.api_key else ""
        self._client = client or AsyncOpenAI(
            base_url=settings.base_url, api_key=key or "unset", timeout=settings.timeout_s, max_retries=0,
        )

    async def close(self) -> None:
        # Shared by the runtime and query translation: whichever closes first closes it.
        if not self._closed:
            self._closed = True
            await self._client.close()

    def _wait(self, state: RetryCallState) -> float:
        backoff = wait_exponential_jitter(multiplier=self.backoff_base_s, jitter=self.backoff_base_s,
                                          max=self.backoff_max_s)(state)
        exc = state.outcome.exception() if state.outcome else None
        hinted = _retry_after(exc) if exc else None
        return max(backoff, min(hinted, self.backoff_max_s)) if hinted is not None else backoff

    async def chat(self, messages: list[dict[str, Any]], *, usage: UsageContext,
                   tools: list[dict[str, Any]] | None = None, model: str | None = None,
                   temperature: float | None = None, max_tokens: int | None = None) -> LLMResponse:
        """One completion. Raises LLMUnavailable after the last transient failure, LLMRejected on
        a non-retryable provider error; records usage once per `usage.idempotency_key`."""
        if not self.settings.enabled:
            raise ConfigurationError("LLM is not configured (LLM_API_KEY is empty)")
        model = model or self.settings.model
        kwargs: dict[str, Any] = {"model": model, "messages": messages}
        if tools:
            kwargs["tools"] = tools
            kwargs["tool_choice"] = "auto"
        if temperature is not None:
            kwargs["temperature"] = temperature
        if max_tokens:
            kwargs["max_tokens"] = max_tokens
        attempts = 0
        started = time.perf_counter()
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self.settings.max_retries + 1), wait=self._wait,
                retry=retry_if_exception_type(TRANSIENT), reraise=True,
                before_sleep=lambda s: log.warning("llm_retry", attempt=s.attempt_number, model=model,
                                                   error=type(s.outcome.exception()).__name__),
            ):
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    completion = await self._client.chat.completions.create(**kwargs)
        except TRANSIENT as exc:
            metrics.LLM_SECONDS.labels("unavailable").observe(time.perf_counter() - started)
            raise LLMUnavailable(f"LLM unavailable after {attempts} attempts: {plain_reason(exc)}",
                                 attempts=attempts, model=model) from exc
        except openai.APIStatusError as exc:
            metrics.LLM_SECONDS.labels("rejected").observe(time.perf_counter() - started)
            raise LLMRejected(f"LLM rejected the request: HTTP {exc.status_code}",
                              status=exc.status_code, model=model) from exc
        metrics.LLM_SECONDS.labels("ok").observe(time.perf_counter() - started)
        return await self._finish(completion, model, attempts, usage)

    async def _finish(self, completion: Any, model: str, attempts: int, usage: UsageContext) -> LLMResponse:
        choice = completion.choices[0] if completion.choices else None
        message = choice.message if choice else None
        calls = [LLMToolCall(id=tc.id, name=tc.function.name, arguments=tc.function.arguments or "")
                 for tc in (message.tool_calls or []) if getattr(tc, "function", None)] if message else []
        u = completion.usage
        result = LLMResponse(
            content=message.content if message else None, tool_calls=calls,
            model=completion.model or model, attempts=attempts,
            prompt_tokens=u.prompt_tokens if u else 0, completion_tokens=u.completion_tokens if u else 0,
        )
        metrics.LLM_TOKENS.labels("prompt").inc(result.prompt_tokens)
        metrics.LLM_TOKENS.labels("completion").inc(result.completion_tokens)
        if self.meter is not None:
            try:
                await self.meter.record_llm(usage, model=result.model, prompt_tokens=result.prompt_tokens,
                                            completion_tokens=result.completion_tokens)
            except Exception:
                log.exception("usage_record_failed", key=usage.idempotency_key)
        return result
