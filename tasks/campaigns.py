"""Campaign tasks (queue `kommo`): one batch of leads per task run, then the task re-enqueues
itself, so a campaign of thousands of leads never holds a worker for an hour and shares the
queue with sync and other work between batches.

acks_late + reject_on_worker_lost are safe here because a batch is idempotent: every lead's text
is fixed on its target before sending, every send goes through the action journal under
`campaign:<campaign id>:<lead id>`, and targets leave the open states only once. A batch
redelivered after a worker died resumes where the dead one stopped without sending twice.
"""

from __future__ import annotations

from celery.utils.log import get_task_logger

from core.campaigns.lock import HOLD_S, CampaignBusy
from core.config import load_settings
from tasks.app import celery_app
from tasks.retry import TRANSIENT, retry_or_fail
from tasks.runtime import run

logger = get_task_logger(__name__)
MAX_RETRIES = load_settings().worker.max_retries


@celery_app.task(name="kommo.run_campaign", bind=True, acks_late=True, reject_on_worker_lost=True,
                 max_retries=MAX_RETRIES)
def run_campaign(self, org_id: str, campaign_id: str, look_again: bool = True) -> str:
    async def batch(services):
        return await (await services.campaigns()).run_batch(org_id, campaign_id)

    async def give_up(services, error: str):
        await (await services.campaigns()).give_up(org_id, campaign_id, f"Kommo kept failing: {error}")

    try:
        result = run(batch)
    except CampaignBusy:
        # Another worker holds the campaign. If that holder died (this may be its redelivered
        # task), its lock expires within HOLD_S: look once more after that. A live holder
        # re-enqueues itself, so the second look just ends ("busy" again) - no growing chains.
        if look_again:
            self.apply_async((org_id, campaign_id), {"look_again": False}, countdown=HOLD_S + 5)
        return "busy"
    except TRANSIENT as exc:
        return retry_or_fail(self, exc, lambda: run(lambda s: give_up(s, str(exc))))
    if result.more:
        self.apply_async((org_id, campaign_id))
        return f"batch:{result.processed}"
    logger.info("campaign %s %s: sent=%s skipped=%s failed=%s", campaign_id, result.campaign.status,
                result.campaign.sent, result.campaign.skipped, result.campaign.failed)
    return str(result.campaign.status)


@celery_app.task(name="kommo.resume_campaigns")
def resume_campaigns(stale_after_s: float = 120.0) -> int:
    """Safety net for beat: re-enqueue running campaigns that made no progress for a while (their
    task chain was lost, e.g. with a Redis restart or a CLI --wait that was interrupted)."""
    async def job(services) -> list[tuple[str, str]]:
        org_ids = sorted({a.org_id for a in await services.storage.kommo_accounts.all_accounts()})
        return [(c.org_id, c.id) for org_id in org_ids
                for c in await services.storage.campaigns.stalled(org_id, stale_after_s)]

    refs = run(job)
    for org_id, campaign_id in refs:
        run_campaign.apply_async((org_id, campaign_id))
    return len(refs)
