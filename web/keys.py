from __future__ import annotations

from aiohttp import web

from core.services import CoreServices

SERVICES = web.AppKey("services", CoreServices)
