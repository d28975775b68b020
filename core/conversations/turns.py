"""One turn: the customer's unanswered messages (a debounced burst) -> exactly one reply.

Exactly-once, step by step:
1. Under the conversation lock, the unanswered messages are stamped with a turn id derived from
   the last of them, and the conversation remembers it as `pending_turn_id`.
2. The decision (gates, then the agent runtime) is saved as a `TurnPlan` before anything is
   executed; a redelivered turn re-reads the plan instead of asking the LLM again.
3. Every side effect goes through the action journal under `<turn id>:<what>` keys, so a retry
   skips what was already sent.
4. The conversation's counters move once per turn (`finish_turn` is conditional on the turn id).
"""

from __future__ import annotations

import time
from contextlib import AsyncExitStack
from datetime import datetime
from typing import Any

from core.clock import day_key
from core.conversations.context import EngineDeps
from core.conversations.decide import HISTORY_LIMIT, decide
from core.conversations.errors import ConversationBusy, ReplyWithheld, RetryLater
from core.conversations.handoff import hand_off
from core.conversations.locks import conversation_lock, organisation_slot
from core.errors import AlreadyExists
from core.kommo.errors import TRANSIENT, ActionInProgress, DeliverySetupBroken, KommoError, MaybeSent
from core.logging import get_logger
from core.models.agent import DeliveryMode
from core.models.conversation import Conversation, ConversationState, Message
from core.storage.repositories.turns import TurnPlan
from core.usage.metering import UsageContext

log = get_logger(__name__)
MAX_TURN_ATTEMPTS = 20


async def run_turn(deps: EngineDeps, org_id: str, conversation_id: str, trigger_message_id: str | None) -> str:
    try:
        async with AsyncExitStack() as held:
            if deps.turns_per_org:
                await held.enter_async_context(organisation_slot(deps.redis, org_id, deps.turns_per_org))
            await held.enter_async_context(conversation_lock(deps.redis, org_id, conversation_id,
                                                             wait_s=deps.lock_wait_s))
            return await _run_locked(deps, org_id, conversation_id, trigger_message_id)
    except ConversationBusy:
        raise RetryLater("another worker is answering this conversation", countdown=2.0) from None


async def _run_locked(deps: EngineDeps, org_id: str, conversation_id: str, trigger: str | None) -> str:
    conv = await deps.storage.conversations.get(org_id, conversation_id)
    if conv is None:
        return "no_conversation"
    waited = _queue_delay(deps, conv)
    turn_id = conv.pending_turn_id
    fresh = turn_id is None
    recent, unanswered = await deps.storage.messages.recent_and_unanswered(org_id, conv.id, limit=HISTORY_LIMIT)
    if fresh:
        if not unanswered:
            return "nothing_to_answer"
        if trigger is not None and unanswered[-1].id != trigger:
            # A later message arrived in the debounce window: its own task answers the burst.
            return "superseded"
        turn_id = f"turn_{unanswered[-1].id}"
        # The conversation remembers the turn before its messages are stamped: a crash between
        # the two writes resumes this turn (and stamps them below) instead of losing them.
        await deps.storage.conversations.update(org_id, conv.id, {"pending_turn_id": turn_id, "turn_attempts": 1})
    else:
        # Resuming a turn an earlier run did not finish. A turn that keeps failing (a bug, a
        # poisoned message) must not loop forever through redeliveries and sweeps.
        attempts = conv.turn_attempts + 1
        await deps.storage.conversations.update(org_id, conv.id, {"turn_attempts": attempts})
        if attempts > MAX_TURN_ATTEMPTS:
            await fail_turn(deps, org_id, conv.id, f"turn {turn_id} failed {attempts - 1} times")
            return "failed"
    burst = _burst(unanswered, turn_id)
    if burst:
        await deps.storage.messages.assign_turn(org_id, [m.id for m in burst], turn_id)
    # A turn claimed just now cannot have a plan yet, and its messages are the burst: skip both
    # reads. A resumed turn re-reads them (an earlier run may have stamped more).
    plan = None if fresh else await deps.storage.turns.get(org_id, turn_id)
    if plan is None:
        started = time.perf_counter()
        burst_ids = {m.id for m in burst}
        plan = await decide(deps, org_id, conv, turn_id, messages=burst if fresh else None,
                            history=[m for m in recent if m.id not in burst_ids] if fresh else None)
        plan.timings["decide"] = time.perf_counter() - started
        plan.timings["queue"] = waited
        plan = await deps.storage.turns.save_plan(org_id, plan)
    if plan.outcome == "planned" and deps.review is not None and (agent := await deps.review.wants(org_id, plan)):
        # Approval mode: the draft goes to the approvers instead of the customer.
        outcome = await deps.review.submit(org_id, conv, plan, agent, [m.text for m in burst if m.text])
        await deps.storage.turns.finish(org_id, turn_id, outcome, {})
    elif plan.outcome == "planned":
        started = time.perf_counter()
        outcome = await carry_out(deps, org_id, conv, plan)
        timings = {"execute": time.perf_counter() - started, "kommo_send": plan.timings.get("kommo_send", 0.0)}
        await deps.storage.turns.finish(org_id, turn_id, outcome, timings)
    else:
        outcome = plan.outcome  # finished earlier; the bookkeeping below may not have been
    return_url = (conv.reply_context or {}).get("return_url")
    if return_url and outcome != "replied":
        # No reply this turn (handoff, quota, hours, skipped, error): the Salesbot still waits on
        # its return_url, so continue it empty rather than leave it hanging on the lead.
        await release_bot(deps, org_id, conv, return_url, outcome.split(":")[-1], f"{turn_id}:release")
    await _record(deps, org_id, conv, plan, replied=outcome == "replied")
    return outcome


async def release_bot(deps: EngineDeps, org_id: str, conv: Conversation, return_url: str, status: str,
                      key: str) -> None:
    """Continue a bot waiting on `return_url` without a reply; a refusal is logged, not fatal
    (the return_url may have expired), and the return_url is forgotten either way."""
    try:
        await deps.kommo.release_salesbot(org_id, lead_id=conv.lead_id, return_url=return_url, status=status,
                                          idempotency_key=key)
    except (*TRANSIENT, ActionInProgress) as exc:
        raise RetryLater(f"Kommo is temporarily unavailable: {exc}") from exc
    except KommoError as exc:
        log.warning("salesbot_release_failed", org_id=org_id, conversation_id=conv.id, error=str(exc)[:200])
    await deps.storage.conversations.consume_reply_context(org_id, conv.id, return_url)


def _burst(unanswered: list[Message], turn_id: str) -> list[Message]:
    """The unanswered messages up to and including the turn's last one (later ones belong to
    the next turn)."""
    last_id = turn_id.removeprefix("turn_")
    burst = []
    for message in unanswered:
        burst.append(message)
        if message.id == last_id:
            return burst
    return []


def _queue_delay(deps: EngineDeps, conv: Conversation) -> float:
    """Seconds between the customer's last message being recorded and its turn starting, beyond
    the debounce window: a debounced turn's wait in the broker (taken before deciding, so the
    decision's own time is not counted twice)."""
    if conv.last_customer_at is None:
        return 0.0
    return max(0.0, (deps.clock() - conv.last_customer_at).total_seconds() - deps.debounce_s)


async def _execute_action(deps: EngineDeps, org_id: str, lead_id: int, action: dict[str, Any], key: str,
                          plan: TurnPlan) -> None:
    p = action["params"]
    if action["kind"] == "move_lead_stage":
        await deps.kommo.move_lead(org_id, lead_id=lead_id, pipeline_id=p["pipeline_id"],
                                   status_id=p["status_id"], idempotency_key=key)
    elif action["kind"] == "create_task":

        await deps.kommo.create_task(org_id, lead_id=lead_id, text=p["text"],
                                     deadline=datetime.fromisoformat(p["due_at"]),
                                     responsible_user_id=p.get("responsible_user_id"), idempotency_key=key)
    elif action["kind"] == "update_lead_field":
        # The agent's allowlist as it is now: a field taken off it since the plan is not written.
        agent = await deps.storage.agents.get(org_id, plan.agent_id) if plan.agent_id else None
        await deps.kommo.update_lead_field(org_id, lead_id=lead_id, field_id=p["field_id"], value=p["value"],
                                           enum_id=p.get("enum_id"), idempotency_key=key,
                                           allowed_field_ids=agent.writable_field_ids if agent else [])


async def carry_out(deps: EngineDeps, org_id: str, conv: Conversation, plan: TurnPlan) -> str:
    """Execute a saved plan; returns the turn's outcome."""
    try:
        for i, action in enumerate(plan.actions):
            if conv.lead_id:
                await _execute_action(deps, org_id, conv.lead_id, action, action.get("key") or f"{plan.id}:a{i}", plan)
        if plan.reply_text:
            mode = await _delivery_mode(deps, org_id, plan)
            started = time.perf_counter()

            async def still_ours() -> str | None:
                # Right before the customer-visible call (a redelivered turn may come minutes later).
                now = await deps.storage.conversations.get(org_id, conv.id)
                if now is None or now.state != ConversationState.BOT_ACTIVE:
                    return f"the conversation is {now.state.value if now else 'gone'}: a human has it"
                return None

            await deps.kommo.send_reply(org_id, lead_id=conv.lead_id, text=plan.reply_text, mode=mode,
                                        idempotency_key=f"{plan.id}:reply", context=conv.reply_context,
                                        precheck=still_ours)
            plan.timings["kommo_send"] = time.perf_counter() - started
            if mode == DeliveryMode.SALESBOT:  # the return_url is single-use: a reply consumes it
                await deps.storage.conversations.consume_reply_context(org_id, conv.id,
                                                                       conv.reply_context["return_url"])
        if plan.handoff:
            await hand_off(deps, org_id, conv, reason=plan.handoff_reason or "agent_decided", turn_id=plan.id,
                           language=plan.language)
    except ReplyWithheld as exc:
        log.info("reply_withheld", org_id=org_id, turn_id=plan.id, reason=str(exc))
        return "withheld"
    except MaybeSent as exc:
        # Kommo may have shown it already and cannot be asked: the operators check the chat,
        # the conversation goes to a human, nothing is sent again.
        log.warning("reply_maybe_sent", org_id=org_id, turn_id=plan.id, error=str(exc))
        await deps.storage.notifications.publish(org_id, "reply_failed", dedupe_key=f"{plan.id}:maybe_sent",
                                                 conversation_id=conv.id, lead_id=conv.lead_id, maybe_sent=True,
                                                 error=f"the reply may have reached the customer already; check "
                                                       f"the chat before answering ({exc})"[:300])
        await _safe_handoff(deps, org_id, conv, plan, "delivery_failed")
        return "maybe_sent"
    except (*TRANSIENT, ActionInProgress) as exc:
        raise RetryLater(f"Kommo is temporarily unavailable: {exc}",
                         countdown=getattr(exc, "retry_after", None)) from exc
    except KommoError as exc:
        # Permanent (validation, auth, blocked): a human gets the draft, the admins an alert. A
        # broken delivery set-up (bot or field gone) alerts once per set-up, not per message.
        log.warning("turn_delivery_failed", org_id=org_id, turn_id=plan.id, error=str(exc))
        dedupe = f"{plan.id}:failed"
        if isinstance(exc, DeliverySetupBroken):
            dedupe = f"delivery_broken:{exc.params.get('version')}:{exc.params.get('what')}"
        await deps.storage.notifications.publish(org_id, "reply_failed", dedupe_key=dedupe,
                                                 conversation_id=conv.id, lead_id=conv.lead_id, error=str(exc)[:300])
        await _safe_handoff(deps, org_id, conv, plan, "delivery_failed")
        return "delivery_failed"
    return "replied" if plan.reply_text else ("handed_off" if plan.handoff else "done")


async def _delivery_mode(deps: EngineDeps, org_id: str, plan: TurnPlan) -> DeliveryMode:
    if plan.delivery_mode:
        return DeliveryMode(plan.delivery_mode)
    agent = await deps.storage.agents.get(org_id, plan.agent_id) if plan.agent_id else None
    return agent.delivery_mode if agent else DeliveryMode.NOTE_DRAFT


async def _safe_handoff(deps: EngineDeps, org_id: str, conv: Conversation, plan: TurnPlan, reason: str) -> None:
    try:
        await hand_off(deps, org_id, conv, reason=reason, turn_id=plan.id, draft=plan.reply_text,
                       language=plan.language)
    except KommoError:
        # Kommo refuses even the note: the state still changes and the admins were alerted.
        await hand_off(deps, org_id, conv, reason=reason, notify_humans=False)


async def _record(deps: EngineDeps, org_id: str, conv: Conversation, plan: TurnPlan, *, replied: bool) -> None:
    """Store the agent's message and move the counters; safe to repeat for the same turn."""
    if replied:
        try:
            await deps.storage.messages.insert(org_id, Message(
                _id=f"msg_{plan.id}", org_id=org_id, conversation_id=conv.id, role="agent", text=plan.reply_text,
                turn_id=plan.id, sources=plan.sources, usage=plan.usage))
        except AlreadyExists:
            pass  # recorded by an earlier attempt of this turn
    changes: dict[str, Any] = {"summary": plan.summary or conv.summary}
    if plan.agent_id and conv.agent_id != plan.agent_id:
        changes["agent_id"] = plan.agent_id  # the agent that answers this conversation now
    if replied:
        changes.update(last_reply_at=deps.clock(), last_reply_text=plan.reply_text)
        if plan.mode == "out_of_hours":
            changes["out_of_hours_notified_day"] = day_key(deps.clock())
    await deps.storage.conversations.finish_turn(org_id, conv.id, plan.id, replied=replied, changes=changes)
    if deps.meter is not None and plan.agent_id and (replied or plan.handoff):
        # Once per turn (keyed by it), so a repeated bookkeeping pass does not count it again.
        ctx = UsageContext(org_id=org_id, purpose="reply", idempotency_key=f"turn:{plan.id}", agent_id=plan.agent_id,
                           conversation_id=conv.id, lead_id=conv.lead_id)
        # Plans count the agent's answers, not the fixed handoff and out-of-hours notices.
        answered = replied and plan.mode not in ("handoff_notice", "out_of_hours")
        await deps.meter.record_turn(ctx, replied=answered, handoff=plan.handoff)


async def fail_turn(deps: EngineDeps, org_id: str, conversation_id: str, error: str) -> None:
    """Retries are exhausted: hand the conversation to a human and alert the admins."""
    conv = await deps.storage.conversations.get(org_id, conversation_id)
    if conv is None:
        return
    await deps.storage.notifications.publish(org_id, "turn_failed", dedupe_key=f"{conv.pending_turn_id}:failed",
                                             conversation_id=conv.id, lead_id=conv.lead_id, error=error[:300])
    plan = await deps.storage.turns.get(org_id, conv.pending_turn_id) if conv.pending_turn_id else None
    try:
        if plan is not None:
            await _safe_handoff(deps, org_id, conv, plan, "delivery_failed")
        else:
            await hand_off(deps, org_id, conv, reason="llm_failed", turn_id=conv.pending_turn_id)
    except KommoError:
        await hand_off(deps, org_id, conv, reason="delivery_failed", notify_humans=False)
    if (conv.reply_context or {}).get("return_url"):
        try:
            await release_bot(deps, org_id, conv, conv.reply_context["return_url"], "failed",
                              f"{conv.pending_turn_id or conv.id}:release")
        except RetryLater:
            log.warning("salesbot_release_skipped", org_id=org_id, conversation_id=conv.id)
    if conv.pending_turn_id:
        await deps.storage.turns.finish(org_id, conv.pending_turn_id, "failed")
        await deps.storage.conversations.finish_turn(org_id, conv.id, conv.pending_turn_id, replied=False,
                                                     changes={})
