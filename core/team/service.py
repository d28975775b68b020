"""`TeamService`: who belongs to which organisation, with which role, and where they act.

Every operation that changes the team takes the acting operator and checks their role here, so
the CLI and the console enforce the same rules (the last owner stays an owner, admins do not
make or unmake owners, invites are single-use and expire).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from core.clock import utcnow
from core.errors import NotFound
from core.languages import operator_language
from core.models.org import Invite, Operator, Organization, Role
from core.orgs import create_org
from core.storage import Storage
from core.team.errors import InviteExpired, InviteInvalid, InviteUsed, LastOwner, NotAMember, RoleNotGrantable
from core.team.profiles import ConsoleProfile, ConsoleProfileRepository
from core.team.roles import Permission, may_grant, require

INVITE_TTL = timedelta(hours=48)
# Deep-link payload: "inv-<org id hex>-<token>", at most 64 characters of [A-Za-z0-9_-]
# (Telegram's limit for /start parameters). The org part lets the claim stay org-scoped.
_INVITE_PAYLOAD = re.compile(r"^inv-([0-9a-f]{20})-([A-Za-z0-9_-]{16,40})$")
MAX_OPERATOR_NAME = 64


@dataclass(frozen=True)
class Membership:
    org: Organization
    operator: Operator


def invite_payload(invite: Invite) -> str:
    """The /start parameter for an invite."""
    return f"inv-{invite.org_id.removeprefix('org_')}-{invite.token}"


class TeamService:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.profiles = ConsoleProfileRepository(storage.db)

    # --- who is acting -------------------------------------------------------------------
    async def profile(self, telegram_user_id: int) -> ConsoleProfile:
        return await self.profiles.get(telegram_user_id)

    async def set_language(self, telegram_user_id: int, language: str) -> str:
        chosen = operator_language(language)
        await self.profiles.set(telegram_user_id, language=chosen)
        return chosen

    async def memberships(self, telegram_user_id: int) -> list[Membership]:
        found = []
        for operator in await self.storage.operators.memberships(telegram_user_id):
            org = await self.storage.orgs.get(operator.org_id)
            if org is not None:
                found.append(Membership(org, operator))
        return found

    async def membership(self, telegram_user_id: int, org_id: str) -> Membership:
        """The user's membership of `org_id`; NotAMember for any other org, whatever the id."""
        operator = await self._operator(org_id, telegram_user_id) if org_id else None
        org = await self.storage.orgs.get(org_id) if operator else None
        if operator is None or org is None:
            raise NotAMember("not a member of that organisation", org_id=org_id)
        return Membership(org, operator)

    async def _operator(self, org_id: str, telegram_user_id: int) -> Operator | None:
        found = await self.storage.operators.list(org_id, {"telegram_user_id": int(telegram_user_id)}, limit=1)
        return found[0] if found else None

    async def active(self, telegram_user_id: int, profile: ConsoleProfile | None = None) -> Membership | None:
        """The organisation the user acts in: the one they chose, else their first."""
        profile = profile or await self.profile(telegram_user_id)
        if profile.active_org_id:
            try:
                return await self.membership(telegram_user_id, profile.active_org_id)
            except NotAMember:
                pass  # removed meanwhile: fall back to another membership
        memberships = await self.memberships(telegram_user_id)
        if not memberships:
            return None
        await self.profiles.set(telegram_user_id, active_org_id=memberships[0].org.id)
        return memberships[0]

    async def switch(self, telegram_user_id: int, org_id: str) -> Membership:
        membership = await self.membership(telegram_user_id, org_id)
        await self.profiles.set(telegram_user_id, active_org_id=org_id)
        return membership

    # --- onboarding ----------------------------------------------------------------------
    async def found_org(self, telegram_user_id: int, org_name: str, *, operator_name: str = "",
                        language: str = "ru") -> Membership:
        """A new organisation with the user as its owner, made their active one."""
        mine = [m.org.name for m in await self.memberships(telegram_user_id)]
        org = await create_org(self.storage, org_name, language=operator_language(language), names_in_use=mine)
        operator = await self.storage.operators.add(org.id, telegram_user_id, Role.OWNER,
                                                    name=operator_name[:MAX_OPERATOR_NAME])
        await self.profiles.set(telegram_user_id, active_org_id=org.id)
        return Membership(org, operator)

    async def create_invite(self, org_id: str, actor: Operator, role: Role, ttl: timedelta = INVITE_TTL) -> Invite:
        self._check_actor(org_id, actor, Permission.MANAGE_TEAM)
        if not may_grant(actor, Role(role)):
            raise RoleNotGrantable("only an owner can invite an owner", role=str(role))
        return await self.storage.invites.create(org_id, Role(role), actor.id, ttl)

    async def accept_invite(self, payload: str, telegram_user_id: int, operator_name: str = "") -> Membership:
        match = _INVITE_PAYLOAD.match(payload or "")
        if not match:
            raise InviteInvalid("not an invite link")
        org_id, token = f"org_{match.group(1)}", match.group(2)
        org = await self.storage.orgs.get(org_id)
        if org is None:
            raise InviteInvalid("the invite's organisation does not exist")
        existing = await self._operator(org_id, telegram_user_id)
        if existing is not None:  # already in: nothing to claim, just act there
            await self.profiles.set(telegram_user_id, active_org_id=org_id)
            return Membership(org, existing)
        invite = await self.storage.invites.claim(org_id, token, telegram_user_id)
        if invite is None:
            raise await self._why_unclaimable(org_id, token)
        operator = await self.storage.operators.add(org_id, telegram_user_id, invite.role,
                                                    name=operator_name[:MAX_OPERATOR_NAME])
        await self.profiles.set(telegram_user_id, active_org_id=org_id)
        return Membership(org, operator)

    async def _why_unclaimable(self, org_id: str, token: str) -> Exception:
        found = await self.storage.invites.list(org_id, {"token": token}, limit=1)
        if not found or found[0].revoked:
            return InviteInvalid("no such invite")
        if found[0].used_by is not None:
            return InviteUsed("the invite was already used")
        if found[0].expires_at <= utcnow():
            return InviteExpired("the invite expired")
        return InviteInvalid("the invite cannot be claimed")

    # --- the team ------------------------------------------------------------------------
    async def members(self, org_id: str, actor: Operator) -> list[Operator]:
        self._check_actor(org_id, actor, Permission.VIEW)
        return await self.storage.operators.list(org_id, sort=[("created_at", 1)])

    async def member(self, org_id: str, actor: Operator, operator_id: str) -> Operator:
        self._check_actor(org_id, actor, Permission.VIEW)
        target = await self.storage.operators.get(org_id, operator_id)
        if target is None:
            raise NotFound("no such member in this organisation", operator_id=operator_id)
        return target

    async def change_role(self, org_id: str, actor: Operator, operator_id: str, role: Role) -> Operator:
        self._check_actor(org_id, actor, Permission.MANAGE_TEAM)
        target, role = await self.member(org_id, actor, operator_id), Role(role)
        if not (may_grant(actor, role) and may_grant(actor, target.role)):
            raise RoleNotGrantable("only an owner can make or change an owner", role=str(role))
        if target.role == Role.OWNER and role != Role.OWNER:
            await self._keep_an_owner(org_id, target)
        updated = await self.storage.operators.update(org_id, target.id, {"role": role})
        if target.role == Role.OWNER and role != Role.OWNER and await self._owners(org_id) == 0:
            # Two owners demoted each other at the same moment: undo ours.
            await self.storage.operators.update(org_id, target.id, {"role": Role.OWNER})
            raise LastOwner("the organisation needs at least one owner")
        return updated

    async def remove(self, org_id: str, actor: Operator, operator_id: str) -> Operator:
        target = await self.member(org_id, actor, operator_id)
        if target.id != actor.id:  # leaving needs no permission; removing others does
            self._check_actor(org_id, actor, Permission.MANAGE_TEAM)
            if not may_grant(actor, target.role):
                raise RoleNotGrantable("only an owner can remove an owner", role=str(target.role))
        if target.role == Role.OWNER:
            await self._keep_an_owner(org_id, target)
        await self.storage.operators.delete(org_id, target.id)
        return target

    async def _owners(self, org_id: str) -> int:
        return await self.storage.operators.count(org_id, {"role": Role.OWNER})

    async def _keep_an_owner(self, org_id: str, target: Operator) -> None:
        if await self._owners(org_id) <= 1:
            raise LastOwner("the organisation's last owner can be neither removed nor demoted")

    @staticmethod
    def _check_actor(org_id: str, actor: Operator, permission: Permission) -> None:
        if actor.org_id != org_id:
            raise NotAMember("the actor is not in this organisation", org_id=org_id)
        require(actor, permission)

    # --- notification preferences --------------------------------------------------------
    async def set_muted(self, telegram_user_id: int, org_id: str, kind: str, muted: bool) -> list[str]:
        await self.membership(telegram_user_id, org_id)
        profile = await self.profile(telegram_user_id)
        kinds = set(profile.muted.get(org_id, []))
        kinds = kinds | {kind} if muted else kinds - {kind}
        await self.profiles.set_muted(telegram_user_id, org_id, sorted(kinds))
        return sorted(kinds)
