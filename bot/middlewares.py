"""Outer middleware: who is acting. Maps the Telegram user to their console profile and active
membership once per update (and for error handlers, which aiogram runs outside the update's
middlewares), so handlers receive `profile`, `operator`, `org` and `membership`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import ErrorEvent, TelegramObject, User

from core.team.service import TeamService


def _user(event: TelegramObject, data: dict[str, Any]) -> User | None:
    user = data.get("event_from_user")
    if user is None and isinstance(event, ErrorEvent):
        user = getattr(event.update.event, "from_user", None)
        if user is not None:
            data["event_from_user"] = user
    return user


class ActorMiddleware(BaseMiddleware):
    async def __call__(self, handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
                       event: TelegramObject, data: dict[str, Any]) -> Any:
        user = _user(event, data)
        if user is None or user.is_bot or "profile" in data:
            return await handler(event, data)
        team: TeamService = data["team"]
        profile = await team.profile(user.id)
        changes = {}
        if profile.unreachable_since is not None:  # they are back: notifications may reach them again
            changes["unreachable_since"] = None
        if user.language_code and user.language_code != profile.telegram_language:
            changes["telegram_language"] = user.language_code
        if changes:
            await team.profiles.set(user.id, **changes)
            profile = profile.model_copy(update=changes)
        membership = await team.active(user.id, profile)
        data.update(profile=profile, membership=membership, operator=membership and membership.operator,
                    org=membership and membership.org)
        return await handler(event, data)


def refresh_actor(data: dict[str, Any], membership) -> None:
    """After a handler changed who the user acts as (founded, joined or switched organisation),
    so the rest of the update (the menu it shows) sees the new organisation."""
    data.update(membership=membership, operator=membership.operator, org=membership.org)
