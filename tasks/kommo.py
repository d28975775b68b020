"""Kommo background jobs (queue `kommo`): account sync, token refresh, periodic sync of all.

Sync and refresh are idempotent (sync replaces sets; refresh re-reads the stored pair under a
lock), so a redelivered task is harmless.
"""

from __future__ import annotations

from datetime import timedelta

from celery.utils.log import get_task_logger

from core.kommo.errors import KommoError
from tasks.app import celery_app
from tasks.base import CoreTask

logger = get_task_logger(__name__)
REFRESH_WITHIN = timedelta(hours=6)  # the beat runs more often than this, so nothing expires


@celery_app.task(name="kommo.sync_account", base=CoreTask, bind=True, acks_late=True)
def sync_account(self: CoreTask, org_id: str) -> dict:
    return self.core(lambda s: _sync_account(s, org_id))


@celery_app.task(name="kommo.refresh_tokens", base=CoreTask, bind=True)
def refresh_tokens(self: CoreTask) -> dict:
    outcomes = self.core(_refresh_tokens)
    logger.info("kommo token refresh: %s", outcomes)
    return outcomes


@celery_app.task(name="kommo.sync_all", base=CoreTask, bind=True)
def sync_all(self: CoreTask) -> dict:
    return self.core(_sync_all)


async def _sync_account(services, org_id: str) -> dict:
    return (await (await services.kommo()).sync_org(org_id)).as_dict()


async def _refresh_tokens(services) -> dict:
    return await (await services.kommo()).tokens.refresh_expiring(REFRESH_WITHIN)


async def _sync_all(services) -> dict:
    kommo = await services.kommo()
    outcomes = {}
    for account in await services.storage.kommo_accounts.all_accounts():
        if account.status != "active":
            continue
        try:
            outcomes[account.org_id] = (await kommo.sync.sync_account(account)).as_dict()
        except KommoError as exc:  # one broken account must not stop the others
            outcomes[account.org_id] = {"error": exc.code}
    return outcomes
