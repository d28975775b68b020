"""Team errors: each has a stable `code` the console translates."""

from __future__ import annotations

from core.errors import InvalidInput, PermissionDenied


class InviteInvalid(InvalidInput):
    """The link is malformed or names no invite of that organisation."""

    code = "invite_invalid"


class InviteExpired(InvalidInput):
    code = "invite_expired"


class InviteUsed(InvalidInput):
    code = "invite_used"


class LastOwner(PermissionDenied):
    """The organisation would be left without an owner."""

    code = "last_owner"


class RoleNotGrantable(PermissionDenied):
    """Admins cannot make owners, nor change or remove one."""

    code = "role_not_grantable"


class NotAMember(PermissionDenied):
    """The Telegram user is not in the organisation named (forged or stale id)."""

    code = "not_a_member"
