"""A campaign's report: counts, and the leads skipped or failed with their reasons."""

from __future__ import annotations

from collections import Counter
from typing import Any

from core.clock import utcnow
from core.models.campaign import Campaign, TargetState
from core.storage import Storage

MAX_LISTED = 100


async def recount(storage: Storage, campaign: Campaign, *, touch: bool = True) -> Campaign:
    """Counters are derived from the targets, so they are right even after a crash mid-lead.
    `touch` marks progress (the runner); a status query leaves `updated_at` alone."""
    counts = await storage.campaign_targets.counts(campaign.org_id, campaign.id)
    changes: dict[str, Any] = {"updated_at": utcnow()} if touch else {}
    changes |= {"sent": counts["sent"], "skipped": counts["skipped"], "failed": counts["failed"],
               "total": sum(counts.values()) if campaign.targets_ready else campaign.total}
    return await storage.campaigns.update(campaign.org_id, campaign.id, changes) or campaign


def _leads(targets) -> list[dict[str, Any]]:
    return [{"lead_id": t.lead_id, "lead_name": t.lead_name, "reason": t.reason} for t in targets[:MAX_LISTED]]


async def build_report(storage: Storage, campaign: Campaign) -> dict[str, Any]:
    org_id = campaign.org_id
    skipped = await storage.campaign_targets.in_state(org_id, campaign.id, TargetState.SKIPPED)
    failed = await storage.campaign_targets.in_state(org_id, campaign.id, TargetState.FAILED)
    personalised = await storage.campaign_targets.count(
        org_id, {"campaign_id": campaign.id, "state": TargetState.SENT.value, "personalised": True})
    return {
        "campaign_id": campaign.id, "status": campaign.status.value, "status_reason": campaign.status_reason,
        "agent": campaign.agent_name, "delivery_mode": campaign.delivery_mode.value,
        "stage": f"{campaign.pipeline_name} / {campaign.stage_name}", "tag": campaign.tag,
        "total": campaign.total, "sent": campaign.sent, "skipped": campaign.skipped, "failed": campaign.failed,
        "pending": max(campaign.total - campaign.done_count, 0), "personalised": personalised,
        "skipped_by_reason": dict(Counter(t.reason for t in skipped).most_common()),
        "failed_by_reason": dict(Counter(t.reason for t in failed).most_common()),
        "skipped_leads": _leads(skipped), "failed_leads": _leads(failed),
    }
