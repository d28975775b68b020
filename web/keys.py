from __future__ import annotations

from aiohttp import web

from core.ports import TaskQueue
from core.services import CoreServices

SERVICES = web.AppKey("services", CoreServices)
QUEUE = web.AppKey("queue", TaskQueue)
