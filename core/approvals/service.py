"""Approval cards: a draft reply waiting for one of the agent's approvers.

The conversation engine hands a planned turn of an agent in approval mode to `submit` instead of
carrying it out: the card (one per turn, `_id` = the turn id) stores the customer's messages,
the draft, its sources and the planned Kommo actions, and a notification of kind `approval`
tells the console to show it to the approvers.

A decision is an atomic claim on the card (`status: pending` -> the decision, one `update_one`
filtered by `_id` and status): of two approvers pressing at once exactly one matches, the other
is told who decided. A claimed Send, Edit or Reject is then carried out by a worker
(`execute`, over the engine's dependencies: the action journal makes a redelivery harmless).
A card whose conversation moved on (a newer customer or manager message, or a handoff) is
stale and is never sent. `expire_due` applies the agent's rule to cards nobody answered in time.
Every change bumps `rev` and sets `dirty`, so the console re-renders each copy of the card.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.errors import DuplicateKeyError

from core.clock import utcnow
from core.conversations.context import EngineDeps
from core.conversations.handoff import hand_off
from core.conversations.turns import carry_out
from core.errors import AlreadyExists, InvalidInput, KommoAgentError, NotFound
from core.logging import get_logger
from core.models.agent import Agent, ApprovalTimeoutAction, ReplyMode
from core.models.conversation import Conversation, ConversationState, Message
from core.models.org import Operator
from core.storage import Storage
from core.storage.repositories.base import scope
from core.storage.repositories.turns import TurnPlan

log = get_logger(__name__)
COLLECTION = "approvals"
PENDING, EDITING, SENDING, REJECTING = "pending", "editing", "sending", "rejecting"
SENT, REJECTED, STALE, FAILED = "sent", "rejected", "stale", "failed"
OPEN = (PENDING, EDITING)


def _as_datetime(value: Any) -> datetime:
    """A stored date as a timezone-aware datetime (some stores hand dates back as ISO strings)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class ApprovalError(KommoAgentError):
    code = "approval_error"


class AlreadyDecided(ApprovalError):
    """Someone else decided first (or the card ended otherwise)."""

    code = "approval_taken"


class ApprovalStale(ApprovalError):
    code = "approval_stale"


class NotYourEdit(ApprovalError):
    code = "approval_not_your_edit"


class ApprovalService:
    def __init__(self, storage: Storage, queue=None) -> None:
        self.storage = storage
        self.queue = queue  # core.ports.TaskQueue: decisions are carried out by a worker
        self.col = storage.db[COLLECTION]
        self.claims = storage.db[COLLECTION + "_claims"]

    # --- the engine's side -----------------------------------------------------------------
    async def wants(self, org_id: str, plan: TurnPlan) -> Agent | None:
        """The agent, if this plan's reply must wait for approval."""
        if not plan.agent_id or not plan.reply_text:
            return None
        agent = await self.storage.agents.get(org_id, plan.agent_id)
        return agent if agent is not None and agent.reply_mode == ReplyMode.APPROVAL else None

    async def submit(self, org_id: str, conv: Conversation, plan: TurnPlan, agent: Agent,
                     customer_messages: list[str]) -> str:
        now = utcnow()
        card = {"_id": plan.id, "org_id": org_id, "conversation_id": conv.id, "agent_id": agent.id,
                "agent_name": agent.name, "lead_id": conv.lead_id, "customer_messages": customer_messages[-5:],
                "draft": plan.reply_text, "sources": plan.sources, "actions": plan.actions,
                "handoff": plan.handoff, "language": plan.language, "status": PENDING, "created_at": now,
                "deadline": now + timedelta(seconds=agent.approval_timeout_s),
                "deadline_ts": (now + timedelta(seconds=agent.approval_timeout_s)).timestamp(),
                "timeout_action": agent.approval_timeout_action.value, "copies": {}, "rev": 1, "dirty": False,
                "decision": "", "decided_by": "", "decided_at": None, "edit_text": "", "error": ""}
        try:
            await self.col.insert_one(card)
        except Exception as exc:  # a redelivered turn: the card exists already
            if "duplicate" not in str(exc).lower():
                raise
            return "awaiting_approval"
        # Cards of this conversation still waiting are overtaken by the newer draft.
        async for older in self.col.find(scope(org_id, {"conversation_id": conv.id, "status": PENDING})):
            if older["_id"] != plan.id:
                await self._claim(org_id, older["_id"], (PENDING,), STALE, "stale", None, "")
        await self.storage.notifications.publish(org_id, "approval", audience="approvers",
                                                 dedupe_key=f"{plan.id}:approval", card_id=plan.id,
                                                 lead_id=conv.lead_id, conversation_id=conv.id)
        return "awaiting_approval"

    # --- the console's side ----------------------------------------------------------------
    async def card(self, org_id: str, card_id: str) -> dict[str, Any]:
        doc = await self.col.find_one(scope(org_id, {"_id": card_id}))
        if doc is None:
            raise NotFound("approval card not found", card_id=card_id)
        return doc

    async def is_stale(self, org_id: str, card: dict[str, Any]) -> bool:
        """The conversation moved on since the draft: a newer customer or manager message, or a
        person took it over."""
        conv = await self.storage.conversations.get(org_id, card["conversation_id"])
        if conv is None or conv.state != ConversationState.BOT_ACTIVE:
            return True
        since = _as_datetime(card["created_at"])
        recent = await self.storage.messages.list(org_id, {"conversation_id": conv.id, "role": {"$ne": "agent"}},
                                                  sort=[("created_at", -1)], limit=1)
        return bool(recent) and _as_datetime(recent[0].created_at) > since

    async def decide(self, org_id: str, card_id: str, operator: Operator, decision: str,
                     name: str = "") -> dict[str, Any]:
        """`decision`: send | edit | reject. Raises AlreadyDecided (with who) when another
        approver was first, ApprovalStale when the conversation moved on (then the card ends stale)."""
        card = await self.card(org_id, card_id)
        if decision == "send" and card["status"] == PENDING and await self.is_stale(org_id, card):
            await self._claim(org_id, card_id, (PENDING,), STALE, "stale", None, "")
            raise ApprovalStale("the conversation moved on; the draft was not sent")
        target = {"send": SENDING, "edit": EDITING, "reject": REJECTING}[decision]
        changed = await self._claim(org_id, card_id, (PENDING,), target, decision, operator, name)
        if not changed:
            card = await self.card(org_id, card_id)
            claim = await self.claims.find_one({"_id": f"{card_id}:{PENDING}"}) or {}
            if card["status"] == STALE or claim.get("decision") == "stale":
                raise ApprovalStale("the conversation moved on; the draft was not sent")
            raise AlreadyDecided("another approver decided first", by=claim.get("by") or card["decided_by"] or "—",
                                 decision=claim.get("decision") or card["decision"] or card["status"])
        if decision != "edit":
            await self.queue.approval_decided(org_id, card_id)
        return await self.card(org_id, card_id)

    async def submit_edit(self, org_id: str, card_id: str, operator: Operator, text: str) -> dict[str, Any]:
        text = (text or "").strip()
        if not text:
            raise InvalidInput("the reply is empty")
        card = await self.card(org_id, card_id)
        if card["status"] != EDITING or card.get("decided_by_operator_id") != operator.id:
            raise NotYourEdit("this card is not waiting for your text")
        if await self.is_stale(org_id, card):
            await self.end(org_id, card_id, (EDITING,), STALE, decision="stale")
            raise ApprovalStale("the conversation moved on; the reply was not sent")
        result = await self.col.update_one(scope(org_id, {"_id": card_id, "status": EDITING}), {
            "$set": {"status": SENDING, "edit_text": text, "decision": "edit", "decided_at": utcnow(), "dirty": True},
            "$inc": {"rev": 1}})
        if not result.matched_count:
            raise AlreadyDecided("the card changed meanwhile", by=card["decided_by"], decision=card["decision"])
        await self.queue.approval_decided(org_id, card_id)
        return await self.card(org_id, card_id)

    async def _claim(self, org_id: str, card_id: str, from_states: tuple[str, ...], to: str, decision: str,
                     operator: Operator | None, name: str) -> bool:
        """Exactly one decision per card: the claim is an insert under the card's id (the unique
        `_id` decides between two approvers pressing at once; nx-27017 does not make a filtered
        update atomic against a concurrent one)."""
        card = await self.col.find_one(scope(org_id, {"_id": card_id}))
        if card is None or card["status"] not in from_states:
            return False
        by = name or (operator.name if operator else "")
        try:
            await self.claims.insert_one({"_id": f"{card_id}:{card['status']}", "org_id": org_id, "card_id": card_id,
                                          "decision": decision, "by": by, "at": utcnow()})
        except DuplicateKeyError:
            return False
        await self.col.update_one(scope(org_id, {"_id": card_id}), {
            "$set": {"status": to, "decision": decision, "decided_by": by,
                     "decided_by_operator_id": operator.id if operator else "", "decided_at": utcnow(),
                     "dirty": True}, "$inc": {"rev": 1}})
        return True

    async def end(self, org_id: str, card_id: str, from_states: tuple[str, ...], to: str, *, decision: str = "",
                   error: str = "") -> bool:
        for state in from_states:
            changes: dict[str, Any] = {"status": to, "dirty": True, "error": error[:300]}
            if decision:
                changes.update(decision=decision, decided_at=utcnow())
            result = await self.col.update_one(scope(org_id, {"_id": card_id, "status": state}),
                                               {"$set": changes, "$inc": {"rev": 1}})
            if result.matched_count:
                return True
        return False

    # --- the worker's side -----------------------------------------------------------------
    async def execute(self, deps: EngineDeps, org_id: str, card_id: str) -> str:
        """Carry out a claimed decision: send (the draft or the edit) with the planned actions,
        or hand the conversation to a human."""
        card = await self.card(org_id, card_id)
        conv = await self.storage.conversations.get(org_id, card["conversation_id"])
        plan = await self.storage.turns.get(org_id, card_id)
        if conv is None or plan is None:
            await self.end(org_id, card_id, (SENDING, REJECTING), FAILED, error="the conversation is gone")
            return FAILED
        if card["status"] == REJECTING:
            reason = "approval_timeout" if card["decision"].startswith("timeout") else "rejected_by_approver"
            await hand_off(deps, org_id, conv, reason=reason, turn_id=plan.id, draft=plan.reply_text,
                           language=plan.language)
            await self.end(org_id, card_id, (REJECTING,), REJECTED)
            return REJECTED
        if card["status"] != SENDING:
            return card["status"]  # done already (a redelivered task)
        if await self.is_stale(org_id, card):
            await self.end(org_id, card_id, (SENDING,), STALE)
            return STALE
        if card.get("edit_text"):
            plan = plan.model_copy(update={"reply_text": card["edit_text"]})
        outcome = await carry_out(deps, org_id, conv, plan)
        if outcome != "replied":
            await self.end(org_id, card_id, (SENDING,), FAILED, error=outcome)
            return FAILED
        try:
            await self.storage.messages.insert(org_id, Message(
                _id=f"msg_{plan.id}", org_id=org_id, conversation_id=conv.id, role="agent", text=plan.reply_text,
                turn_id=plan.id, sources=plan.sources, usage=plan.usage))
        except AlreadyExists:
            pass
        await self.storage.conversations.update(org_id, conv.id, {"last_reply_at": deps.clock(),
                                                                  "last_reply_text": plan.reply_text})
        await self.end(org_id, card_id, (SENDING,), SENT)
        return SENT

    async def expire_due(self, deps: EngineDeps, now: datetime | None = None) -> int:
        """Cards nobody answered in time follow their agent's rule (hand off, or send anyway)."""
        now = now or utcnow()
        count = 0
        async for card in self.col.find({"status": PENDING, "deadline_ts": {"$lte": now.timestamp()}}):
            org_id = card["org_id"]
            send = card.get("timeout_action") == ApprovalTimeoutAction.SEND.value
            if send and await self.is_stale(org_id, card):
                await self._claim(org_id, card["_id"], (PENDING,), STALE, "stale", None, "")
                continue
            to, decision = (SENDING, "timeout_send") if send else (REJECTING, "timeout_handoff")
            if await self._claim(org_id, card["_id"], (PENDING,), to, decision, None, ""):
                count += 1
                try:
                    await self.execute(deps, org_id, card["_id"])
                except Exception:
                    log.exception("approval_timeout_failed", org_id=org_id, card_id=card["_id"])
        return count

    # --- showing the card ------------------------------------------------------------------
    async def shown(self, org_id: str, card_id: str, chat_id: int, message_id: int) -> None:
        # A map by chat (not an array push): one copy per approver even if a send is repeated.
        await self.col.update_one(scope(org_id, {"_id": card_id}), {"$set": {f"copies.{chat_id}": message_id}})

    async def dirty(self, limit: int = 50) -> list[dict[str, Any]]:
        return [d async for d in self.col.find({"dirty": True}, limit=limit)]

    async def rendered(self, org_id: str, card_id: str, rev: int) -> None:
        await self.col.update_one(scope(org_id, {"_id": card_id, "rev": rev}), {"$set": {"dirty": False}})
