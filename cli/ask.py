"""`kommo-agent ask --org ORG --agent AGENT "question"`: one dry-run turn of an agent.

Prints the answer, its sources, the actions the agent would take in Kommo and the tokens used;
`--json` prints the whole turn result for scripts. Nothing is executed in Kommo.
"""

from __future__ import annotations

import json
import sys

import click

from cli.common import run_with_services
from core.ai.answer.turn import TurnResult
from core.errors import NotFound
from core.ids import new_id
from core.services import CoreServices
from core.usage.quota import QuotaExceeded


async def ask_once(services: CoreServices, org_id: str, agent_id: str, question: str) -> TurnResult:
    agent = await services.storage.agents.get(org_id, agent_id)
    if agent is None:
        raise NotFound(f"agent {agent_id} not found in organisation {org_id}")
    decision = await services.quota.check_reply(org_id, agent_id)
    if not decision.allowed:
        # The test chat answers like the customer-facing agent would: not at all, and says why.
        raise QuotaExceeded(f"the plan's monthly limit is reached ({decision.reason}): the agent does not answer "
                            "until the next period or a plan change (kommo-agent org plan)", reason=decision.reason)
    # The process's own areas (closed with the services): the same retriever, query translation
    # and LLM client a worker's turn uses.
    runtime = await services.runtime()
    return await runtime.run_turn(org_id, agent, customer_text=question, conversation=None, history=[],
                                  lead_facts={}, dry_run=True, turn_id=new_id("ask"))


def render(result: TurnResult) -> str:
    lines = [f"answer ({result.mode}, {result.language}):", result.reply_text or "(no reply)", ""]
    lines.append("sources:" if result.sources else "sources: none")
    for s in result.sources:
        where = f"{s['title']} — {s['heading']}" if s.get("heading") else s["title"]
        lines.append(f"  [{s['ref']}] {where} ({s['source_id']}, score {s['score']})")
    lines.append("planned actions:" if result.planned_actions else "planned actions: none")
    lines += [f"  {a.describe()}" for a in result.planned_actions]
    if result.handoff:
        lines.append(f"handoff: yes ({result.handoff_reason})")
    u = result.usage
    lines.append(f"usage: {u.model or '-'} prompt={u.prompt_tokens} completion={u.completion_tokens} calls={u.calls}")
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
    try:
        result = run_with_services(lambda s: ask_once(s, org_id, agent_id, question))
    except Exception as exc:  # noqa: BLE001 - one line for operators, not a traceback
        click.echo(f"error: {type(exc).__name__}: {exc}".splitlines()[0], err=True)
        sys.exit(1)
    click.echo(json.dumps(result.to_dict(), ensure_ascii=False, default=str) if as_json else render(result))
