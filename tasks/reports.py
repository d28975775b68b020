"""Report tasks (queue `reports`): the monthly billing render, one task per organisation, so a
slow or failing notebook of one org neither delays nor stops the others."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from celery.utils.log import get_task_logger

from core.reports.render import ReportFailed, render_report
from core.services import effective_mongo_url
from tasks.app import celery_app
from tasks.base import CoreTask

logger = get_task_logger(__name__)


def previous_month(now: datetime) -> str:
    first = now.astimezone(UTC).replace(day=1)
    return (first - timedelta(days=1)).strftime("%Y-%m")


@celery_app.task(name="reports.billing_month", base=CoreTask, bind=True)
def billing_month(self: CoreTask, month: str | None = None) -> dict:
    """Beat, on the 1st: the billing report of the month that ended, for every organisation."""
    month = month or previous_month(datetime.now(UTC))
    orgs = self.core(lambda s: s.storage.orgs.list_all())
    for org in orgs:
        render_billing.delay(org.id, month)
    return {"month": month, "orgs": len(orgs)}


@celery_app.task(name="reports.render_billing", base=CoreTask, bind=True, acks_late=True,
                 soft_time_limit=1800, time_limit=1900)
def render_billing(self: CoreTask, org_id: str, month: str) -> dict:
    settings = self.settings
    params = {"month": month, "org_id": org_id, "currency": "USD", "mongo_url": effective_mongo_url(settings),
              "database": settings.mongo.database}
    out = settings.reports.out_dir or settings.data_dir / "reports"
    try:
        # Rendering replaces an earlier render of the same report atomically: a redelivery is harmless.
        report = render_report("billing", params, settings.reports, out / month)
    except ReportFailed as exc:
        logger.error("billing report of %s for %s failed: %s", org_id, month, exc)
        return {"org_id": org_id, "month": month, "error": str(exc)}
    return {"org_id": org_id, "month": month, "folder": str(report.folder), "total_nano": report.headline["total_nano"]}
