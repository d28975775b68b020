from __future__ import annotations

from datetime import UTC, datetime
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


# What the agent may write into a lead field, by Kommo field type. Kommo's own limits are wider
# for some types; these keep an LLM's value short and of the field's shape.
TEXT_LIMITS = {"text": 256, "textarea": 4000, "url": 2000, "multitext": 256, "streetaddress": 1000}
NUMERIC_TYPES = {"numeric", "price", "monetary"}
DATE_TYPES = {"date", "date_time", "birthday"}
ENUM_TYPES = {"select", "radiobutton", "multiselect", "category"}
MAX_ABS_NUMBER = 10**15


class FieldValueRefused(ValueError):
    """Why a value does not fit a lead field (short, safe to show the model and the operator)."""


def check_field_value(fld: KommoField, value: object, enum_id: int | None = None) -> tuple[object, int | None]:
    """The value (and option id) to write into `fld`, checked against its type, options and a
    length cap; raises `FieldValueRefused` otherwise."""
    if value is None or isinstance(value, dict | list) or (isinstance(value, str) and not value.strip()):
        raise FieldValueRefused("value must be a non-empty string, number or boolean")
    kind = fld.type
    if kind in ENUM_TYPES or fld.enums:
        wanted = str(value).strip().casefold()
        options = fld.enums or []
        enum = next((e for e in options if enum_id is not None and e.get("id") == enum_id), None)
        enum = enum or next((e for e in options if str(e.get("value", "")).strip().casefold() == wanted), None)
        if enum is None:
            raise FieldValueRefused(f"{str(value)[:60]!r} is not an option of field {fld.name!r}")
        return enum.get("value"), enum.get("id")
    if kind == "checkbox":
        if isinstance(value, bool):
            return value, None
        text = str(value).strip().casefold()
        if text in ("true", "yes", "1", "да"):
            return True, None
        if text in ("false", "no", "0", "нет"):
            return False, None
        raise FieldValueRefused(f"field {fld.name!r} is a checkbox: the value must be true or false")
    if kind in NUMERIC_TYPES:
        try:
            number = float(str(value).replace(" ", "").replace(",", ".")) if not isinstance(value, int | float) \
                else value
        except ValueError:
            raise FieldValueRefused(f"field {fld.name!r} takes a number, not {str(value)[:40]!r}") from None
        if isinstance(value, bool) or number != number or abs(number) > MAX_ABS_NUMBER:
            raise FieldValueRefused(f"field {fld.name!r} takes a number within ±10^15")
        return (int(number) if float(number).is_integer() else number), None
    if kind in DATE_TYPES:
        if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**40:
            return value, None
        try:
            parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            raise FieldValueRefused(f"field {fld.name!r} takes a date (ISO 8601)") from None
        return int((parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()), None
    if kind in TEXT_LIMITS:
        text = str(value).strip()
        if len(text) > TEXT_LIMITS[kind]:
            raise FieldValueRefused(f"field {fld.name!r} takes at most {TEXT_LIMITS[kind]} characters")
        if kind == "url" and not text.lower().startswith(("http://", "https://")):
            raise FieldValueRefused(f"field {fld.name!r} takes an http(s) address")
        return text, None
    raise FieldValueRefused(f"field {fld.name!r} is of type {kind!r}, which the agent does not write")
