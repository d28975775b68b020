"""`kommo-agent org ...` and `kommo-agent agent ...`: admin operations for scripts."""

from __future__ import annotations

import json
from pathlib import Path

import click

from cli.common import run_with_services
from cli.output import emit_json, json_option, pick
from core import orgs
from core.errors import NotFound
from core.usage.quota import set_org_plan


@click.group()
def org() -> None:
    """Organisations (tenants)."""


@org.command("create")
@click.argument("name")
@click.option("--language", default="ru", show_default=True, type=click.Choice(["ru", "en", "es", "pt"]))
def org_create(name: str, language: str) -> None:
    """Create an organisation and print its id."""
    created = run_with_services(lambda s: orgs.create_org(s.storage, name, language))
    click.echo(created.id)


@org.command("list")
@click.option("--json", "as_json", is_flag=True)
def org_list(as_json: bool) -> None:
    """List organisations."""
    items = run_with_services(lambda s: s.storage.orgs.list_all())
    if as_json:
        click.echo(json.dumps([{"id": o.id, "name": o.name, "language": o.language} for o in items],
                              ensure_ascii=False))
        return
    for o in items:
        click.echo(f"{o.id}\t{o.name}\t{o.language}")


@org.command("plan")
@click.argument("org_id")
@click.argument("plan", required=False)
def org_plan(org_id: str, plan: str | None) -> None:
    """Show the organisation's plan and this month's use of its limits, or set PLAN (free, pro, business)."""

    async def job(s):
        if plan:
            previous = await set_org_plan(s.storage, s.plans, org_id, plan)
            return f"{org_id}: plan {previous} -> {plan}"
        found = await s.storage.orgs.get(org_id)
        if found is None:
            raise NotFound(f"organisation {org_id} not found")
        shares = await s.quota.shares(org_id)
        used = ", ".join(f"{k} {v:.0%}" for k, v in shares.items()) or "no limits"
        return f"{org_id}: plan {found.plan} (plans: {', '.join(s.plans.names())}); this month: {used}"

    click.echo(run_with_services(job))


@click.group()
def agent() -> None:
    """Agents (virtual employees) of an organisation."""


@agent.command("create")
@click.option("--org", "org_id", required=True)
@click.option("--name", required=True)
@click.option("--instructions-file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def agent_create(org_id: str, name: str, instructions_file: Path | None) -> None:
    """Create an agent and print its id."""
    try:
        instructions = instructions_file.read_text(encoding="utf-8") if instructions_file else ""
    except UnicodeDecodeError:
        raise click.ClickException(f"{instructions_file} is not UTF-8 text") from None
    created = run_with_services(lambda s: orgs.create_agent(s.storage, org_id, name, instructions))
    click.echo(created.id)


@agent.command("list")
@click.option("--org", "org_id", required=True)
@json_option
def agent_list(org_id: str, as_json: bool) -> None:
    """List an organisation's agents."""

    async def job(s):
        await orgs.require_org(s.storage, org_id)
        return await s.storage.agents.list(org_id, sort=[("created_at", 1)])

    agents = run_with_services(job)
    if as_json:
        emit_json([pick(a, "id", "name", "enabled", "language", "delivery_mode", "reply_mode", "model")
                   for a in agents])
        return
    for a in agents:
        click.echo(f"{a.id}\t{a.name}\t{'enabled' if a.enabled else 'disabled'}")
