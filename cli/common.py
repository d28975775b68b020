"""Shared CLI plumbing: run a coroutine with core services, print errors without tracebacks."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click

from core.config import Settings, load_settings
from core.errors import KommoAgentError
from core.services import CoreServices, build_services

T = TypeVar("T")


def run_with_services(job: Callable[[CoreServices], Awaitable[T]], settings: Settings | None = None) -> T:
    """Build services, run `job`, close them; domain errors exit 1 with a one-line reason."""

    async def _main() -> T:
        services = await build_services(settings or load_settings())
        try:
            return await job(services)
        finally:
            await services.close()

    try:
        return asyncio.run(_main())
    except KommoAgentError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
