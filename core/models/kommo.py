from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from core.models.base import OrgDocument


class AuthKind(StrEnum):
    LONG_LIVED = "long_lived"
    OAUTH = "oauth"


class ConnectionStatus(StrEnum):
    ACTIVE = "active"
    NEEDS_REAUTH = "needs_reauth"
    BLOCKED = "blocked"  # Kommo answered 403: stop calling until an operator checks


class KommoAccount(OrgDocument):
    """A connected Kommo account. Tokens live only as keyring envelopes under `secrets`."""

    subdomain: str
    base_domain: str = "kommo.com"  # or amocrm.ru
    auth_kind: AuthKind
    status: ConnectionStatus = ConnectionStatus.ACTIVE
    status_reason: str | None = None
    secrets: dict[str, str] = Field(default_factory=dict)  # field name -> keyring envelope
    hook_token_hash: str  # sha256 of the webhook path token; the token itself is in secrets
    client_id: str | None = None
    expires_at: datetime | None = None
    token_version: int = 0
    account_id: int | None = None
    amojo_id: str | None = None
    bot_user_id: int | None = None  # our token's user (often a real admin): not how our own writes are told apart
    chats_scope_id: str | None = None
    salesbot_bot_id: int | None = None
    reply_field_id: int | None = None
    timezone: str | None = None  # the account's own (IANA name, synced); working hours and deadlines use it
    # Bumped by every delivery set-up: a broken set-up alerts once per version, not per message.
    delivery_version: int = 0
    last_sync_at: datetime | None = None

    @property
    def host(self) -> str:
        return f"{self.subdomain}.{self.base_domain}"


class KommoStage(BaseModel):
    id: int
    name: str
    sort: int = 0
    type: int = 0  # 1 = incoming-leads stage; 142 won / 143 lost are system stages
    pipeline_id: int
    gone: bool = False


class KommoPipeline(OrgDocument):
    """Synced from Kommo; `_id` is `<org_id>:<pipeline_id>`."""

    pipeline_id: int
    name: str
    is_main: bool = False
    is_archive: bool = False
    statuses: list[KommoStage] = Field(default_factory=list)
    gone: bool = False  # deleted in Kommo: kept for history, never used for new moves
    synced_at: datetime | None = None

    def stage(self, status_id: int) -> KommoStage | None:
        return next((s for s in self.statuses if s.id == status_id), None)


class KommoUser(OrgDocument):
    user_id: int
    name: str
    email: str | None = None
    is_admin: bool = False
    is_active: bool = True
    amojo_id: str | None = None
    gone: bool = False
    synced_at: datetime | None = None


class KommoField(OrgDocument):
    entity: str  # leads | contacts
    field_id: int
    name: str
    type: str
    code: str | None = None
    enums: list[dict] = Field(default_factory=list)
    gone: bool = False
    synced_at: datetime | None = None
