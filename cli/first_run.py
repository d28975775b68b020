"""What `up` does once it is ready: seed the demo on a fresh installation, then say what to do next.

The demo (core/demo) is created only when the installation has no organisation and was never
seeded; its sources are queued for the stack's worker, which owns the knowledge store. A failure
here never stops the stack: it becomes one line saying so.
"""

from __future__ import annotations

import asyncio

from core.ai.ingest.sources import SourceIntake
from core.config import Settings, env_file
from core.demo.seed import AGENT_NAME, ORG_NAME, DemoSeed, seed_demo
from core.kommo.intake.parser import SUBSCRIBED_EVENTS
from core.services import build_services
from tasks.app import create_celery
from tasks.queue import CeleryTaskQueue


async def _seed(settings: Settings) -> tuple[DemoSeed | None, int]:
    queue = CeleryTaskQueue(create_celery(settings.redis.url, settings=settings))
    services = await build_services(settings, queue=queue)
    try:
        seeded = await seed_demo(services.storage, SourceIntake(services.storage, settings.knowledge, queue=queue))
        return seeded, len(await services.storage.orgs.list_all())
    finally:
        await services.close()
        await queue.close()


def first_run_lines(settings: Settings, env: dict[str, str]) -> list[str]:
    """Seed the demo if this is a fresh installation; the lines to print after "up"."""
    running = settings.model_copy(deep=True)
    running.mongo.url, running.redis.url = env["MONGO_URL"], env["REDIS_URL"]
    try:
        seeded, orgs = asyncio.run(_seed(running))
    except Exception as exc:  # noqa: BLE001 - the stack runs without a demo; say why in one line
        return [f"demo not created: {str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}"]
    lines: list[str] = []
    if seeded is not None:
        lines += [f"Demo created: the shop {ORG_NAME!r} ({seeded.org_id}) with the agent {AGENT_NAME} "
                  f"({seeded.agent_id}); the worker is indexing its {len(seeded.source_ids)} knowledge sources.",
                  "Next:",
                  f"  talk to {AGENT_NAME} here:   kommo-agent chat"]
    elif orgs:
        lines += ["Next:", "  test an agent:        kommo-agent chat --agent NAME"]
    else:
        return ["Next: create an organisation (kommo-agent org create NAME) or use the Telegram console."]
    org = seeded.org_id if seeded else "ORG"
    public = settings.kommo.public_base_url or f"http://{settings.web.host}:{settings.web.port}"
    if settings.telegram.bot_token is None:
        lines.append(f"  Telegram console:     set TELEGRAM_BOT_TOKEN in {env_file()} and run up again (docs/BOT.md)")
    lines += [
        f"  connect Kommo:        kommo-agent kommo connect --org {org} --subdomain ACCOUNT --token-file token.txt",
        f"  Kommo webhook:        {public}/webhooks/kommo/<token> (connect registers it and prints it),",
        f"                        events: {', '.join(SUBSCRIBED_EVENTS)}",
        f"  reach customers:      kommo-agent kommo delivery --org {org} --mode salesbot_run ... (docs/KOMMO.md;",
        "                        the default note_draft leaves replies as internal notes customers never see)",
        "  check everything:     kommo-agent doctor",
    ]
    if not settings.kommo.public_base_url:
        lines.append("  (set KOMMO_PUBLIC_BASE_URL to the public HTTPS address Kommo can reach)")
    return lines
