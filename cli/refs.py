"""`--org` and `--agent` take an id or a name, on every command.

`accept_names(main)` walks the command tree once at start-up: each command with an `--org` or
`--agent` option gets help saying so, and its callback receives ids. An id-shaped value
(`org_...`, `agt_...`) is passed through untouched; anything else is looked up by id, then by
name, in one short database call. What matches nothing is passed on too: the command itself
says that there is no such organisation or agent.
"""

from __future__ import annotations

import asyncio
import functools

import click

from cli.common import CliError, ensure_embedded_servers, fail
from core.config import load_settings
from core.services import effective_mongo_url
from core.storage import Storage
from core.storage.mongo import create_mongo_client

ORG_HELP = "Organisation: its id or its name"
AGENT_HELP = "Agent: its id or its name"


def _is_id(value: str | None, prefix: str) -> bool:
    return value is None or value.startswith(prefix)


async def _lookup(org: str | None, agent: str | None) -> tuple[str | None, str | None]:
    settings = load_settings()
    client = create_mongo_client(effective_mongo_url(settings), settings.mongo)
    try:
        storage = Storage.from_db(client[settings.mongo.database])
        if org is not None and not _is_id(org, "org_") and await storage.orgs.get(org) is None:
            named = [o for o in await storage.orgs.list_all() if o.name == org]
            if len(named) > 1:
                raise CliError(f"{len(named)} organisations are named {org!r}; give its id "
                               f"({', '.join(o.id for o in named)})")
            if named:
                org = named[0].id  # else the command itself says there is no such organisation
        if org is not None and agent is not None and not _is_id(agent, "agt_") \
                and await storage.agents.get(org, agent) is None:
            named = await storage.agents.list(org, {"name": agent}, limit=3)
            if len(named) > 1:
                raise CliError(f"several agents are named {agent!r}; give its id ({', '.join(a.id for a in named)})")
            if named:
                agent = named[0].id
        return org, agent
    finally:
        await client.close()


def resolve(org: str | None, agent: str | None) -> tuple[str | None, str | None]:
    if _is_id(org, "org_") and _is_id(agent, "agt_"):
        return org, agent
    try:
        ensure_embedded_servers(load_settings())
        return asyncio.run(_lookup(org, agent))
    except CliError as exc:
        fail(str(exc))
    except Exception:  # noqa: BLE001 - the command itself reports an unreachable database properly
        return org, agent
    raise AssertionError("unreachable")


def _wrap(command: click.Command, org_param: str | None, agent_param: str | None) -> None:
    callback = command.callback

    @functools.wraps(callback)
    def with_ids(*args, **kwargs):
        org, agent = resolve(kwargs.get(org_param) if org_param else None,
                             kwargs.get(agent_param) if agent_param else None)
        if org_param:
            kwargs[org_param] = org
        if agent_param and kwargs.get(agent_param) is not None:
            kwargs[agent_param] = agent
        return callback(*args, **kwargs)

    command.callback = with_ids


def _help(standard: str, own: str | None) -> str:
    if not own or own.lower().startswith(("organisation id", "agent id")):
        return standard
    return own if "name" in own.lower() else f"{standard}. {own}"


def accept_names(group: click.Group) -> None:
    for command in group.commands.values():
        if isinstance(command, click.Group):
            accept_names(command)
            continue
        org_param = agent_param = None
        for param in command.params:
            if isinstance(param, click.Option) and "--org" in param.opts:
                org_param = param.name
                param.help = _help(ORG_HELP, param.help)
            elif isinstance(param, click.Option) and "--agent" in param.opts:
                agent_param = param.name
                param.help = _help(AGENT_HELP, param.help)
        if org_param and command.callback is not None:
            _wrap(command, org_param, agent_param)
