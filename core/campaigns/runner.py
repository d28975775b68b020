"""One batch of a campaign: list the leads once, then for each open target decide, prepare the
text, send it through the agent's delivery mode and record the outcome.

Exactly once, step by step:
1. A target's text is fixed (`prepared`) before sending, so a resumed run sends the same text
   and never pays the LLM twice.
2. The send goes through the action journal under `campaign:<campaign id>:<lead id>`: a resumed
   run that finds it `sent` records the outcome without sending; one that finds it in flight
   follows the journal's documented rule (look it up in Kommo, or wait until it is stale).
3. Targets only leave `pending`/`prepared` once (compare-and-set), and the counters are
   recounted from the targets, never incremented.
Pacing is the Kommo client's: every call waits for the account's slot in the Redis-shared
limiter, so a campaign, the engine's replies and other workers share one budget.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

import redis.asyncio as aioredis

from core.campaigns.eligibility import pick_conversation, skip_reason
from core.campaigns.lock import campaign_lock
from core.campaigns.personalise import Personaliser
from core.campaigns.report import build_report, recount
from core.campaigns.targets import list_targets
from core.campaigns.template import fill
from core.clock import utcnow
from core.conversations.errors import RetryLater
from core.errors import AlreadyExists, NotFound
from core.kommo.errors import (
    TRANSIENT,
    ActionInProgress,
    DeliverySetupBroken,
    KommoAuthError,
    KommoBlocked,
    KommoError,
    KommoForbidden,
    KommoNotConnected,
)
from core.kommo.service import KommoService
from core.logging import get_logger
from core.models.agent import Agent
from core.models.campaign import ACTIVE, Campaign, CampaignStatus, CampaignTarget, TargetState
from core.models.conversation import Conversation, Message
from core.models.events import ActionState
from core.storage import Storage

log = get_logger(__name__)
# What stops every send alike, so the campaign pauses (resumable) instead of failing each lead:
# the connection, or a salesbot_run set-up whose bot or field is gone in Kommo.
CONNECTION_LOST = (KommoNotConnected, KommoBlocked, KommoAuthError, KommoForbidden, DeliverySetupBroken)  # a 403 too
Progress = Callable[[Campaign, dict[str, int]], Awaitable[None] | None]


@dataclass
class CampaignDeps:
    storage: Storage
    redis: aioredis.Redis
    kommo: KommoService
    personaliser: Personaliser
    clock: Callable[[], datetime] = utcnow


@dataclass
class BatchResult:
    campaign: Campaign
    more: bool  # another batch is due
    processed: int = 0
    tally: dict[str, int] = field(default_factory=dict)


def idempotency_key(campaign_id: str, lead_id: int) -> str:
    return f"campaign:{campaign_id}:{int(lead_id)}"


async def run_batch(deps: CampaignDeps, org_id: str, campaign_id: str, *, max_leads: int = 25,
                    progress: Progress | None = None) -> BatchResult:
    async with campaign_lock(deps.redis, org_id, campaign_id):
        return await _run_locked(deps, org_id, campaign_id, max_leads, progress)


async def _run_locked(deps: CampaignDeps, org_id: str, campaign_id: str, max_leads: int,
                      progress: Progress | None) -> BatchResult:
    storage = deps.storage
    campaign = await storage.campaigns.get(org_id, campaign_id)
    if campaign is None:
        raise NotFound(f"campaign {campaign_id!r} not found", campaign_id=campaign_id)
    if campaign.status == CampaignStatus.DONE:
        await announce(deps, campaign)  # in case a crash came between "done" and the notification
    if campaign.status not in ACTIVE:
        return BatchResult(campaign, more=False)
    if not campaign.targets_ready:
        campaign = await _list(deps, campaign)
        if campaign.status != CampaignStatus.RUNNING:
            return BatchResult(campaign, more=False)
    agent = await storage.agents.get(org_id, campaign.agent_id)
    if agent is None:
        return BatchResult(await stop(deps, campaign, CampaignStatus.FAILED, "the agent was deleted"), more=False)
    campaign = await recount(storage, campaign)
    targets = await storage.campaign_targets.open(org_id, campaign_id, max_leads)
    if not targets:
        return BatchResult(await finish(deps, campaign), more=False)
    conversations = await _conversations(deps, org_id, [t.lead_id for t in targets])
    tally = {"sent": campaign.sent, "skipped": campaign.skipped, "failed": campaign.failed}
    processed = 0
    try:
        for target in targets:
            # Cancel stops further sends at the next lead.
            if await storage.campaigns.status_of(org_id, campaign_id) != CampaignStatus.RUNNING:
                return BatchResult(await recount(storage, campaign), more=False, processed=processed)
            outcome = await _one(deps, campaign, agent, target, conversations.get(target.lead_id))
            processed += 1
            if outcome is not None:
                tally[outcome.value] += 1
                if progress is not None:
                    maybe = progress(campaign, dict(tally))
                    if maybe is not None:
                        await maybe
    except (*TRANSIENT, ActionInProgress) as exc:
        await recount(storage, campaign)
        raise RetryLater(f"Kommo is busy: {exc}", countdown=getattr(exc, "retry_after", None)) from exc
    except CONNECTION_LOST as exc:
        return BatchResult(await stop(deps, campaign, CampaignStatus.PAUSED, str(exc)), more=False,
                           processed=processed)
    campaign = await recount(storage, campaign)
    if campaign.status != CampaignStatus.RUNNING:
        return BatchResult(campaign, more=False, processed=processed)
    if not await storage.campaign_targets.open(org_id, campaign_id, 1):
        return BatchResult(await finish(deps, campaign), more=False, processed=processed)
    return BatchResult(campaign, more=True, processed=processed, tally=tally)


async def _list(deps: CampaignDeps, campaign: Campaign) -> Campaign:
    try:
        total = await list_targets(deps.storage, deps.kommo, campaign)
    except (*TRANSIENT, ActionInProgress) as exc:
        raise RetryLater(f"Kommo is busy: {exc}", countdown=getattr(exc, "retry_after", None)) from exc
    except CONNECTION_LOST as exc:
        return await stop(deps, campaign, CampaignStatus.PAUSED, str(exc))
    except KommoError as exc:
        return await stop(deps, campaign, CampaignStatus.FAILED, f"could not list the leads: {exc}")
    await deps.storage.campaigns.move(campaign.org_id, campaign.id, CampaignStatus.RUNNING,
                                      allowed_from=(CampaignStatus.DRAFT, CampaignStatus.RUNNING),
                                      extra={"targets_ready": True, "total": total})
    return await deps.storage.campaigns.get(campaign.org_id, campaign.id) or campaign


async def _conversations(deps: CampaignDeps, org_id: str, lead_ids: list[int]) -> dict[int, Conversation]:
    found: dict[int, list[Conversation]] = defaultdict(list)
    for conv in await deps.storage.conversations.list(org_id, {"lead_id": {"$in": lead_ids}}):
        found[conv.lead_id].append(conv)  # type: ignore[index]
    return {lead_id: pick_conversation(convs) for lead_id, convs in found.items()}  # type: ignore[misc]


async def _one(deps: CampaignDeps, campaign: Campaign, agent: Agent, target: CampaignTarget,
               conv: Conversation | None) -> TargetState | None:
    """Handle one lead; returns its outcome (None: another runner got there first)."""
    org_id, targets = campaign.org_id, deps.storage.campaign_targets
    if target.state == TargetState.PENDING:
        reason = skip_reason(conv, campaign.delivery_mode, deps.clock())
        text = fill(campaign.template, target.facts) if reason is None else ""
        if reason is None and not text:
            reason = "the message is empty for this lead (its placeholders have no values)"
        if reason is not None:
            return TargetState.SKIPPED if await targets.finish(org_id, target.id, TargetState.SKIPPED, reason) else None
        personalised = False
        if campaign.personalise:
            text, personalised = await deps.personaliser.rewrite(
                org_id, agent, campaign_id=campaign.id, lead_id=target.lead_id, text=text, facts=target.facts)
        target = await targets.prepare(org_id, target.id, text, personalised) or target
        if target.state != TargetState.PREPARED:
            return None
    # PREPARED: the text is fixed; the journal decides whether it still has to go out.
    try:
        record = await deps.kommo.actions.send_reply(
            org_id, lead_id=target.lead_id, text=target.text, mode=campaign.delivery_mode,
            idempotency_key=idempotency_key(campaign.id, target.lead_id),
            context=conv.reply_context if conv else {}, conversation_id=conv.id if conv else None,
            agent_id=agent.id)
    except (*TRANSIENT, ActionInProgress, *CONNECTION_LOST):
        raise
    except KommoError as exc:
        return TargetState.FAILED if await targets.finish(org_id, target.id, TargetState.FAILED, str(exc)) else None
    if record.state != ActionState.SENT:
        why = f"refused: {record.error}" if record.state == ActionState.REFUSED else f"not sent ({record.state})"
        return TargetState.FAILED if await targets.finish(org_id, target.id, TargetState.FAILED, why) else None
    if conv is not None:
        await _remember(deps, conv, campaign, target)
    return TargetState.SENT if await targets.finish(org_id, target.id, TargetState.SENT) else None


async def _remember(deps: CampaignDeps, conv: Conversation, campaign: Campaign, target: CampaignTarget) -> None:
    """The campaign message joins the conversation, so the agent knows what the customer is
    answering, and a manager relaying a note-draft is not mistaken for a human takeover.
    (`last_reply_at` is left alone: follow-up nudges are about the agent's own replies.)"""
    storage = deps.storage
    try:
        await storage.messages.insert(conv.org_id, Message(
            _id=f"msg_{campaign.id}_{target.lead_id}", org_id=conv.org_id, conversation_id=conv.id, role="agent",
            text=target.text, author_name="campaign"))
    except AlreadyExists:
        pass  # recorded by an earlier attempt
    await storage.conversations.update(conv.org_id, conv.id, {"last_reply_text": target.text})


async def stop(deps: CampaignDeps, campaign: Campaign, status: CampaignStatus, reason: str) -> Campaign:
    """Pause (connection lost: resumable) or fail a campaign, and tell the admins."""
    storage = deps.storage
    moved = await storage.campaigns.move(campaign.org_id, campaign.id, status,
                                         allowed_from=(CampaignStatus.DRAFT, CampaignStatus.RUNNING), reason=reason,
                                         extra={"finished_at": deps.clock()} if status == CampaignStatus.FAILED else {})
    campaign = await recount(storage, await storage.campaigns.get(campaign.org_id, campaign.id) or campaign)
    if moved:
        log.warning("campaign_stopped", org_id=campaign.org_id, campaign_id=campaign.id, status=status.value,
                    reason=reason)
        kind = "campaign_finished" if status == CampaignStatus.FAILED else "campaign_paused"
        stamp = "finished" if status == CampaignStatus.FAILED else f"paused:{deps.clock():%Y%m%d%H%M%S}"
        await storage.notifications.publish(campaign.org_id, kind, dedupe_key=f"campaign:{campaign.id}:{stamp}",
                                            **await build_report(storage, campaign))
    return campaign


async def finish(deps: CampaignDeps, campaign: Campaign) -> Campaign:
    """Every target is done: mark the campaign done and publish the report once."""
    storage = deps.storage
    await storage.campaigns.move(campaign.org_id, campaign.id, CampaignStatus.DONE,
                                 allowed_from=(CampaignStatus.RUNNING,), extra={"finished_at": deps.clock()})
    campaign = await recount(storage, await storage.campaigns.get(campaign.org_id, campaign.id) or campaign)
    if campaign.status == CampaignStatus.DONE:
        await announce(deps, campaign)
    return campaign


async def announce(deps: CampaignDeps, campaign: Campaign) -> None:
    """The "campaign_finished" notification with the report; its dedupe key makes it once-only."""
    await deps.storage.notifications.publish(campaign.org_id, "campaign_finished",
                                             dedupe_key=f"campaign:{campaign.id}:finished",
                                             **await build_report(deps.storage, campaign))
