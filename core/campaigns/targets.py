"""Listing a campaign's leads: the leads of the stage (optionally with a tag) as Kommo has them
when the campaign starts, each stored as a target with the facts its placeholders need.

The list is a snapshot: a lead that moves stage while the campaign runs still gets the message,
one that arrives later does not (start another campaign for it). Listing again after a crash is
harmless: existing targets are kept as they are.
"""

from __future__ import annotations

from core.campaigns.facts import lead_facts, lead_tags, main_contact_id
from core.kommo.service import KommoService
from core.models.campaign import Campaign, CampaignTarget
from core.storage import Storage


def has_tag(lead: dict, tag: str | None) -> bool:
    return tag is None or tag.casefold() in {t.casefold() for t in lead_tags(lead)}


async def list_targets(storage: Storage, kommo: KommoService, campaign: Campaign) -> int:
    """Store one target per lead; returns how many the campaign has."""
    org_id = campaign.org_id
    account = await kommo.actions.account(org_id)
    leads = [lead for lead in await kommo.api.leads_in_stage(account, campaign.pipeline_id, campaign.stage_id)
             if has_tag(lead, campaign.tag)
             and lead.get("status_id") in (None, campaign.stage_id)]  # defensive: the filter is Kommo's
    contact_ids = [cid for cid in (main_contact_id(lead) for lead in leads) if cid]
    contacts = {int(c["id"]): c for c in await kommo.api.contacts_by_ids(account, contact_ids)} if contact_ids else {}
    users = {u.user_id: u.name for u in await storage.kommo_catalog.users(org_id, include_gone=True)}
    for lead in leads:
        lead_id = int(lead["id"])
        await storage.campaign_targets.add(org_id, CampaignTarget(
            _id=CampaignTarget.key(campaign.id, lead_id), org_id=org_id, campaign_id=campaign.id, lead_id=lead_id,
            lead_name=str(lead.get("name") or ""),
            facts=lead_facts(lead, contacts.get(main_contact_id(lead) or 0), users)))
    return await storage.campaign_targets.count(org_id, {"campaign_id": campaign.id})
