from __future__ import annotations

import hashlib
import time
from typing import Any

from pymongo import ReturnDocument

from core.models.kommo import KommoAccount
from core.storage.repositories.base import OrgScopedRepository, scope


def hook_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# A turn reads the account for every Kommo call (lead, reply, actions): remember it briefly.
# Writes through this repository forget it at once; another process's write (a token refresh,
# a block) shows here within this many seconds, and a token refreshed meanwhile elsewhere is
# handled by the 401 path, which re-reads the stored pair.
RECENT_ACCOUNT_S = 2.0


class KommoAccountRepository(OrgScopedRepository[KommoAccount]):
    """One connected Kommo account per organisation."""

    collection_name = "kommo_accounts"
    model = KommoAccount

    def __init__(self, db) -> None:
        super().__init__(db)
        self._recent: dict[str, tuple[float, KommoAccount]] = {}

    async def for_org(self, org_id: str) -> KommoAccount | None:
        return KommoAccount.from_mongo(await self.collection.find_one(scope(org_id)))

    async def for_org_recent(self, org_id: str) -> KommoAccount | None:
        """`for_org`, possibly up to `RECENT_ACCOUNT_S` old (hot paths: one turn's calls)."""
        hit = self._recent.get(org_id)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        account = await self.for_org(org_id)
        if account is not None:
            self._recent[org_id] = (time.monotonic() + RECENT_ACCOUNT_S, account)
        return account

    def forget(self, org_id: str) -> None:
        self._recent.pop(org_id, None)

    async def insert(self, org_id: str, item: KommoAccount) -> KommoAccount:
        self.forget(org_id)
        return await super().insert(org_id, item)

    async def update(self, org_id: str, item_id: str, changes: dict[str, Any]) -> KommoAccount | None:
        self.forget(org_id)
        return await super().update(org_id, item_id, changes)

    async def delete(self, org_id: str, item_id: str) -> bool:
        self.forget(org_id)
        return await super().delete(org_id, item_id)

    async def by_hook_token_hash(self, token_hash: str) -> KommoAccount | None:
        """Webhook routing: the path token is the only thing a webhook carries. Looked up by
        its hash (the token itself is stored encrypted); the caller compares in constant time."""
        return KommoAccount.from_mongo(await self.collection.find_one({"hook_token_hash": token_hash}))

    async def by_chats_scope_id(self, scope_id: str) -> KommoAccount | None:
        """Chats API hook routing: Kommo puts the channel scope id in the hook URL."""
        return KommoAccount.from_mongo(await self.collection.find_one({"chats_scope_id": scope_id}))

    async def store_tokens(self, org_id: str, account_id: str, expected_version: int,
                           secrets: dict[str, str], changes: dict[str, Any]) -> KommoAccount | None:
        """Compare-and-set on `token_version`: a refresh only lands if nobody refreshed since."""
        self.forget(org_id)
        doc = await self.collection.find_one_and_update(
            scope(org_id, {"_id": account_id, "token_version": expected_version}),
            {"$set": {**{f"secrets.{k}": v for k, v in secrets.items()}, **changes},
             "$inc": {"token_version": 1}},
            return_document=ReturnDocument.AFTER,
        )
        return KommoAccount.from_mongo(doc)

    async def all_accounts(self) -> list[KommoAccount]:
        """For beat jobs (token refresh, periodic sync) that walk every tenant."""
        return [KommoAccount.model_validate(d) async for d in self.collection.find({})]
