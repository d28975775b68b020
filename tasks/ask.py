"""`ask.run`: one dry-run turn of an agent, answered by the worker that holds the knowledge store
(the CLI's `ask` while `kommo-agent up` runs); the result is the turn as a dict."""

from __future__ import annotations

from core.ai.answer.turn import TurnResult
from core.errors import KommoAgentError, NotFound
from core.ids import new_id
from tasks.app import celery_app
from tasks.base import CoreTask


@celery_app.task(name="ask.run", base=CoreTask, bind=True, ignore_result=False)
def run(self: CoreTask, org_id: str, agent_id: str, question: str) -> dict:
    try:
        return self.core(lambda s: ask_once(s, org_id, agent_id, question)).to_dict()
    except KommoAgentError as exc:
        return {"error": str(exc), "code": exc.code}


async def ask_once(services, org_id: str, agent_id: str, question: str) -> TurnResult:
    agent = await services.storage.agents.get(org_id, agent_id)
    if agent is None:
        raise NotFound(f"agent {agent_id} not found in organisation {org_id}")
    # The process's own areas: the same retriever, query translation and LLM client a turn uses.
    runtime = await services.runtime()
    return await runtime.run_turn(org_id, agent, customer_text=question, conversation=None, history=[],
                                  lead_facts={}, dry_run=True, turn_id=new_id("ask"))
