"""What each role may do. Adapters check these before acting, and services check them again."""

from __future__ import annotations

from enum import StrEnum

from core.errors import PermissionDenied
from core.models.org import Operator, Role


class Permission(StrEnum):
    VIEW = "view"  # agents, usage, reports, the team list
    MANAGE_AGENTS = "manage_agents"  # agents and their knowledge; take over conversations
    MANAGE_TEAM = "manage_team"
    MANAGE_KOMMO = "manage_kommo"  # connect, disconnect, delivery set-up
    SEE_SECRETS = "see_secrets"  # whether tokens are valid, webhook URL
    SEE_BILLING = "see_billing"  # invoices and the billing report (owners and admins)


_ALL = frozenset(Permission)
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.OWNER: _ALL,
    Role.ADMIN: _ALL,
    Role.EDITOR: frozenset({Permission.VIEW, Permission.MANAGE_AGENTS}),
    Role.VIEWER: frozenset({Permission.VIEW}),
}
ROLE_ORDER = (Role.OWNER, Role.ADMIN, Role.EDITOR, Role.VIEWER)


def can(role: Role | str, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS.get(Role(role), frozenset())


def require(operator: Operator | None, permission: Permission) -> Operator:
    """The operator, if their role allows `permission`; PermissionDenied otherwise."""
    if operator is None or not can(operator.role, permission):
        raise PermissionDenied(f"role {getattr(operator, 'role', None)!s} may not {permission.value}",
                               permission=permission.value)
    return operator


def may_grant(actor: Operator, role: Role) -> bool:
    """Admins manage editors and viewers (and other admins); only an owner makes owners."""
    if actor.role == Role.OWNER:
        return True
    return actor.role == Role.ADMIN and role != Role.OWNER
