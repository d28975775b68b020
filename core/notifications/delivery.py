"""`NotificationDelivery`: hands each pending notification to every operator who should see it,
at most once each, through a `NotificationSender` (the Telegram console implements it; core
never talks to Telegram).

Who: audience "admins" is owners and admins, "team" is everyone; an operator who muted the
kind in that organisation is skipped, and so is one whose Telegram account refused the bot
(403) until they write to the bot again. A definite failure (an error answer) is retried on
the next rounds up to `max_attempts`; a send whose outcome is unknown (timeout) is never
repeated. A notification leaves the pending list once every recipient is settled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from core.clock import utcnow
from core.models.org import Operator, Organization, Role
from core.notifications.deliveries import DeliveryRepository
from core.storage import Storage
from core.team.profiles import ConsoleProfile, ConsoleProfileRepository

AUDIENCE_ROLES = {"admins": (Role.OWNER, Role.ADMIN), "team": tuple(Role),
                  "approvers": (Role.OWNER, Role.ADMIN, Role.EDITOR)}  # approval cards


class SendOutcome(StrEnum):
    SENT = "sent"
    UNREACHABLE = "undeliverable"  # the user blocked the bot or deleted their account
    FAILED = "failed"  # an error answer: nothing was shown, may retry
    UNCERTAIN = "uncertain"  # no answer: it may have been shown, never resent


@dataclass(frozen=True)
class Recipient:
    operator: Operator
    profile: ConsoleProfile


class NotificationSender(Protocol):
    async def send(self, org: Organization, recipient: Recipient, notification: dict[str, Any]) -> SendOutcome:
        """Show one notification to one operator and say what happened."""


@dataclass
class DeliveryReport:
    sent: int = 0
    undeliverable: int = 0
    failed: int = 0
    settled: list[str] = field(default_factory=list)  # notification ids that left the pending list


class NotificationDelivery:
    def __init__(self, storage: Storage, *, max_attempts: int = 3) -> None:
        self.storage = storage
        self.deliveries = DeliveryRepository(storage.db)
        self.profiles = ConsoleProfileRepository(storage.db)
        self.max_attempts = max_attempts

    async def recipients(self, org_id: str, notification: dict[str, Any]) -> list[Recipient]:
        roles = AUDIENCE_ROLES.get(notification.get("audience") or "admins", AUDIENCE_ROLES["admins"])
        found = []
        for operator in await self.storage.operators.list(org_id, sort=[("created_at", 1)]):
            if operator.role not in roles:
                continue
            profile = await self.profiles.get(operator.telegram_user_id)
            if notification["kind"] in profile.muted.get(org_id, []) or profile.unreachable_since is not None:
                continue
            found.append(Recipient(operator, profile))
        return found

    async def deliver_org(self, org_id: str, sender: NotificationSender, limit: int = 50) -> DeliveryReport:
        report = DeliveryReport()
        org = await self.storage.orgs.get(org_id)
        if org is None:
            return report
        for notification in await self.storage.notifications.pending(org_id, limit=limit):
            settled = True
            for recipient in await self.recipients(org_id, notification):
                settled &= await self._deliver_one(org, recipient, notification, sender, report)
            if settled and await self.storage.notifications.mark_delivered(org_id, notification["_id"]):
                report.settled.append(notification["_id"])
        return report

    async def deliver_all(self, sender: NotificationSender) -> DeliveryReport:
        total = DeliveryReport()
        for org_id in await self.deliveries.orgs_with_pending():
            r = await self.deliver_org(org_id, sender)
            total.sent, total.undeliverable, total.failed = (total.sent + r.sent, total.undeliverable + r.undeliverable,
                                                             total.failed + r.failed)
            total.settled += r.settled
        return total

    async def _deliver_one(self, org: Organization, recipient: Recipient, notification: dict[str, Any],
                           sender: NotificationSender, report: DeliveryReport) -> bool:
        """True once this recipient needs nothing more (sent, or given up on)."""
        nid, oid = notification["_id"], recipient.operator.id
        if not await self.deliveries.claim(org.id, nid, oid, self.max_attempts):
            docs = await self.deliveries.for_notification(org.id, nid)
            mine = next((d for d in docs if d["operator_id"] == oid), None)
            return not (mine and mine["status"] == "failed" and mine["attempts"] < self.max_attempts)
        try:
            outcome = await sender.send(org, recipient, notification)
        except Exception as exc:  # noqa: BLE001 - a sender bug must not stop the other deliveries
            outcome, detail = SendOutcome.FAILED, f"{type(exc).__name__}: {str(exc)[:200]}"
        else:
            detail = None
        await self.deliveries.finish(org.id, nid, oid, outcome.value, detail)
        if outcome is SendOutcome.SENT:
            report.sent += 1
        elif outcome is SendOutcome.UNREACHABLE:
            report.undeliverable += 1
            await self.profiles.set(recipient.operator.telegram_user_id, unreachable_since=utcnow())
        elif outcome is SendOutcome.FAILED:
            report.failed += 1
            attempts = next((d["attempts"] for d in await self.deliveries.for_notification(org.id, nid)
                             if d["operator_id"] == oid), self.max_attempts)
            return attempts >= self.max_attempts
        return True
