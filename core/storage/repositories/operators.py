from __future__ import annotations

from datetime import timedelta

from pymongo import ReturnDocument

from core.clock import utcnow
from core.ids import new_id, new_token
from core.models.org import Invite, Operator, Role
from core.storage.repositories.base import OrgScopedRepository, scope


class OperatorRepository(OrgScopedRepository[Operator]):
    collection_name = "operators"
    model = Operator

    async def add(self, org_id: str, telegram_user_id: int, role: Role, name: str = "") -> Operator:
        return await self.insert(org_id, Operator(_id=new_id("op"), org_id=org_id,
                                                  telegram_user_id=telegram_user_id, role=role, name=name))

    async def admins(self, org_id: str) -> list[Operator]:
        return await self.list(org_id, {"role": {"$in": [Role.OWNER, Role.ADMIN]}})

    async def memberships(self, telegram_user_id: int) -> list[Operator]:
        """Which organisations a Telegram user belongs to. The one lookup that is not
        org-scoped by nature: it is how the bot finds the org to act in."""
        cursor = self.collection.find({"telegram_user_id": telegram_user_id}, sort=[("created_at", 1)])
        return [Operator.model_validate(d) async for d in cursor]


class InviteRepository(OrgScopedRepository[Invite]):
    collection_name = "invites"
    model = Invite

    async def create(self, org_id: str, role: Role, created_by: str | None, ttl: timedelta) -> Invite:
        invite = Invite(_id=new_id("inv"), org_id=org_id, token=new_token(16), role=role,
                        created_by=created_by, expires_at=utcnow() + ttl)
        return await self.insert(org_id, invite)

    async def claim(self, org_id: str, token: str, telegram_user_id: int) -> Invite | None:
        """Single use: only one caller can flip `used_by` from null, and only before expiry."""
        now = utcnow()
        doc = await self.collection.find_one_and_update(
            scope(org_id, {"token": token, "used_by": None, "revoked": False, "expires_at": {"$gt": now}}),
            {"$set": {"used_by": telegram_user_id, "used_at": now}},
            return_document=ReturnDocument.AFTER,
        )
        return Invite.from_mongo(doc)
