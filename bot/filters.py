"""Permission filters for routers and dialogs. A filter that fails because of the role raises
`PermissionDenied`, so the errors router explains it politely instead of ignoring the update."""

from __future__ import annotations

from aiogram.filters import Filter
from aiogram.types import TelegramObject

from core.errors import PermissionDenied
from core.models.org import Operator
from core.team.roles import Permission, can


class NoOrganisation(PermissionDenied):
    code = "no_organisation"


class Can(Filter):
    """Passes when the acting operator's role has `permission` in their active organisation."""

    def __init__(self, permission: Permission) -> None:
        self.permission = permission

    async def __call__(self, event: TelegramObject, operator: Operator | None = None) -> bool:
        if operator is None:
            raise NoOrganisation("not in an organisation yet")
        if not can(operator.role, self.permission):
            raise PermissionDenied(f"role {operator.role} may not {self.permission}", permission=self.permission.value)
        return True


class InOrganisation(Filter):
    async def __call__(self, event: TelegramObject, operator: Operator | None = None) -> bool:
        if operator is None:
            raise NoOrganisation("not in an organisation yet")
        return True


class DialogCan(Filter):
    """A dialog-level `Can`: judges only updates addressed to `states` (the dialog's group),
    so it never stops an update meant for another dialog."""

    def __init__(self, states: type, permission: Permission | None) -> None:
        self.group, self.permission = states.__full_group_name__, permission

    async def __call__(self, event: TelegramObject, aiogd_context=None, operator: Operator | None = None) -> bool:
        if aiogd_context is None or aiogd_context.state.group.__full_group_name__ != self.group:
            return True  # not this dialog's update: the dialog itself will not handle it
        if operator is None:
            raise NoOrganisation("not in an organisation yet")
        if self.permission is not None and not can(operator.role, self.permission):
            raise PermissionDenied(f"role {operator.role} may not {self.permission}", permission=self.permission.value)
        return True
