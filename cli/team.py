"""`kommo-agent team ...`: the same team rules as the Telegram console (core/team), from the
server's shell, acting with an owner's rights."""

from __future__ import annotations

import click

from cli.common import run_with_services
from cli.output import emit_json, json_option, pick
from core.models.org import Operator, Role

ROLES = [r.value for r in Role]


def _shell_owner(org_id: str) -> Operator:
    """Whoever runs the CLI on the server administers every organisation on it."""
    return Operator(_id="cli", org_id=org_id, telegram_user_id=0, role=Role.OWNER, name="kommo-agent CLI")


@click.group()
def team() -> None:
    """Organisation members: list, invite, role, remove."""


@team.command("list")
@click.option("--org", "org_id", required=True)
@json_option
def list_(org_id: str, as_json: bool) -> None:
    """Members with their roles."""
    from core.team.service import TeamService  # noqa: PLC0415 - keeps `--help` fast

    async def job(services):
        return await TeamService(services.storage).members(org_id, _shell_owner(org_id))

    members = run_with_services(job)
    if as_json:
        emit_json([pick(m, "id", "role", "telegram_user_id", "name") for m in members])
        return
    for m in members:
        click.echo(f"{m.id}\t{m.role.value}\t{m.telegram_user_id}\t{m.name}")


@team.command()
@click.option("--org", "org_id", required=True)
@click.option("--role", type=click.Choice(ROLES), default="editor", show_default=True)
@click.option("--bot", "bot_username", default=None, help="The console bot's username, to print a t.me link")
def invite(org_id: str, role: str, bot_username: str | None) -> None:
    """A single-use invite (48 h): prints the /start parameter (or the t.me link)."""
    from core.team.service import TeamService, invite_payload  # noqa: PLC0415 - keeps `--help` fast

    async def job(services):
        return await TeamService(services.storage).create_invite(org_id, _shell_owner(org_id), Role(role))

    payload = invite_payload(run_with_services(job))
    click.echo(f"https://t.me/{bot_username}?start={payload}" if bot_username else f"/start {payload}")


@team.command()
@click.option("--org", "org_id", required=True)
@click.argument("operator_id")
@click.argument("role", type=click.Choice(ROLES))
def role(org_id: str, operator_id: str, role: str) -> None:
    """Change a member's role (the last owner stays an owner)."""
    from core.team.service import TeamService  # noqa: PLC0415 - keeps `--help` fast

    async def job(services):
        return await TeamService(services.storage).change_role(org_id, _shell_owner(org_id), operator_id, Role(role))

    click.echo(f"{run_with_services(job).id}\t{role}")


@team.command()
@click.option("--org", "org_id", required=True)
@click.argument("operator_id")
def remove(org_id: str, operator_id: str) -> None:
    """Remove a member (not the last owner)."""
    from core.team.service import TeamService  # noqa: PLC0415 - keeps `--help` fast

    async def job(services):
        return await TeamService(services.storage).remove(org_id, _shell_owner(org_id), operator_id)

    click.echo(f"removed: {run_with_services(job).id}")
