from __future__ import annotations

import hashlib
from typing import Any

from pymongo import ReturnDocument

from core.models.kommo import KommoAccount
from core.storage.repositories.base import OrgScopedRepository, scope


def hook_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class KommoAccountRepository(OrgScopedRepository[KommoAccount]):
    """One connected Kommo account per organisation."""

    collection_name = "kommo_accounts"
    model = KommoAccount

    async def for_org(self, org_id: str) -> KommoAccount | None:
        return KommoAccount.from_mongo(await self.collection.find_one(scope(org_id)))

    async def by_hook_token_hash(self, token_hash: str) -> KommoAccount | None:
        """Webhook routing: the path token is the only thing a webhook carries. Looked up by
        its hash (the token itself is stored encrypted); the caller compares in constant time."""
        return KommoAccount.from_mongo(await self.collection.find_one({"hook_token_hash": token_hash}))

    async def by_chats_scope_id(self, scope_id: str) -> KommoAccount | None:
        """Chats API hook routing: Kommo puts the channel scope id in the hook URL."""
        return KommoAccount.from_mongo(await self.collection.find_one({"chats_scope_id": scope_id}))

    async def replace_for_org(self, org_id: str, account: KommoAccount) -> KommoAccount:
        await self.collection.delete_many(scope(org_id))
        return await self.insert(org_id, account)

    async def store_tokens(self, org_id: str, account_id: str, expected_version: int,
                           secrets: dict[str, str], changes: dict[str, Any]) -> KommoAccount | None:
        """Compare-and-set on `token_version`: a refresh only lands if nobody refreshed since."""
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
