"""Resolving what an operator typed (ids or names) against the synced Kommo catalog."""

from __future__ import annotations

from core.errors import InvalidInput, NotFound
from core.models.agent import Agent
from core.models.kommo import KommoPipeline, KommoStage
from core.storage import Storage


def _matches(ref: str, id_: int, name: str) -> bool:
    ref = ref.strip()
    return (ref.isdigit() and int(ref) == id_) or ref.casefold() == name.casefold()


async def resolve_stage(storage: Storage, org_id: str, pipeline_ref: str, stage_ref: str
                        ) -> tuple[KommoPipeline, KommoStage]:
    pipelines = await storage.kommo_catalog.pipelines(org_id)
    if not pipelines:
        raise InvalidInput("no pipelines are synced for this organisation; run `kommo-agent kommo sync --org ...`")
    pipeline = next((p for p in pipelines if _matches(pipeline_ref, p.pipeline_id, p.name)), None)
    if pipeline is None:
        names = ", ".join(f"{p.name} ({p.pipeline_id})" for p in pipelines)
        raise InvalidInput(f"unknown pipeline {pipeline_ref!r}; pipelines: {names}")
    live = [s for s in pipeline.statuses if not s.gone]
    stage = next((s for s in live if _matches(stage_ref, s.id, s.name)), None)
    if stage is None:
        names = ", ".join(f"{s.name} ({s.id})" for s in live)
        raise InvalidInput(f"unknown stage {stage_ref!r} in pipeline {pipeline.name!r}; stages: {names}")
    return pipeline, stage


async def resolve_agent(storage: Storage, org_id: str, agent_ref: str) -> Agent:
    agent = await storage.agents.get(org_id, agent_ref.strip()) or await storage.agents.by_name(org_id, agent_ref.strip())
    if agent is None:
        raise NotFound(f"unknown agent {agent_ref!r} in this organisation", agent=agent_ref)
    return agent
