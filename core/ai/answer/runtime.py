"""The agent runtime: one customer turn -> retrieve -> prompt -> LLM with tools -> validate.

It never executes a Kommo action and holds no Kommo HTTP client: it returns validated planned
actions, and the conversation engine executes the executable ones through core/kommo under the
action journal. Provider failures end in a handoff result, never in an exception or silence.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.ai.answer.extractive import extractive_answer
from core.ai.answer.grounding import Checked, Grounding, check_action_claims
from core.ai.answer.leaks import leaked_rules, leaked_value, strip_invisible
from core.ai.answer.phrases import phrase
from core.ai.answer.prompt import COMPLETION_RESERVE, Prompt, PromptInput, build_prompt
from core.ai.answer.tools import ToolValidator, tool_specs
from core.ai.answer.turn import PlannedAction, TurnResult
from core.ai.errors import LLMError
from core.ai.language import reply_language
from core.ai.llm import LLMClient, LLMResponse
from core.ai.types import RetrievalResult, RetrievedChunk, Retriever, Verdict
from core.logging import get_logger
from core.models.agent import Agent, AgentAction
from core.models.conversation import Conversation, Message
from core.redact import redact_secrets
from core.storage.repositories.kommo_catalog import KommoCatalogRepository
from core.usage.metering import UsageContext, llm_usage_key, translation_usage

log = get_logger(__name__)
MAX_ACTIONS = 6
_CITE = re.compile(r"\s?[\[【]\s*(S\d+(?:\s*[,;]\s*S\d+)*)\s*[\]】]")


def _zone(name: str | None) -> tzinfo:
    try:
        return ZoneInfo(name) if name else UTC
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("unknown_timezone", timezone=str(name)[:64])
        return UTC


def _source(ref: str, c: RetrievedChunk) -> dict[str, Any]:
    return {"ref": ref, "source_id": c.source_id, "title": c.source_title, "heading": c.heading,
            "chunk_index": c.chunk_index, "score": round(float(c.score), 4), "quote": _quote(c.text)}


def _quote(text: str, limit: int = 200) -> str:
    """A short excerpt of the cited passage, for people checking the answer (test chat, approval)."""
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


class AgentRuntime:
    def __init__(self, *, retriever: Retriever, catalog: KommoCatalogRepository,
                 llm: LLMClient | None = None, secrets: list[str] | None = None,
                 retrieval_limit: int = 5) -> None:
        self.retriever, self.catalog, self.llm = retriever, catalog, llm
        self.secrets = [s for s in (secrets or []) if s]
        self.retrieval_limit = retrieval_limit

    @property
    def llm_enabled(self) -> bool:
        return self.llm is not None and self.llm.settings.enabled

    async def close(self) -> None:
        if self.llm is not None:
            await self.llm.close()

    async def run_turn(self, org_id: str, agent: Agent, *, customer_text: str,
                       conversation: Conversation | None, history: list[Message],
                       lead_facts: dict[str, Any], dry_run: bool, turn_id: str,
                       timezone: str | None = None) -> TurnResult:
        """`timezone`: the Kommo account's (IANA name); the model is told the time there and a
        task deadline given without an offset is read there."""
        language = reply_language(agent, customer_text)
        started = time.perf_counter()
        retrieval = await self._retrieve(org_id, agent, customer_text, turn_id=turn_id, dry_run=dry_run,
                                         conversation_id=conversation.id if conversation else None)
        retrieve_s = time.perf_counter() - started
        verdict = retrieval.verdict or _unjudged(retrieval)
        if not self.llm_enabled:
            result = self._extractive(agent, customer_text, retrieval, verdict, language, dry_run, turn_id)
            result.timings["retrieve"] = retrieve_s
            return self._checked(result, agent, retrieval, dry_run)
        knowledge = retrieval.chunks if verdict.answer else []  # below the floor the model sees none
        validator = ToolValidator(org_id, agent, self.catalog, now=datetime.now(_zone(timezone)))
        allowed = set(agent.allowed_actions)
        inp = PromptInput(
            agent=agent, customer_text=customer_text, language=language, now=validator.now,
            history=_without_current(history, customer_text), summary=conversation.summary if conversation else "",
            lead_facts=lead_facts, chunks=knowledge, tools=tool_specs(agent), secrets=self.secrets,
            stage_names=await self._stage_names(validator, agent) if AgentAction.MOVE_LEAD_STAGE in allowed else {},
            lead_fields=await validator.lead_fields() if AgentAction.UPDATE_LEAD_FIELD in allowed else [],
        )
        prompt = build_prompt(inp, agent.model or self.llm.settings.model)
        result = TurnResult(turn_id=turn_id, reply_text="", language=language, mode="llm", dry_run=dry_run,
                            summary=prompt.summary, timings={"retrieve": retrieve_s, "llm": 0.0},
                            relevance=_verdict(verdict))
        purpose = "test_chat" if dry_run else "reply"
        conv_id = conversation.id if conversation else None
        try:
            response = await self._call(org_id, agent, prompt.messages, inp.tools, purpose, conv_id, turn_id, 1, result)
            await self._apply(result, response, validator, prompt, dry_run)
            if not result.reply_text and not result.handoff and response.tool_calls and AgentAction.REPLY in allowed:
                follow = _follow_up_messages(prompt.messages, response)
                response = await self._call(org_id, agent, follow, None, purpose, conv_id, turn_id, 2, result)
                result.reply_text = self._clean_reply(response.content or "", prompt, result)
        except LLMError as exc:
            log.error("llm_failed_handoff", org_id=org_id, agent_id=agent.id, turn_id=turn_id, error=str(exc))
            return self._handoff(result, "handoff_on_error", f"llm_error: {exc}", "error_handoff", dry_run)
        if not result.reply_text and not result.handoff:
            return self._handoff(result, "llm", "the model produced no reply", "handoff", dry_run)
        return self._checked(result, agent, retrieval, dry_run)

    def _checked(self, result: TurnResult, agent: Agent, retrieval: RetrievalResult, dry_run: bool) -> TurnResult:
        """The outgoing-reply checks: claims of actions that were not validated (or were refused)
        are removed, then prices, discounts, free offers, delivery times and guarantees not found
        in the retrieved knowledge or the agent's instructions; a removed commitment hands off."""
        if not result.reply_text:
            return result
        grounding = Grounding(*(f"{c.source_title}\n{c.heading}\n{c.text}" for c in retrieval.chunks),
                              trusted=(agent.instructions, agent.goals, agent.persona, agent.handoff_rules))
        actions = check_action_claims(result.reply_text, result.planned_actions)
        claims = grounding.check(actions.text)
        removed = [*actions.removed, *claims.removed]
        if not removed:
            return result
        result.checks += [{"sentence": r.sentence, "reason": r.reason, "kinds": r.kinds} for r in removed]
        reason = Checked("", removed).reason()
        log.warning("reply_checks_removed", turn_id=result.turn_id, agent_id=agent.id, removed=reason)
        if claims.commitment_removed or not _says_something(claims.text):
            result.reply_text = ""
            if not result.handoff:
                result.handoff = True
                result.handoff_reason = f"reply withheld: ungrounded or unsupported claims ({reason})"[:500]
                result.planned_actions.append(_system_handoff(result.turn_id, result.handoff_reason, dry_run))
            result.reply_text = phrase("handoff", result.language)
        else:
            result.reply_text = claims.text
        return result

    async def _retrieve(self, org_id: str, agent: Agent, text: str, *, turn_id: str, dry_run: bool,
                        conversation_id: str | None) -> RetrievalResult:
        # Billed with the turn (test chat apart from replies), once per turn even if it is retried.
        usage = translation_usage(org_id, agent.id, turn_id=turn_id, conversation_id=conversation_id,
                                  purpose="test_chat" if dry_run else "query_translation")
        try:
            result = await self.retriever.retrieve(org_id, agent.id, text, limit=self.retrieval_limit, usage=usage)
        except Exception:
            log.exception("retrieval_failed", org_id=org_id, agent_id=agent.id)
            return RetrievalResult(chunks=[], nothing_relevant=True)
        # A manager's correction (core/teaching) that is relevant at all comes first: it was
        # written because the other passages led to a wrong answer to this kind of question.
        result.chunks.sort(key=lambda c: not c.metadata.get("correction"))
        return result

    async def _stage_names(self, validator: ToolValidator, agent: Agent) -> dict[tuple[int, int], str]:
        names: dict[tuple[int, int], str] = {}
        for rule in agent.stage_rules:
            pipeline = await validator._pipeline(rule.pipeline_id)
            stage = pipeline.stage(rule.status_id) if pipeline else None
            if stage is not None and not stage.gone:
                names[(rule.pipeline_id, rule.status_id)] = stage.name
        return names

    async def _call(self, org_id: str, agent: Agent, messages: list[dict[str, Any]], tools: list | None,
                    purpose: str, conv_id: str | None, turn_id: str, index: int, result: TurnResult) -> LLMResponse:
        ctx = UsageContext(org_id=org_id, purpose=purpose, idempotency_key=llm_usage_key(turn_id, index),
                           agent_id=agent.id, conversation_id=conv_id)
        started = time.perf_counter()
        response = await self.llm.chat(messages, usage=ctx, tools=tools, model=agent.model,  # type: ignore[union-attr]
                                       temperature=agent.temperature, max_tokens=COMPLETION_RESERVE)
        result.timings["llm"] = result.timings.get("llm", 0.0) + time.perf_counter() - started
        result.usage.add(response.model, response.prompt_tokens, response.completion_tokens)
        return response

    async def _apply(self, result: TurnResult, response: LLMResponse, validator: ToolValidator,
                     prompt: Prompt, dry_run: bool) -> None:
        seen: set[str] = set()
        reply_action: PlannedAction | None = None
        for n, call in enumerate(response.tool_calls[:MAX_ACTIONS], start=1):
            action = await validator.validate(call.name, call.parsed())
            action.key, action.call_id = f"{result.turn_id}:a{n}:{call.name}", call.id
            action.would_do = dry_run and action.valid
            fingerprint = f"{action.kind}:{sorted(action.params.items())!r}"
            if action.valid and fingerprint in seen:
                action.valid, action.refusal_reason = False, "duplicate of an earlier call in this turn"
            seen.add(fingerprint)
            result.planned_actions.append(action)
            if action.valid and action.kind == AgentAction.REPLY and reply_action is None:
                reply_action = action
            if action.valid and action.kind == AgentAction.HANDOFF_TO_HUMAN:
                result.handoff, result.handoff_reason = True, action.params.get("reason")
        cited = list(reply_action.params.get("sources", [])) if reply_action else []
        text = reply_action.params["text"] if reply_action else (response.content or "")
        if AgentAction.REPLY not in set(validator.agent.allowed_actions):
            text = ""
        result.reply_text = self._clean_reply(text, prompt, result, cited)

    def _clean_reply(self, text: str, prompt: Prompt, result: TurnResult, cited: list[str] | None = None) -> str:
        inline = [ref.strip() for group in _CITE.findall(text) for ref in re.split(r"[,;]", group)]
        refs = [r for r in dict.fromkeys([*(cited or []), *inline]) if r in prompt.sources]
        known = {s["ref"] for s in result.sources}
        result.sources += [_source(r, prompt.sources[r]) for r in refs if r not in known]
        text = strip_invisible(_CITE.sub("", text)).strip()
        rules = prompt.messages[0]["content"].split("\n\n", 1)[0] if prompt.messages else ""
        if leaked_value(text, [prompt.nonce], min_chars=4) or leaked_rules(text, rules):
            log.warning("reply_leaked_instructions", turn_id=result.turn_id)
            result.handoff, result.handoff_reason = True, "reply withheld: it quoted the agent's instructions"
            return phrase("handoff", result.language)
        text = redact_secrets(text, self.secrets, broad=False)
        if leaked_value(text, self.secrets):  # a key spelled out with spaces, look-alikes or line breaks
            log.warning("reply_leaked_secret", turn_id=result.turn_id)
            result.handoff, result.handoff_reason = True, "reply withheld: it contained a configured secret"
            return phrase("handoff", result.language)
        return text

    def _handoff(self, result: TurnResult, mode: str, reason: str, phrase_key: str, dry_run: bool) -> TurnResult:
        result.mode, result.handoff, result.handoff_reason = mode, True, reason
        result.reply_text = result.reply_text or phrase(phrase_key, result.language)
        result.error = reason if mode == "handoff_on_error" else None
        result.planned_actions.append(_system_handoff(result.turn_id, reason, dry_run))
        return result

    def _extractive(self, agent: Agent, text: str, retrieval: RetrievalResult, verdict: Verdict, language: str,
                    dry_run: bool, turn_id: str) -> TurnResult:
        result = TurnResult(turn_id=turn_id, reply_text="", language=language, mode="extractive",
                            dry_run=dry_run, relevance=_verdict(verdict))
        if verdict.kind == "small_talk":
            result.reply_text = phrase("small_talk", language)
            return result
        answer = extractive_answer(text, retrieval, language, product=verdict.kind == "product")
        if not verdict.answer or answer.handoff:
            # Below the floor: "not in our information", and a handoff where the agent may hand off.
            reason = verdict.reason if not verdict.answer else "nothing relevant in the knowledge base"
            if AgentAction.HANDOFF_TO_HUMAN in set(agent.allowed_actions):
                result.reply_text = phrase("nothing_found", language)
                result.handoff, result.handoff_reason = True, reason
                result.planned_actions.append(_system_handoff(turn_id, reason, dry_run))
            else:
                result.reply_text = phrase("not_found", language)
            return result
        result.reply_text = answer.text
        result.sources = [_source(f"S{i}", c) for i, c in enumerate(answer.used, 1)]
        return result


def _unjudged(retrieval: RetrievalResult) -> Verdict:
    """A retriever without a relevance floor: its own "nothing relevant" decides."""
    found = bool(retrieval.chunks) and not retrieval.nothing_relevant
    return Verdict(found, "unknown", "retrieved" if found else "nothing relevant in the knowledge base")


def _verdict(verdict: Verdict) -> dict[str, Any]:
    return {"answer": verdict.answer, "kind": verdict.kind, "reason": verdict.reason, **verdict.signals}


def _says_something(text: str) -> bool:
    return len(re.findall(r"\w{2,}", text)) >= 3


def _system_handoff(turn_id: str, reason: str, dry_run: bool) -> PlannedAction:
    return PlannedAction(kind="handoff_to_human", params={"reason": reason}, valid=True, would_do=dry_run,
                         key=f"{turn_id}:handoff")


def _without_current(history: list[Message], customer_text: str) -> list[Message]:
    """Drop trailing customer messages that are part of this turn's text (the engine may have
    stored the burst before calling us), so the prompt does not show them twice."""
    items = list(history)
    while items and items[-1].role == "customer" and items[-1].text.strip() and items[-1].text.strip() in customer_text:
        items.pop()
    return items


def _follow_up_messages(messages: list[dict[str, Any]], response: LLMResponse) -> list[dict[str, Any]]:
    """The model acted but wrote nothing to the customer: report the calls as recorded and ask
    for the message (no tools, so this second call cannot plan more actions)."""
    calls = [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
             for c in response.tool_calls]
    follow = [*messages, {"role": "assistant", "content": response.content or None, "tool_calls": calls}]
    follow += [{"role": "tool", "tool_call_id": c.id, "content": "recorded"} for c in response.tool_calls]
    follow.append({"role": "user", "content": "Now write the message to the customer (plain text)."})
    return follow
