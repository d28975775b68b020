"""Copy the account's catalog (pipelines and stages, users, lead/contact fields, account info) into
Mongo. Items that disappeared in Kommo are marked `gone` by the catalog repository, so a stage
deleted in Kommo can no longer be chosen for a move but history still shows its name."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog

from core.clock import utcnow
from core.kommo.errors import KommoForbidden
from core.kommo.http.api import KommoApi
from core.models.kommo import KommoAccount, KommoField, KommoPipeline, KommoStage, KommoUser
from core.storage import Storage
from core.storage.repositories.kommo_catalog import KommoCatalogRepository as Catalog

log = structlog.get_logger("kommo.sync")
FIELD_ENTITIES = ("leads", "contacts")


@dataclass
class SyncReport:
    pipelines: int = 0
    stages: int = 0
    users: int = 0
    fields: int = 0
    users_skipped: str | None = None  # e.g. the token's user is not an admin

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def account_timezone(info: dict) -> str | None:
    """The account's IANA timezone from `GET /api/v4/account?with=datetime_settings`
    (`_embedded.datetime_settings.timezone`; a top-level `timezone` as older answers had it);
    None when absent or not a zone this machine knows."""
    settings = ((info.get("_embedded") or {}).get("datetime_settings") or {}) if isinstance(info, dict) else {}
    name = settings.get("timezone") if isinstance(settings, dict) else None
    name = name or info.get("timezone")
    if not isinstance(name, str) or not name or len(name) > 64:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("kommo account timezone unknown here", timezone=name[:64])
        return None
    return name


class KommoSync:
    def __init__(self, storage: Storage, api: KommoApi) -> None:
        self.storage = storage
        self.api = api

    async def sync_account(self, account: KommoAccount) -> SyncReport:
        org = account.org_id
        report = SyncReport()
        info = await self.api.account(account)
        changes = {"account_id": info.get("id"), "amojo_id": info.get("amojo_id"),
                   "bot_user_id": info.get("current_user_id"), "timezone": account_timezone(info),
                   "last_sync_at": utcnow()}
        await self.storage.kommo_accounts.update(org, account.id, {k: v for k, v in changes.items() if v is not None})
        account.account_id, account.amojo_id = info.get("id"), info.get("amojo_id")
        account.bot_user_id = info.get("current_user_id")
        account.timezone = changes["timezone"] or account.timezone

        pipelines = [self._pipeline(org, p) for p in await self.api.pipelines(account)]
        await self.storage.kommo_catalog.replace_pipelines(org, pipelines)
        report.pipelines = len(pipelines)
        report.stages = sum(len(p.statuses) for p in pipelines)

        try:
            users = [self._user(org, u) for u in await self.api.users(account)]
            await self.storage.kommo_catalog.replace_users(org, users)
            report.users = len(users)
        except KommoForbidden as exc:  # users list is admin-only; keep the old set, do not mark gone
            report.users_skipped = str(exc)

        for entity in FIELD_ENTITIES:
            fields = [self._field(org, entity, f) for f in await self.api.custom_fields(account, entity)]
            await self.storage.kommo_catalog.replace_fields(org, entity, fields)
            report.fields += len(fields)
        log.info("kommo synced", org_id=org, **report.as_dict())
        return report

    @staticmethod
    def _pipeline(org_id: str, p: dict) -> KommoPipeline:
        stages = [KommoStage(id=s["id"], name=s.get("name", ""), sort=s.get("sort", 0), type=s.get("type", 0),
                             pipeline_id=p["id"]) for s in p.get("_embedded", {}).get("statuses", [])]
        return KommoPipeline(_id=Catalog.pipeline_doc_id(org_id, p["id"]), org_id=org_id, pipeline_id=p["id"],
                             name=p.get("name", ""), is_main=bool(p.get("is_main")),
                             is_archive=bool(p.get("is_archive")), statuses=stages)

    @staticmethod
    def _user(org_id: str, u: dict) -> KommoUser:
        rights = u.get("rights") or {}
        return KommoUser(_id=Catalog.user_doc_id(org_id, u["id"]), org_id=org_id, user_id=u["id"],
                         name=u.get("name", ""), email=u.get("email"), is_admin=bool(rights.get("is_admin")),
                         is_active=rights.get("is_active", True) is not False, amojo_id=u.get("amojo_id"))

    @staticmethod
    def _field(org_id: str, entity: str, f: dict) -> KommoField:
        return KommoField(_id=Catalog.field_doc_id(org_id, entity, f["id"]), org_id=org_id, entity=entity,
                          field_id=f["id"], name=f.get("name", ""), type=f.get("type", ""), code=f.get("code"),
                          enums=f.get("enums") or [])
