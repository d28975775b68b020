"""`kommo-agent ask --org ORG --agent AGENT "question"`: one dry-run turn of an agent.

Prints the answer, its sources, the actions the agent would take in Kommo and the tokens used;
`--json` prints the whole turn result for scripts. Nothing is executed in Kommo. While
`kommo-agent up` runs, the stack's worker (the owner of the knowledge store) answers it
(`tasks/ask.py`); otherwise this process does.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from cli import stack
from cli.common import require_agent, run_with_services
from core.ai.answer.turn import PlannedAction
from core.errors import KommoAgentError
from core.services import CoreServices
from tasks.ask import ask_once

ASK_TIMEOUT_S = 180.0


async def ask_dict(services: CoreServices, org_id: str, agent_id: str, question: str) -> dict[str, Any]:
    await require_agent(services, org_id, agent_id)
    if not stack.through_stack(services.settings):
        return (await ask_once(services, org_id, agent_id, question)).to_dict()
    result = await stack.call(services.settings, "ask.run", [org_id, agent_id, question], timeout=ASK_TIMEOUT_S)
    if "error" in result and "reply_text" not in result:
        raise KommoAgentError(result["error"])
    return result


def render(result: dict[str, Any]) -> str:
    lines = [f"answer ({result['mode']}, {result['language']}):", result.get("reply_text") or "(no reply)", ""]
    sources = result.get("sources") or []
    lines.append("sources:" if sources else "sources: none")
    for s in sources:
        where = f"{s['title']} — {s['heading']}" if s.get("heading") else s["title"]
        lines.append(f"  [{s['ref']}] {where} ({s['source_id']}, score {s['score']})")
    actions = [PlannedAction(kind=a["kind"], params=a.get("params") or {}, valid=a.get("valid", False),
                             refusal_reason=a.get("refusal_reason"), would_do=a.get("would_do", False))
               for a in result.get("planned_actions") or []]
    lines.append("planned actions:" if actions else "planned actions: none")
    lines += [f"  {a.describe()}" for a in actions]
    if r := result.get("relevance"):
        lines.append(f"relevance: {r.get('kind')}, {'answered' if r.get('answer') else 'below the floor'} "
                     f"({r.get('reason')})")
    lines += [f"removed by the checks: {c['sentence']!r} ({c['reason']})" for c in result.get("checks") or []]
    if result.get("handoff"):
        lines.append(f"handoff: yes ({result.get('handoff_reason')})")
    u = result.get("usage") or {}
    lines.append(f"usage: {u.get('model') or '-'} prompt={u.get('prompt_tokens', 0)} "
                 f"completion={u.get('completion_tokens', 0)} calls={u.get('calls', 0)}")
    return "\n".join(lines)


@click.command("ask")
@click.option("--org", "org_id", required=True)
@click.option("--agent", "agent_id", required=True)
@click.option("--json", "as_json", is_flag=True, help="Print the turn result as JSON")
@click.argument("question")
def ask(org_id: str, agent_id: str, as_json: bool, question: str) -> None:
    """Ask an agent one question (dry run: nothing is done in Kommo)."""
    if not question.strip():
        raise click.UsageError("the question is empty")
    result = run_with_services(lambda s: ask_dict(s, org_id, agent_id, question))
    if result is None:
        sys.exit(1)
    click.echo(json.dumps(result, ensure_ascii=False, default=str) if as_json else render(result))
