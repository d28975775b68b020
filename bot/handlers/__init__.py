"""All routers, in reading order; the errors router last."""

from __future__ import annotations

from aiogram import Router

from bot.handlers import errors, start


def build_root_router() -> Router:
    root = Router(name="root")
    root.include_routers(start.router, errors.router)
    return root
