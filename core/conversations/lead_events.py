"""Kommo events about leads and talks -> conversation state.

- A lead's stage changed (`status_lead`): the change is stored in `lead_status_events` (outcome
  reports read it); won (142) or lost (143) closes the lead's conversations, which ends their
  follow-ups and pending turns; a stage that no enabled agent answers closes them too (the agent
  stops when the lead leaves its stages) and one another agent answers hands them to that agent.
- A lead deleted, a talk closed, an incoming lead (unsorted) declined: its conversations close.
- An incoming lead accepted: the lead's stage is read again and treated like a stage change.
A closed conversation opens again when the customer writes on another lead or talk
(`reopen_for`), or, for one closed by the stages, when the lead comes back into an agent's stages.
Our own moves are recognised by the action journal (`by_agent`), never by who Kommo says did it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from core.clock import day_key, utcnow
from core.conversations.context import EngineDeps
from core.conversations.errors import AgentTie
from core.conversations.routing import pick_agent
from core.kommo.errors import KommoError
from core.logging import get_logger
from core.models.agent import Agent
from core.models.conversation import Conversation, ConversationState
from core.models.events import LeadStatusEvent, WebhookEvent

log = get_logger(__name__)
WON, LOST = 142, 143
OWN_WRITE_WINDOW = timedelta(minutes=30)  # how far back a webhook may echo one of our writes
LEFT_STAGES = "left_agent_stages"
# Reasons after which a later event may open the conversation again (not an operator's pause).
REOPENABLE = {"lead_won", "lead_lost", "lead_deleted", "talk_closed", "unsorted_declined", LEFT_STAGES}


def _int(value: Any) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def _at(data: dict[str, Any], fallback: datetime) -> datetime:
    stamp = _int(data.get("updated_at") or data.get("last_modified"))
    if stamp and 946684800 < stamp < 4102444800:  # a plausible unix time (2000..2100), else when we got it
        return datetime.fromtimestamp(stamp, UTC)
    return fallback


async def _close(deps: EngineDeps, org_id: str, conv: Conversation, reason: str) -> bool:
    if conv.state == ConversationState.PAUSED:
        return False  # an operator holds it: theirs to end
    if conv.state == ConversationState.CLOSED and conv.state_reason == reason:
        return False
    await deps.storage.conversations.update(org_id, conv.id, {
        "state": ConversationState.CLOSED, "state_reason": reason, "closed_lead_id": conv.lead_id,
        "closed_talk_id": conv.talk_id})
    log.info("conversation_closed", org_id=org_id, conversation_id=conv.id, reason=reason)
    return_url = (conv.reply_context or {}).get("return_url")
    if return_url:
        # A Salesbot still waiting on this conversation's return_url would wait forever on the
        # lead: continue it empty (a refusal only means the return_url expired).
        try:
            await deps.kommo.release_salesbot(org_id, lead_id=conv.lead_id, return_url=return_url,
                                              status=f"closed_{reason}", idempotency_key=f"{conv.id}:close:{reason}")
        except KommoError as exc:
            log.warning("salesbot_release_failed", org_id=org_id, conversation_id=conv.id, error=str(exc)[:200])
        await deps.storage.conversations.consume_reply_context(org_id, conv.id, return_url)
    return True


async def reopen(deps: EngineDeps, org_id: str, conv: Conversation, agent_id: str | None = None) -> None:
    changes: dict[str, Any] = {"state": ConversationState.BOT_ACTIVE, "state_reason": None,
                               "closed_lead_id": None, "closed_talk_id": None}
    if agent_id:
        changes["agent_id"] = agent_id
    await deps.storage.conversations.update(org_id, conv.id, changes)


def reopen_for(conv: Conversation, lead_id: int | None, talk_id: int | None) -> bool:
    """A customer writing into a conversation closed for a won/lost/deleted lead or a closed
    talk starts a new one when Kommo puts the message on another lead or talk."""
    if conv.state != ConversationState.CLOSED or conv.state_reason not in REOPENABLE - {LEFT_STAGES}:
        return False
    return bool((lead_id and lead_id != conv.closed_lead_id) or (talk_id and talk_id != conv.closed_talk_id))


async def _moved_by_agent(deps: EngineDeps, org_id: str, lead_id: int, status_id: int) -> bool:
    since = utcnow() - OWN_WRITE_WINDOW
    for record in await deps.storage.actions.sent_for_lead(org_id, lead_id, since):
        if record.kind == "move_lead" and _int(record.params.get("status_id")) == status_id:
            return True
    return False


async def _agent_for(deps: EngineDeps, org_id: str, pipeline_id: int | None, status_id: int | None) -> tuple[
        bool, Agent | None]:
    """(decided, agent): the agent that answers this stage now; not decided on a tie."""
    try:
        return True, pick_agent(await deps.storage.agents.enabled(org_id), pipeline_id, status_id)
    except AgentTie:
        return False, None


async def _apply_stage(deps: EngineDeps, org_id: str, convs: list[Conversation], pipeline_id: int | None,
                       status_id: int) -> str:
    if status_id in (WON, LOST):
        reason = "lead_won" if status_id == WON else "lead_lost"
        closed = [await _close(deps, org_id, c, reason) for c in convs]
        return f"closed:{reason}" if any(closed) else "no_change"
    decided, agent = await _agent_for(deps, org_id, pipeline_id, status_id)
    if not decided:
        return "no_change"  # the next turn reports the tie to the admins
    outcome = "no_change"
    for conv in convs:
        if agent is None:
            if conv.state in (ConversationState.BOT_ACTIVE, ConversationState.HANDED_OFF):
                await _close(deps, org_id, conv, LEFT_STAGES)
                outcome = f"closed:{LEFT_STAGES}"
        elif conv.state == ConversationState.CLOSED and conv.state_reason in REOPENABLE:
            await reopen(deps, org_id, conv, agent.id)  # back in an agent's stages (or a lead re-opened)
            outcome = "reopened"
        elif conv.agent_id != agent.id and conv.state == ConversationState.BOT_ACTIVE:
            await deps.storage.conversations.update(org_id, conv.id, {"agent_id": agent.id})
            outcome = "agent_changed"
    return outcome


async def lead_status_changed(deps: EngineDeps, org_id: str, event: WebhookEvent, data: dict[str, Any]) -> str:
    lead_id, status_id = _int(data.get("id")), _int(data.get("status_id"))
    if lead_id is None or status_id is None:
        return "no_lead"
    pipeline_id = _int(data.get("pipeline_id"))
    convs = await deps.storage.conversations.list(org_id, {"lead_id": lead_id}, sort=[("created_at", -1)], limit=20)
    at = _at(data, event.received_at)
    await deps.storage.lead_status_events.record(org_id, LeadStatusEvent(
        _id=f"lse_{event.id}", org_id=org_id, agent_id=next((c.agent_id for c in convs if c.agent_id), None),
        conversation_id=convs[0].id if convs else None, lead_id=lead_id, pipeline_id=pipeline_id,
        old_pipeline_id=_int(data.get("old_pipeline_id")), new_status_id=status_id,
        old_status_id=_int(data.get("old_status_id")), won=status_id == WON, lost=status_id == LOST,
        by_agent=await _moved_by_agent(deps, org_id, lead_id, status_id), at=at, day=day_key(at),
        event_id=event.id))
    return await _apply_stage(deps, org_id, convs, pipeline_id, status_id)


async def lead_deleted(deps: EngineDeps, org_id: str, data: dict[str, Any]) -> str:
    lead_id = _int(data.get("id"))
    if lead_id is None:
        return "no_lead"
    closed = [await _close(deps, org_id, c, "lead_deleted")
              for c in await deps.storage.conversations.list(org_id, {"lead_id": lead_id}, limit=20)]
    return "closed:lead_deleted" if any(closed) else "no_change"


async def talk_updated(deps: EngineDeps, org_id: str, data: dict[str, Any]) -> str:
    """Kommo reports a closed talk as an update with `is_in_work` off."""
    if str(data.get("is_in_work", "1")).strip().lower() not in ("0", "false", ""):
        return "no_action"
    talk_id = _int(data.get("talk_id") or data.get("id"))
    conv = None
    if data.get("chat_id"):
        conv = await deps.storage.conversations.by_key(org_id, f"chat:{data['chat_id']}")
    if conv is None and _int(data.get("entity_id")):
        found = await deps.storage.conversations.list(org_id, {"lead_id": _int(data["entity_id"])}, limit=5)
        conv = next((c for c in found if c.talk_id == talk_id), None)
    if conv is None or (talk_id and conv.talk_id and conv.talk_id != talk_id):
        return "no_change"  # an older talk of the chat: the current one is still open
    return "closed:talk_closed" if await _close(deps, org_id, conv, "talk_closed") else "no_change"


def _lead_ids(data: dict[str, Any], result_key: str) -> list[int]:
    ids: list[int] = []
    for source in ((data.get(result_key) or {}).get("leads") if isinstance(data.get(result_key), dict) else None,
                   (data.get("data") or {}).get("leads") if isinstance(data.get("data"), dict) else None):
        items = source.values() if isinstance(source, dict) else source if isinstance(source, list) else []
        for item in items:
            lead_id = _int(item.get("id") if isinstance(item, dict) else item)
            if lead_id is not None and lead_id not in ids:
                ids.append(lead_id)
    if _int(data.get("lead_id")) is not None and _int(data["lead_id"]) not in ids:
        ids.append(_int(data["lead_id"]))  # type: ignore[arg-type]
    return ids


async def unsorted_resolved(deps: EngineDeps, org_id: str, data: dict[str, Any]) -> str:
    """`unsorted[delete]` with `action` accept or decline (Kommo's incoming-leads stage)."""
    action = str(data.get("action") or "").lower()
    if action == "decline":
        closed = []
        for lead_id in _lead_ids(data, "decline_result"):
            for conv in await deps.storage.conversations.list(org_id, {"lead_id": lead_id}, limit=20):
                closed.append(await _close(deps, org_id, conv, "unsorted_declined"))
        return "closed:unsorted_declined" if any(closed) else "no_change"
    if action != "accept":
        return "no_action"
    outcome = "no_change"
    for lead_id in _lead_ids(data, "accept_result"):
        convs = await deps.storage.conversations.list(org_id, {"lead_id": lead_id}, limit=20)
        if not convs:
            continue
        try:  # the accepted lead's stage, as Kommo has it now (the hook does not say)
            lead = await deps.kommo.lead(org_id, lead_id)
        except KommoError as exc:
            log.warning("accepted_lead_unreadable", org_id=org_id, lead_id=lead_id, error=str(exc)[:200])
            continue
        if lead and _int(lead.get("status_id")) is not None:
            outcome = await _apply_stage(deps, org_id, convs, _int(lead.get("pipeline_id")), int(lead["status_id"]))
    return outcome
