"""Campaign tasks (queue `kommo`): one batch of leads per task run, then the task re-enqueues
itself, so a campaign of thousands of leads never holds a worker for an hour and shares the
queue with sync and other work between batches.

acks_late + reject_on_worker_lost are safe here because a batch is idempotent: every lead's text
is fixed on its target before sending, every send goes through the action journal under
`campaign:<campaign id>:<lead id>`, and targets leave the open states only once. A batch
redelivered after a worker died resumes where the dead one stopped without sending twice.

The names before 0.2 (`kommo.run_campaign`, `kommo.resume_campaigns`) stay registered for one
release, so messages queued by an older version are still run.
"""

from __future__ import annotations

from celery.utils.log import get_task_logger

from core.campaigns.errors import CampaignBusy
from core.campaigns.lock import HOLD_S
from tasks.app import celery_app
from tasks.base import CoreTask
from tasks.retry import TRANSIENT

logger = get_task_logger(__name__)


def _run(task: CoreTask, org_id: str, campaign_id: str, look_again: bool) -> str:
    try:
        result = task.core(lambda s: _batch(s, org_id, campaign_id))
    except CampaignBusy:
        # Another worker holds the campaign. If that holder died (this may be its redelivered
        # task), its lock expires within HOLD_S: look once more after that. A live holder
        # re-enqueues itself, so the second look just ends ("busy" again) - no growing chains.
        if look_again:
            run.apply_async((org_id, campaign_id), {"look_again": False}, countdown=HOLD_S + 5)
        return "busy"
    except TRANSIENT as exc:
        error = str(exc)
        return task.retry_or_fail(exc, lambda s: _give_up(s, org_id, campaign_id, error))
    if result.more:
        run.apply_async((org_id, campaign_id))
        return f"batch:{result.processed}"
    logger.info("campaign %s %s: sent=%s skipped=%s failed=%s", campaign_id, result.campaign.status,
                result.campaign.sent, result.campaign.skipped, result.campaign.failed)
    return str(result.campaign.status)


@celery_app.task(name="campaigns.run", base=CoreTask, bind=True, acks_late=True, reject_on_worker_lost=True)
def run(self: CoreTask, org_id: str, campaign_id: str, look_again: bool = True) -> str:
    return _run(self, org_id, campaign_id, look_again)


@celery_app.task(name="campaigns.resume_stalled", base=CoreTask, bind=True)
def resume_stalled(self: CoreTask, stale_after_s: float = 120.0) -> int:
    """Safety net for beat: re-enqueue running campaigns that made no progress for a while (their
    task chain was lost, e.g. with a Redis restart or a CLI --wait that was interrupted)."""
    refs = self.core(lambda s: _stalled(s, stale_after_s))
    for org_id, campaign_id in refs:
        run.apply_async((org_id, campaign_id))
    return len(refs)


@celery_app.task(name="kommo.run_campaign", base=CoreTask, bind=True, acks_late=True, reject_on_worker_lost=True)
def run_campaign_legacy(self: CoreTask, org_id: str, campaign_id: str, look_again: bool = True) -> str:
    """Pre-0.2 name of `campaigns.run`, for messages queued before the upgrade."""
    return _run(self, org_id, campaign_id, look_again)


@celery_app.task(name="kommo.resume_campaigns", base=CoreTask, bind=True)
def resume_campaigns_legacy(self: CoreTask, stale_after_s: float = 120.0) -> int:
    """Pre-0.2 name of `campaigns.resume_stalled` (an old beat's schedule)."""
    return resume_stalled.run(stale_after_s)


async def _batch(services, org_id: str, campaign_id: str):
    return await (await services.campaigns()).run_batch(org_id, campaign_id)


async def _give_up(services, org_id: str, campaign_id: str, error: str) -> None:
    await (await services.campaigns()).give_up(org_id, campaign_id, f"Kommo kept failing: {error}")


async def _stalled(services, stale_after_s: float) -> list[tuple[str, str]]:
    org_ids = sorted({a.org_id for a in await services.storage.kommo_accounts.all_accounts()})
    return [(c.org_id, c.id) for org_id in org_ids
            for c in await services.storage.campaigns.stalled(org_id, stale_after_s)]
