"""`CampaignService`: start, run, follow, cancel and resume campaigns (the CLI now, the Telegram
console later). `build_campaigns(...)` wires it from explicit dependencies."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis

from core.ai.llm import LLMClient
from core.campaigns import runner
from core.campaigns.errors import CampaignBusy
from core.campaigns.facts import BASE_KEYS, lead_facts, main_contact_id
from core.campaigns.personalise import Personaliser
from core.campaigns.report import build_report, recount
from core.campaigns.runner import BatchResult, CampaignDeps, Progress
from core.campaigns.stages import resolve_agent, resolve_stage
from core.campaigns.targets import has_tag
from core.campaigns.template import fact_key, fill, validate
from core.conversations.errors import RetryLater
from core.errors import InvalidInput, NotFound
from core.ids import new_id
from core.kommo.service import KommoService
from core.models.agent import DeliveryMode
from core.models.campaign import ACTIVE, FINISHED, Campaign, CampaignStatus
from core.models.kommo import ConnectionStatus
from core.orgs import require_org
from core.storage import Storage

BATCH = 25  # leads per batch: a few seconds of sends at Kommo's pace, then the task yields the worker


class CampaignService:
    def __init__(self, deps: CampaignDeps) -> None:
        self.deps = deps
        self.storage = deps.storage

    # -- starting ------------------------------------------------------------------------------
    async def start(self, org_id: str, *, agent: str, pipeline: str, stage: str, template: str,
                    tag: str | None = None, personalise: bool = False, started_by: str = "cli") -> Campaign:
        """Validate everything that can be checked up front and store a draft campaign; the
        caller then runs it (a Celery task, or inline). Bad input raises with a clear reason."""
        await require_org(self.storage, org_id)
        account = await self.storage.kommo_accounts.for_org(org_id)
        if account is None:
            raise InvalidInput("this organisation has no Kommo connection; run `kommo-agent kommo connect` first")
        if account.status != ConnectionStatus.ACTIVE:
            raise InvalidInput(f"the Kommo connection is {account.status.value}: {account.status_reason or 'fix it first'}")
        found_agent = await resolve_agent(self.storage, org_id, agent)
        if found_agent.delivery_mode == DeliveryMode.SALESBOT:
            raise InvalidInput(f"agent {found_agent.name!r} delivers through a waiting Salesbot (widget_request), "
                               "which can only answer a customer, not start a message; give it the note_draft, "
                               "salesbot_run or chats_api delivery mode for campaigns")
        found_pipeline, found_stage = await resolve_stage(self.storage, org_id, pipeline, stage)
        known = set(BASE_KEYS)
        for entity in ("leads", "contacts"):
            known |= {fact_key(f.name) for f in await self.storage.kommo_catalog.fields(org_id, entity)}
        text = validate(template, known)
        if personalise and not self.deps.personaliser.enabled:
            raise InvalidInput("personalising needs an LLM: set LLM_API_KEY (or start without --personalise)")
        tag = (tag or "").strip() or None
        campaign = Campaign(
            _id=new_id("cmp"), org_id=org_id, agent_id=found_agent.id, agent_name=found_agent.name,
            delivery_mode=found_agent.delivery_mode, pipeline_id=found_pipeline.pipeline_id,
            pipeline_name=found_pipeline.name, stage_id=found_stage.id, stage_name=found_stage.name, tag=tag,
            template=text, personalise=personalise, started_by=started_by, updated_at=self.deps.clock())
        return await self.storage.campaigns.insert(org_id, campaign)

    # -- running -------------------------------------------------------------------------------
    async def run_batch(self, org_id: str, campaign_id: str, *, max_leads: int = BATCH,
                        progress: Progress | None = None) -> BatchResult:
        """One batch (the Celery task's body). Raises RetryLater when Kommo is busy and
        CampaignBusy when another process holds the campaign."""
        return await runner.run_batch(self.deps, org_id, campaign_id, max_leads=max_leads, progress=progress)

    async def run_to_end(self, org_id: str, campaign_id: str, *, progress: Progress | None = None,
                         max_leads: int = BATCH, max_waits: int = 30, poll_s: float = 2.0) -> Campaign:
        """Run inline until the campaign stops (the CLI's --wait, no worker needed). If a worker
        holds it, follow its progress instead of competing."""
        waits = 0
        while True:
            try:
                result = await self.run_batch(org_id, campaign_id, max_leads=max_leads, progress=progress)
            except RetryLater as exc:
                waits += 1
                if waits > max_waits:
                    raise
                await asyncio.sleep(min(max(exc.countdown or 1.0, 1.0), 30.0))
                continue
            except CampaignBusy:
                campaign = await self.get(org_id, campaign_id)
                if campaign.status not in ACTIVE:
                    return campaign
                if progress is not None:
                    maybe = progress(campaign, {"sent": campaign.sent, "skipped": campaign.skipped,
                                                "failed": campaign.failed})
                    if maybe is not None:
                        await maybe
                await asyncio.sleep(poll_s)
                continue
            waits = 0
            if not result.more:
                return result.campaign

    async def give_up(self, org_id: str, campaign_id: str, reason: str) -> Campaign:
        """Retries are used up (Kommo kept failing): pause with the reason and tell the admins."""
        return await runner.stop(self.deps, await self.get(org_id, campaign_id), CampaignStatus.PAUSED, reason)

    # -- operator commands ---------------------------------------------------------------------
    async def get(self, org_id: str, campaign_id: str) -> Campaign:
        campaign = await self.storage.campaigns.get(org_id, campaign_id)
        if campaign is None:
            raise NotFound(f"campaign {campaign_id!r} not found", campaign_id=campaign_id)
        return campaign

    async def status(self, org_id: str, campaign_id: str) -> tuple[Campaign, dict[str, Any]]:
        campaign = await recount(self.storage, await self.get(org_id, campaign_id), touch=False)
        return campaign, await build_report(self.storage, campaign)

    async def list(self, org_id: str, limit: int = 20) -> list[Campaign]:
        await require_org(self.storage, org_id)
        return await self.storage.campaigns.recent(org_id, limit)

    async def cancel(self, org_id: str, campaign_id: str) -> Campaign:
        """No further sends: a running batch stops at its next lead."""
        campaign = await self.get(org_id, campaign_id)
        if campaign.status in FINISHED:
            raise InvalidInput(f"campaign {campaign_id} is already {campaign.status.value}")
        moved = await self.storage.campaigns.move(
            org_id, campaign_id, CampaignStatus.CANCELLED, reason="cancelled by an operator",
            allowed_from=(CampaignStatus.DRAFT, CampaignStatus.RUNNING, CampaignStatus.PAUSED),
            extra={"finished_at": self.deps.clock()})
        campaign = await recount(self.storage, await self.get(org_id, campaign_id), touch=False)
        if moved:
            await runner.announce(self.deps, campaign)
        return campaign

    async def pause(self, org_id: str, campaign_id: str, by: str = "an operator") -> Campaign:
        """No further sends until `resume`: a running batch stops at its next lead."""
        campaign = await self.get(org_id, campaign_id)
        if campaign.status not in ACTIVE:
            raise InvalidInput(f"campaign {campaign_id} is {campaign.status.value}; only a running one can pause")
        await self.storage.campaigns.move(org_id, campaign_id, CampaignStatus.PAUSED, reason=f"paused by {by}",
                                          allowed_from=ACTIVE)
        return await recount(self.storage, await self.get(org_id, campaign_id), touch=False)

    async def preview(self, org_id: str, *, pipeline_id: int, stage_id: int, template: str, tag: str | None = None,
                      samples: int = 2) -> tuple[int, list[tuple[str, str]]]:
        """How many leads the stage has now, and the message as the first `samples` of them
        would get it (their real facts from Kommo). Nothing is stored or sent."""
        known = set(BASE_KEYS)
        for entity in ("leads", "contacts"):
            known |= {fact_key(f.name) for f in await self.storage.kommo_catalog.fields(org_id, entity)}
        text = validate(template, known)
        kommo = self.deps.kommo
        account = await kommo.actions.account(org_id)
        leads = [lead for lead in await kommo.api.leads_in_stage(account, pipeline_id, stage_id)
                 if has_tag(lead, tag) and lead.get("status_id") in (None, stage_id)]
        sample = leads[:samples]
        contact_ids = [cid for cid in (main_contact_id(lead) for lead in sample) if cid]
        contacts = {int(c["id"]): c for c in await kommo.api.contacts_by_ids(account, contact_ids)} if contact_ids \
            else {}
        users = {u.user_id: u.name for u in await self.storage.kommo_catalog.users(org_id, include_gone=True)}
        shown = [(str(lead.get("name") or lead.get("id")),
                  fill(text, lead_facts(lead, contacts.get(main_contact_id(lead) or 0), users))) for lead in sample]
        return len(leads), shown

    async def resume(self, org_id: str, campaign_id: str) -> Campaign:
        """A paused campaign (connection fixed) goes on with the leads not yet done."""
        campaign = await self.get(org_id, campaign_id)
        if campaign.status in ACTIVE:
            return campaign
        if campaign.status != CampaignStatus.PAUSED:
            raise InvalidInput(f"campaign {campaign_id} is {campaign.status.value}; only a paused one can resume")
        await self.storage.campaigns.move(org_id, campaign_id, CampaignStatus.RUNNING, reason="",
                                          allowed_from=(CampaignStatus.PAUSED,))
        return await self.get(org_id, campaign_id)


def build_campaigns(*, storage: Storage, redis: aioredis.Redis, kommo: KommoService,
                    llm: LLMClient | None) -> CampaignService:
    """Over the process's Kommo area and its one LLM client (None: no personalising), so a
    campaign never loads the knowledge stack."""
    return CampaignService(CampaignDeps(storage=storage, redis=redis, kommo=kommo, personaliser=Personaliser(llm)))
