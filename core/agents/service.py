"""`AgentAdmin`: create, edit, enable/disable and delete agents, one validated field at a time.

The console's wizard checks each step with `check` as the operator answers it, then creates the
agent from the whole draft with `create`, which checks everything again: a draft kept in Redis
across a restart may have gone stale (a pipeline deleted in Kommo meanwhile).
"""

from __future__ import annotations

import re
from typing import Any

from core.agents.errors import AgentFieldInvalid
from core.agents.hours import parse_hours
from core.errors import AlreadyExists, NotFound
from core.models.agent import Agent, AgentAction, DeliveryMode, LanguagePolicy, StageRule, WorkingHours
from core.models.org import Operator
from core.orgs import MAX_INSTRUCTIONS, MAX_NAME, create_agent
from core.storage import Storage
from core.team.errors import NotAMember
from core.team.roles import Permission, require
from core.usage.plans import PlanCatalog, PlanLimitReached

MAX_PERSONA = 500
MAX_HANDOFF_RULES = 2000
_MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,99}$")
ALWAYS_ALLOWED = (AgentAction.REPLY, AgentAction.HANDOFF_TO_HUMAN)
TEXT_FIELD_TYPES = ("text", "textarea", "numeric", "url", "select", "checkbox", "date")
AGENT_LANGUAGES = ("ru", "en", "es", "pt")
EDITABLE = ("name", "persona", "instructions", "language", "model", "scope", "actions", "delivery_mode",
            "working_hours", "handoff_rules")


def _text(field: str, value: Any, limit: int, *, required: bool) -> str:
    text = str(value or "").strip()
    if required and not text:
        raise AgentFieldInvalid(f"{field}_empty", f"{field} must not be empty", field=field)
    if len(text) > limit:
        raise AgentFieldInvalid("text_too_long", f"{field} is longer than {limit} characters", field=field,
                                limit=limit)
    return text


class AgentAdmin:
    def __init__(self, storage: Storage, plans: PlanCatalog | None = None) -> None:
        self.storage = storage
        self.plans = plans  # None: no plan limits (scripts, tests of other areas)

    # --- reading -------------------------------------------------------------------------
    async def list(self, org_id: str, actor: Operator) -> list[Agent]:
        self._check(org_id, actor, Permission.VIEW)
        return await self.storage.agents.list(org_id, sort=[("created_at", 1)])

    async def get(self, org_id: str, actor: Operator, agent_id: str) -> Agent:
        self._check(org_id, actor, Permission.VIEW)
        return await self._agent(org_id, agent_id)

    # --- checking one field ----------------------------------------------------------------
    async def check(self, org_id: str, field: str, value: Any, *, agent_id: str | None = None) -> dict[str, Any]:
        """`value` as the operator gave it -> the agent fields it sets, normalised.
        AgentFieldInvalid (with a per-rule code) when it breaks a rule."""
        if field == "name":
            name = _text("name", value, MAX_NAME, required=True)
            same = await self.storage.agents.by_name(org_id, name)
            if same is not None and same.id != agent_id:
                raise AlreadyExists(f"an agent named {name!r} already exists", name=name)
            return {"name": name}
        if field == "persona":
            return {"persona": _text("persona", value, MAX_PERSONA, required=True)}
        if field == "instructions":
            return {"instructions": _text("instructions", value, MAX_INSTRUCTIONS, required=True)}
        if field == "handoff_rules":
            return {"handoff_rules": _text("handoff_rules", value, MAX_HANDOFF_RULES, required=False)}
        if field == "language":
            policy, language = value
            if language not in AGENT_LANGUAGES:
                raise AgentFieldInvalid("language_invalid", f"unsupported language {language!r}")
            return {"language_policy": LanguagePolicy(policy), "language": language}
        if field == "model":
            model = str(value or "").strip() or None
            if model is not None and not _MODEL.match(model):
                raise AgentFieldInvalid("model_invalid", f"not a model name: {model[:60]!r}")
            return {"model": model}
        if field == "scope":
            return await self._check_scope(org_id, *value)
        if field == "actions":
            return await self._check_actions(org_id, *value)
        if field == "delivery_mode":
            return {"delivery_mode": DeliveryMode(value)}
        if field == "working_hours":
            if isinstance(value, WorkingHours):
                return {"working_hours": value}
            return {"working_hours": parse_hours(str(value), await self._timezone(org_id))}
        raise AgentFieldInvalid("field_unknown", f"no agent field {field!r}", field=field)

    async def _check_scope(self, org_id: str, pipeline_id: int | None, stage_ids: list[int]) -> dict[str, Any]:
        if pipeline_id is None:
            return {"pipeline_id": None, "stage_ids": []}
        pipeline = await self.storage.kommo_catalog.pipeline(org_id, int(pipeline_id))
        if pipeline is None or pipeline.gone:
            raise AgentFieldInvalid("pipeline_unknown", f"pipeline {pipeline_id} is not in the synced account",
                                    pipeline_id=pipeline_id)
        live = {s.id for s in pipeline.statuses if not s.gone}
        unknown = [s for s in stage_ids if s not in live]
        if unknown:
            raise AgentFieldInvalid("stage_unknown", f"stages {unknown} are not in pipeline {pipeline.name!r}",
                                    stage_ids=unknown)
        return {"pipeline_id": pipeline.pipeline_id, "stage_ids": sorted(set(stage_ids))}

    async def _check_actions(self, org_id: str, actions: list[str], field_ids: list[int]) -> dict[str, Any]:
        chosen = [AgentAction(a) for a in actions]
        allowed = list(ALWAYS_ALLOWED) + [a for a in AgentAction if a in chosen and a not in ALWAYS_ALLOWED]
        fields: list[int] = []
        if AgentAction.UPDATE_LEAD_FIELD in allowed:
            synced = {f.field_id: f for f in await self.storage.kommo_catalog.fields(org_id, "leads")}
            unknown = [f for f in field_ids if f not in synced]
            if unknown:
                raise AgentFieldInvalid("field_unknown", f"lead fields {unknown} are not in the synced account",
                                        field_ids=unknown)
            if not field_ids:
                raise AgentFieldInvalid("fields_empty", "choose the lead fields the agent may write")
            fields = sorted(set(field_ids))
        return {"allowed_actions": allowed, "writable_field_ids": fields}

    async def _timezone(self, org_id: str) -> str | None:
        """A zone set on the organisation itself; None (hours read in the Kommo account's own
        timezone) when it is only the model's "UTC" default."""
        org = await self.storage.orgs.get(org_id)
        return org.timezone if org and org.timezone and org.timezone != "UTC" else None

    @staticmethod
    def stage_rules(fields: dict[str, Any]) -> list[StageRule]:
        """Stages an agent allowed to move leads may move them to: those of its scope."""
        if AgentAction.MOVE_LEAD_STAGE not in fields.get("allowed_actions", []) or not fields.get("pipeline_id"):
            return []
        return [StageRule(pipeline_id=fields["pipeline_id"], status_id=s) for s in fields.get("stage_ids", [])]

    # --- writing -------------------------------------------------------------------------
    async def create(self, org_id: str, actor: Operator, draft: dict[str, Any]) -> Agent:
        """`draft`: field name (as in `check`) -> the operator's value. Missing optional fields
        keep the agent defaults; name, persona and instructions are required."""
        self._check(org_id, actor, Permission.MANAGE_AGENTS)
        await self._check_agent_limit(org_id)
        fields: dict[str, Any] = {}
        for field in ("name", "persona", "instructions"):
            fields |= await self.check(org_id, field, draft.get(field))
        for field in ("language", "model", "scope", "actions", "delivery_mode", "working_hours", "handoff_rules"):
            if draft.get(field) is not None:
                fields |= await self.check(org_id, field, draft[field])
        fields["stage_rules"] = self.stage_rules(fields)
        name, instructions = fields.pop("name"), fields.pop("instructions")
        return await create_agent(self.storage, org_id, name, instructions, **fields)

    async def _check_agent_limit(self, org_id: str) -> None:
        if self.plans is None:
            return
        org = await self.storage.orgs.get(org_id)
        plan = self.plans.of(org.plan if org else None)
        if plan.agents is not None and await self.storage.agents.count(org_id) >= plan.agents:
            raise PlanLimitReached(f"the {plan.title} plan allows {plan.agents} agent(s); this organisation has "
                                   f"them all", limit=plan.agents, plan=plan.title)

    async def update(self, org_id: str, actor: Operator, agent_id: str, field: str, value: Any) -> Agent:
        self._check(org_id, actor, Permission.MANAGE_AGENTS)
        agent = await self._agent(org_id, agent_id)
        changes = await self.check(org_id, field, value, agent_id=agent.id)
        if field in ("scope", "actions"):
            merged = agent.model_dump() | changes
            changes["stage_rules"] = [r.model_dump() for r in self.stage_rules(merged)]
        if "working_hours" in changes:
            changes["working_hours"] = changes["working_hours"].model_dump()
        return await self.storage.agents.update(org_id, agent.id, changes)

    async def set_enabled(self, org_id: str, actor: Operator, agent_id: str, enabled: bool) -> Agent:
        self._check(org_id, actor, Permission.MANAGE_AGENTS)
        agent = await self._agent(org_id, agent_id)
        return await self.storage.agents.update(org_id, agent.id, {"enabled": bool(enabled)})

    async def delete(self, org_id: str, actor: Operator, agent_id: str) -> Agent:
        self._check(org_id, actor, Permission.MANAGE_AGENTS)
        agent = await self._agent(org_id, agent_id)
        await self.storage.agents.delete(org_id, agent.id)
        return agent

    async def _agent(self, org_id: str, agent_id: str) -> Agent:
        agent = await self.storage.agents.get(org_id, agent_id)
        if agent is None:
            raise NotFound(f"agent {agent_id!r} not found in this organisation", agent_id=agent_id)
        return agent

    @staticmethod
    def _check(org_id: str, actor: Operator, permission: Permission) -> None:

        if actor.org_id != org_id:
            raise NotAMember("the actor is not in this organisation", org_id=org_id)
        require(actor, permission)
