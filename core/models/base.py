from __future__ import annotations

from datetime import datetime
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field

from core.clock import utcnow


class Document(BaseModel):
    """A Mongo document with a string `_id` exposed as `id`."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    id: str = Field(alias="_id")
    created_at: datetime = Field(default_factory=utcnow)

    def to_mongo(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, mode="python")

    @classmethod
    def from_mongo(cls, doc: dict[str, Any] | None) -> Self | None:
        return None if doc is None else cls.model_validate(doc)


class OrgDocument(Document):
    org_id: str
