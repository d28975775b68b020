from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from core.models.base import Document, OrgDocument


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    EDITOR = "editor"
    VIEWER = "viewer"


class Organization(Document):
    name: str
    language: str = "ru"
    timezone: str = "UTC"
    plan: str = "free"


class Operator(OrgDocument):
    telegram_user_id: int
    role: Role
    name: str = ""
    language: str | None = None


class Invite(OrgDocument):
    token: str
    role: Role
    created_by: str | None = None
    expires_at: datetime
    used_by: int | None = None
    used_at: datetime | None = None
    revoked: bool = Field(default=False)
