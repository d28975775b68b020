"""Identifiers. Documents use short random string ids, so a guessed id from another tenant
is both unlikely and, because every query also filters on org_id, useless."""

from __future__ import annotations

import secrets


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def new_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)
