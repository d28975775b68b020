"""Decide a turn: which agent, whether it may answer now, and what it answers.

The result is a `TurnPlan` (saved before execution). Gates run in the order of the issue:
agent enabled and stage in scope -> conversation state -> working hours -> quota -> max
replies -> the agent runtime.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from core.ai.answer.phrases import phrase
from core.ai.answer.turn import TurnResult
from core.ai.errors import LLMError
from core.clock import day_key
from core.conversations.context import EngineDeps
from core.conversations.errors import AgentTie, RetryLater
from core.conversations.handoff import resume, resume_due
from core.conversations.hours import is_within_hours, zone_name
from core.conversations.lead_events import LEFT_STAGES
from core.conversations.routing import needs_lead_stage, pick_agent
from core.errors import InvalidInput
from core.kommo.errors import TRANSIENT, ActionInProgress, KommoError
from core.logging import get_logger
from core.models.agent import Agent, DeliveryMode
from core.models.conversation import Conversation, ConversationState, Message
from core.storage.repositories.turns import TurnPlan

log = get_logger(__name__)
HISTORY_LIMIT = 30  # messages of conversation memory given to the runtime


def _skip(org_id: str, conv: Conversation, turn_id: str, why: str, agent: Agent | None = None,
          message_ids: list[str] | None = None) -> TurnPlan:
    return TurnPlan(_id=turn_id, org_id=org_id, conversation_id=conv.id, agent_id=agent.id if agent else None,
                    message_ids=message_ids or [], outcome=f"skipped:{why}")


def with_handoff_notice(plan: TurnPlan) -> TurnPlan:
    """A customer handed to a human is told so, rather than left waiting in silence."""
    if plan.handoff and not plan.reply_text:
        return plan.model_copy(update={"reply_text": phrase("handoff", plan.language), "mode": "handoff_notice"})
    return plan


def plan_from_result(org_id: str, conv: Conversation, agent_id: str, turn_id: str, message_ids: list[str],
                     result: TurnResult) -> TurnPlan:
    return TurnPlan(
        _id=turn_id, org_id=org_id, conversation_id=conv.id, agent_id=agent_id, message_ids=message_ids,
        reply_text=result.reply_text, language=result.language, mode=result.mode, sources=result.sources,
        actions=[a.to_dict() for a in result.executable_actions], handoff=result.handoff,
        handoff_reason=result.handoff_reason, checks=result.checks, summary=result.summary,
        usage={"model": result.usage.model, "prompt_tokens": result.usage.prompt_tokens,
               "completion_tokens": result.usage.completion_tokens},
    )



def lead_facts(lead: dict[str, Any] | None, readable: set[int] | None = None) -> dict[str, Any]:
    """The facts of the lead the prompt may use (names and values, no internal ids): name,
    price, tags and the custom fields in `readable` only (the agent's readable and writable ones;
    None: every field, for callers outside a turn)."""
    if not lead:
        return {}
    facts: dict[str, Any] = {"lead_name": lead.get("name"), "price": lead.get("price")}
    for field in lead.get("custom_fields_values") or []:
        if readable is not None and field.get("field_id") not in readable:
            continue
        values = [str(v.get("value")) for v in field.get("values") or [] if v.get("value") is not None]
        if values and field.get("field_name"):
            facts[str(field["field_name"])] = ", ".join(values)
    tags = [t.get("name") for t in (lead.get("_embedded") or {}).get("tags") or [] if t.get("name")]
    if tags:
        facts["tags"] = ", ".join(tags)
    return {k: v for k, v in facts.items() if v not in (None, "", 0)}


async def _fetch_lead(deps: EngineDeps, org_id: str, conv: Conversation) -> tuple[dict | None, Exception | None, float]:
    """The lead as Kommo has it now, or the error (what it means depends on the agents)."""
    if not conv.lead_id:
        return None, None, 0.0
    started = time.perf_counter()
    try:
        return await deps.kommo.lead(org_id, conv.lead_id), None, time.perf_counter() - started
    except KommoError as exc:
        return None, exc, time.perf_counter() - started


async def _history(deps: EngineDeps, org_id: str, conv: Conversation, given: list[Message] | None) -> list[Message]:
    if given is not None:
        return given
    return await deps.storage.messages.recent(org_id, conv.id, limit=HISTORY_LIMIT)


def _lead_or_raise(org_id: str, conv: Conversation, agents: list[Agent], lead: dict | None,
                   error: Exception | None) -> dict[str, Any] | None:
    if error is None:
        return lead
    if isinstance(error, (*TRANSIENT, ActionInProgress)):
        raise RetryLater(f"Kommo is temporarily unavailable: {error}") from error
    if needs_lead_stage(agents):
        raise error  # cannot route without the stage: a permanent failure, handled by the caller
    log.warning("lead_fetch_failed", org_id=org_id, lead_id=conv.lead_id, error=str(error))
    return None


async def _wait_for_widget_request(deps: EngineDeps, org_id: str, conv: Conversation, now) -> dict | None:
    """salesbot mode answers only through a Salesbot's return_url: wait a bounded time for the
    widget_request of this message (it usually follows its add_message within seconds), then
    hand off with one alert a day rather than one per message."""
    waited = (now - conv.last_customer_at).total_seconds() if conv.last_customer_at else deps.salesbot_wait_s
    if waited < deps.salesbot_wait_s:
        raise RetryLater("waiting for the Salesbot widget_request", countdown=min(2.0, deps.salesbot_wait_s - waited))
    await deps.storage.notifications.publish(
        org_id, "reply_failed", dedupe_key=f"salesbot_no_request:{day_key(now)}", conversation_id=conv.id,
        lead_id=conv.lead_id, error=f"no Salesbot widget_request came within {deps.salesbot_wait_s:.0f} s: "
                                    "check that the bot with our widget step runs on incoming messages")
    return {"handoff": True, "handoff_reason": "delivery_failed"}


async def decide(deps: EngineDeps, org_id: str, conv: Conversation, turn_id: str,
                 messages: list[Message] | None = None, history: list[Message] | None = None) -> TurnPlan:
    """`messages`: the turn's customer messages and `history` the conversation before them,
    when the caller has just read them (a fresh turn); otherwise they are read here."""
    if messages is None:
        messages = await deps.storage.messages.of_turn(org_id, turn_id)
    ids = [m.id for m in messages]
    # Independent reads at once: the agents, the lead from Kommo (an HTTP round trip, the
    # slowest of them) and, if not given, the conversation's recent messages for the prompt.
    agents, (lead, lead_error, lead_s), history = await asyncio.gather(
        deps.storage.agents.enabled(org_id), _fetch_lead(deps, org_id, conv), _history(deps, org_id, conv, history))
    if not agents:
        return _skip(org_id, conv, turn_id, "no_agent", message_ids=ids)
    lead = _lead_or_raise(org_id, conv, agents, lead, lead_error)
    try:
        agent = pick_agent(agents, (lead or {}).get("pipeline_id"), (lead or {}).get("status_id"))
    except AgentTie as exc:
        await deps.storage.notifications.publish(org_id, "agent_tie", dedupe_key=f"tie:{exc.params.get('agents')}",
                                                 **exc.params)
        return _skip(org_id, conv, turn_id, "agent_tie", message_ids=ids)
    if agent is None:
        return _skip(org_id, conv, turn_id, "out_of_scope", message_ids=ids)
    now = deps.clock()
    if conv.state == ConversationState.HANDED_OFF and resume_due(conv, agent, now):
        conv = await resume(deps, org_id, conv.id) or conv
    if conv.state == ConversationState.CLOSED and conv.state_reason == LEFT_STAGES:
        conv = await resume(deps, org_id, conv.id) or conv  # the lead is back in an agent's stages
    if conv.state != ConversationState.BOT_ACTIVE:
        return _skip(org_id, conv, turn_id, conv.state.value, agent, ids)
    base = TurnPlan(_id=turn_id, org_id=org_id, conversation_id=conv.id, agent_id=agent.id, message_ids=ids,
                    language=agent.language, delivery_mode=agent.delivery_mode.value)
    if agent.delivery_mode == DeliveryMode.SALESBOT and not (conv.reply_context or {}).get("return_url"):
        waiting = await _wait_for_widget_request(deps, org_id, conv, now)
        if waiting is not None:
            return base.model_copy(update=waiting)
    account = await deps.storage.kommo_accounts.for_org_recent(org_id)
    timezone = account.timezone if account else None  # the Kommo account's own, synced
    try:
        within = is_within_hours(agent.working_hours, now, timezone)
    except InvalidInput as exc:
        log.warning("bad_working_hours", org_id=org_id, agent_id=agent.id, error=str(exc))
        within = True  # a broken schedule must not silence the agent
    if not within:
        text = agent.working_hours.out_of_hours_reply
        if text and conv.out_of_hours_notified_day != day_key(now):
            return base.model_copy(update={"reply_text": text, "mode": "out_of_hours"})
        return _skip(org_id, conv, turn_id, "out_of_hours", agent, ids)
    quota = await deps.quota.check_reply(org_id, agent.id)
    if not quota.allowed:  # the quota policy has told the admins (once per period and limit)
        return with_handoff_notice(base.model_copy(update={"handoff": True, "handoff_reason": "quota"}))
    if conv.replies_count >= agent.max_replies_per_conversation:
        return with_handoff_notice(base.model_copy(update={"handoff": True, "handoff_reason": "max_replies"}))
    text = "\n".join(m.text for m in messages if m.text)
    if not text:
        return with_handoff_notice(base.model_copy(update={"handoff": True, "handoff_reason": "non_text"}))
    # Read here (a resumed turn), history holds this turn's stamped messages: leave them out.
    history = [m for m in history if m.turn_id != turn_id or m.role != "customer"]
    facts = lead_facts(lead, {*agent.readable_field_ids, *agent.writable_field_ids})
    try:
        result = await deps.runtime.run_turn(org_id, agent, customer_text=text, conversation=conv, history=history,
                                             lead_facts=facts, dry_run=False, turn_id=turn_id,
                                             timezone=zone_name(agent.working_hours, timezone))
    except LLMError as exc:  # the runtime turns provider failures into handoffs; this is a backstop
        log.error("runtime_failed", org_id=org_id, turn_id=turn_id, error=str(exc))
        return with_handoff_notice(base.model_copy(update={"handoff": True, "handoff_reason": "llm_failed"}))
    plan = with_handoff_notice(plan_from_result(org_id, conv, agent.id, turn_id, ids, result))
    plan.delivery_mode = agent.delivery_mode.value
    plan.timings = {"kommo_lead": lead_s, **result.timings}
    return plan
