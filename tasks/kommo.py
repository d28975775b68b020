"""Kommo background jobs (queue `kommo`): account sync, token refresh, periodic sync of all.

Thin: each task takes ids, runs one core call on the worker's process loop and returns a small
summary. Sync and refresh are idempotent (sync replaces sets; refresh re-reads the stored pair
under a lock), so a redelivered task is harmless.
"""

from __future__ import annotations

from datetime import timedelta

from celery.utils.log import get_task_logger

from core.kommo.errors import KommoError
from tasks.app import celery_app
from tasks.runtime import run

logger = get_task_logger(__name__)
REFRESH_WITHIN = timedelta(hours=6)  # the beat runs more often than this, so nothing expires
_local = None


async def kommo_service(services):
    """The process's KommoService: from core services when they carry it, else built once here."""
    global _local
    if hasattr(services, "kommo"):
        return await services.kommo()
    if _local is None:
        from core.kommo.service import build_kommo  # noqa: PLC0415

        _local = build_kommo(services)
    return _local


@celery_app.task(name="kommo.sync_account", acks_late=True)
def sync_account(org_id: str) -> dict:
    async def job(services) -> dict:
        return (await (await kommo_service(services)).sync_org(org_id)).as_dict()

    return run(job)


@celery_app.task(name="kommo.refresh_tokens")
def refresh_tokens() -> dict:
    async def job(services) -> dict:
        return await (await kommo_service(services)).tokens.refresh_expiring(REFRESH_WITHIN)

    outcomes = run(job)
    logger.info("kommo token refresh: %s", outcomes)
    return outcomes


@celery_app.task(name="kommo.sync_all")
def sync_all() -> dict:
    async def job(services) -> dict:
        kommo = await kommo_service(services)
        outcomes = {}
        for account in await services.storage.kommo_accounts.all_accounts():
            if account.status != "active":
                continue
            try:
                outcomes[account.org_id] = (await kommo.sync.sync_account(account)).as_dict()
            except KommoError as exc:  # one broken account must not stop the others
                outcomes[account.org_id] = {"error": exc.code}
        return outcomes

    return run(job)
