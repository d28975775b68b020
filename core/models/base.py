from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.clock import utcnow
from core.models.stored import to_db


class Document(BaseModel):
    """A Mongo document with a string `_id` exposed as `id`."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    id: str = Field(alias="_id")
    created_at: datetime = Field(default_factory=utcnow)

    @field_validator("*", mode="after")
    @classmethod
    def _utc(cls, value: Any) -> Any:
        # We only ever store UTC (as ISO strings, see core/models/stored.py); be lenient on read.
        if isinstance(value, datetime) and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    def to_mongo(self) -> dict[str, Any]:
        return to_db(self.model_dump(by_alias=True, mode="python"))

    @classmethod
    def from_mongo(cls, doc: dict[str, Any] | None) -> Self | None:
        return None if doc is None else cls.model_validate(doc)


class OrgDocument(Document):
    org_id: str
