"""Which agent answers a lead: the enabled agent whose pipeline/stage scope contains the lead's
stage; an agent with no scope answers everything of its org's account. A scoped match beats an
unscoped one; two equally specific matches are a configuration error shown to the admins."""

from __future__ import annotations

from core.conversations.errors import AgentTie
from core.models.agent import Agent


def _in_scope(agent: Agent, pipeline_id: int | None, status_id: int | None) -> bool:
    if agent.pipeline_id is None:
        return True
    if agent.pipeline_id != pipeline_id:
        return False
    return not agent.stage_ids or status_id in agent.stage_ids


def pick_agent(agents: list[Agent], pipeline_id: int | None, status_id: int | None) -> Agent | None:
    enabled = [a for a in agents if a.enabled]
    scoped = [a for a in enabled if a.pipeline_id is not None and _in_scope(a, pipeline_id, status_id)]
    for candidates in (scoped, [a for a in enabled if a.pipeline_id is None]):
        if len(candidates) > 1:
            names = ", ".join(sorted(a.name for a in candidates))
            raise AgentTie(f"several agents answer the same stage: {names}", agents=names,
                           pipeline_id=pipeline_id, status_id=status_id)
        if candidates:
            return candidates[0]
    return None


def needs_lead_stage(agents: list[Agent]) -> bool:
    """Only scoped agents need the lead's current stage from Kommo to decide."""
    return any(a.enabled and a.pipeline_id is not None for a in agents)
