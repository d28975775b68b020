"""`kommo-agent notifications ...`: the alerts core wrote for an org's admins (the outbox the
Telegram console will deliver), listed and acknowledged from the command line meanwhile."""

from __future__ import annotations

import json

import click

from cli.common import run_with_services
from core.errors import NotFound
from core.orgs import require_org


@click.group()
def notifications() -> None:
    """Pending alerts for the organisation's admins."""


@notifications.command("list")
@click.option("--org", "org_id", required=True)
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, with every parameter")
def list_(org_id: str, limit: int, as_json: bool) -> None:
    """Pending notifications, oldest first."""
    async def job(services):
        await require_org(services.storage, org_id)
        return await services.storage.notifications.pending(org_id, limit=limit)

    items = run_with_services(job)
    if not items and not as_json:
        click.echo("no pending notifications")
    for n in items:
        if as_json:
            click.echo(json.dumps({"id": n["_id"], "kind": n["kind"], "created_at": n.get("created_at"),
                                   "params": n.get("params", {})}, ensure_ascii=False, default=str))
            continue
        params = n.get("params") or {}
        brief = ", ".join(f"{k}={v}" for k, v in params.items() if not isinstance(v, list | dict))
        click.echo(f"{n['_id']}\t{n.get('created_at', '')}\t{n['kind']}\t{brief[:300]}")


@notifications.command()
@click.option("--org", "org_id", required=True)
@click.argument("notification_id")
def ack(org_id: str, notification_id: str) -> None:
    """Mark a notification as delivered (it leaves the pending list)."""

    async def job(services):
        if not await services.storage.notifications.mark_delivered(org_id, notification_id):
            raise NotFound(f"no pending notification {notification_id!r} in this organisation")

    run_with_services(job)
    click.echo(f"acknowledged: {notification_id}")
