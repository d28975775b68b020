"""`kommo-agent chat [--org ORG] [--agent ID|NAME]`: the test chat in a terminal.

The same dry-run turns as the console's /test (core/testchat): the answer, its sources with a
short quote, tokens and cost, and what the agent would do in Kommo; nothing is written to Kommo.
While `kommo-agent up` runs, the stack's worker (the knowledge store's owner) answers; otherwise
this process does. With no organisation yet it seeds the demo shop first (core/demo). Lines read
from a pipe are messages too, so `echo "..." | kommo-agent chat` works; `/stop` or end of input leaves.
"""

from __future__ import annotations

import asyncio
import json
import sys
from contextlib import nullcontext
from dataclasses import asdict

import click
from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from cli import stack
from cli.common import CliError, run_with_services
from core.ai.answer.turn import PlannedAction
from core.demo.seed import AGENT_NAME, seed_demo
from core.models.knowledge import SourceStatus
from core.services import CoreServices
from core.testchat.service import TestAnswer

USER_KEY = "cli"  # one terminal test chat per organisation (the console keys its own by Telegram user)
LEAVE = ("/stop", "/exit", "/quit")
INDEX_WAIT_S = 600.0


async def _demo(services: CoreServices, out: Console) -> str:
    """Seed the demo (fresh installation only) and wait until its knowledge is indexed."""
    through = stack.through_stack(services.settings)
    if through:
        intake = services.knowledge_intake()  # queued: the stack's worker indexes
    else:
        intake = (await services.knowledge()).ingestion
    seeded = await seed_demo(services.storage, intake)
    if seeded is None:
        raise CliError("no organisation to chat with: give --org (see `kommo-agent org list`)")
    out.print(f"[bold]Demo shop created[/bold]: agent {AGENT_NAME}, {len(seeded.source_ids)} knowledge sources.")
    with out.status("indexing the demo's knowledge (loading the language model the first time)..."):
        if not through:
            for source_id in seeded.source_ids:
                await intake.index_source(seeded.org_id, source_id)
        else:
            deadline = asyncio.get_running_loop().time() + INDEX_WAIT_S
            while True:
                sources = [await services.storage.knowledge.get(seeded.org_id, s) for s in seeded.source_ids]
                if all(s is not None and s.status == SourceStatus.READY for s in sources):
                    break
                if any(s is not None and s.status == SourceStatus.FAILED for s in sources):
                    raise CliError("the demo's knowledge failed to index (see `kommo-agent knowledge list`)")
                if asyncio.get_running_loop().time() > deadline:
                    raise CliError("the worker has not indexed the demo's knowledge yet; try again in a minute")
                await asyncio.sleep(1.0)
    return seeded.org_id


async def _pick(services: CoreServices, org_id: str | None, agent_id: str | None, out: Console) -> tuple[str, str]:
    storage = services.storage
    if org_id is None:
        orgs = await storage.orgs.list_all()
        if len(orgs) > 1:
            raise CliError("several organisations: say which with --org (see `kommo-agent org list`)")
        org_id = orgs[0].id if orgs else await _demo(services, out)
    elif await storage.orgs.get(org_id) is None:
        raise CliError(f"no organisation {org_id} (see `kommo-agent org list`)")
    if agent_id is not None:
        # An id, or a name (the org may have been chosen here, after --agent was read).
        agent = await storage.agents.get(org_id, agent_id) or next(
            iter(await storage.agents.list(org_id, {"name": agent_id}, limit=1)), None)
        if agent is None:
            raise CliError(f"no agent {agent_id!r} in organisation {org_id} (see `kommo-agent agent list --org {org_id}`)")
        agent_id = agent.id
    else:
        agents = [a for a in await storage.agents.list(org_id, sort=[("created_at", 1)]) if a.enabled]
        if not agents:
            raise CliError(f"organisation {org_id} has no enabled agent (kommo-agent agent create --org {org_id} ...)")
        if len(agents) > 1:
            names = ", ".join(a.name for a in agents)
            raise CliError(f"several agents ({names}): say which with --agent")
        agent_id = agents[0].id
    return org_id, agent_id


def _render(answer: TestAnswer, out: Console) -> None:
    title = f"{answer.mode}" + (f" · handoff: {answer.handoff_reason}" if answer.handoff else "")
    out.print(Panel(Text(answer.reply_text or "(no reply)"), title=title, title_align="left", border_style="cyan"))
    for s in answer.sources:
        where = f"{s['title']} — {s['heading']}" if s.get("heading") else s["title"]
        out.print(Text.assemble(("  source ", "dim"), (where, "bold"), (f": {s['quote']}" if s.get("quote") else "", "")))
    for a in answer.actions:
        action = PlannedAction(kind=a["kind"], params=a.get("params") or {}, valid=a.get("valid", False),
                               refusal_reason=a.get("refusal_reason"), would_do=True)
        out.print(Text.assemble(("  in Kommo I would ", "dim"), (action.describe(), "yellow")))
    cost = f", ${answer.cost_usd:.5f}" if answer.cost_usd else ""
    out.print(Text(f"  tokens: {answer.prompt_tokens} prompt + {answer.completion_tokens} completion{cost}"
                   f"{' · ' + answer.model if answer.model else ''}", style="dim"))


async def _session(services: CoreServices, org_id: str | None, agent_id: str | None, as_json: bool) -> None:
    out = Console(stderr=as_json, highlight=False)
    org_id, agent_id = await _pick(services, org_id, agent_id, out)
    chat = services.test_chat(in_process=not stack.through_stack(services.settings))
    session = await chat.open(org_id, USER_KEY, agent_id)
    interactive = sys.stdin.isatty()
    if interactive:
        out.print(f"Test chat with [bold]{session.agent_name}[/bold] (dry run: nothing is sent to Kommo). "
                  "/stop leaves.")
    try:
        while True:
            try:
                text = (await asyncio.to_thread(input, "you> " if interactive else "")).strip()
            except EOFError:
                break
            if not text:
                continue
            if text.lower() in LEAVE:
                break
            with out.status("thinking...") if interactive else nullcontext():
                answer = await chat.ask(org_id, USER_KEY, text)
            if as_json:
                click.echo(json.dumps(asdict(answer), ensure_ascii=False, default=str))
            else:
                _render(answer, out)
    finally:
        await chat.leave(org_id, USER_KEY)


@click.command("chat")
@click.option("--org", "org_id", default=None, help="Organisation (id or name); the only one, or the demo, if omitted")
@click.option("--agent", "agent_id", default=None, help="Agent (id or name); the organisation's only agent if omitted")
@click.option("--json", "as_json", is_flag=True, help="Print each answer as one JSON line")
def chat(org_id: str | None, agent_id: str | None, as_json: bool) -> None:
    """Talk to an agent as a customer would (dry run: nothing is done in Kommo)."""
    run_with_services(lambda s: _session(s, org_id, agent_id, as_json))
