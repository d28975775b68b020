"""Tool schemas offered to the LLM, and validation of the calls it makes.

Only tools in `agent.allowed_actions` are offered; whatever the model calls anyway is still
validated, because the model's output is as untrusted as the customer text that may have
steered it. A refused call is logged and returned with its reason, never executed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from core.ai.answer.turn import PlannedAction
from core.logging import get_logger
from core.models.agent import Agent, AgentAction
from core.models.kommo import FieldValueRefused, KommoField, KommoPipeline, KommoUser, check_field_value
from core.storage.repositories.kommo_catalog import KommoCatalogRepository

log = get_logger(__name__)
MAX_DEADLINE_DAYS = 90
MAX_TEXT = 4000
__all__ = ["PlannedAction", "SCHEMAS", "ToolValidator", "tool_specs", "validate_tool_call"]

_REASON = {"type": "string", "description": "Short reason, for the humans reading the lead history"}

SCHEMAS: dict[str, dict[str, Any]] = {
    AgentAction.REPLY: {
        "description": "Send the answer to the customer. Cite the knowledge ids you used.",
        "parameters": {"type": "object", "properties": {
            "text": {"type": "string", "description": "The message to the customer"},
            "sources": {"type": "array", "items": {"type": "string"},
                        "description": "Ids of knowledge blocks used, e.g. [\"S1\"]"},
        }, "required": ["text"]},
    },
    AgentAction.MOVE_LEAD_STAGE: {
        "description": "Move the lead to another stage. Only the stages listed as allowed, and only "
                       "when their rule says so.",
        "parameters": {"type": "object", "properties": {
            "pipeline_id": {"type": "integer"}, "status_id": {"type": "integer"}, "reason": _REASON,
        }, "required": ["status_id", "reason"]},
    },
    AgentAction.CREATE_TASK: {
        "description": "Create a task for the sales team about this lead (e.g. call back).",
        "parameters": {"type": "object", "properties": {
            "text": {"type": "string", "description": "What a human should do"},
            "due_at": {"type": "string", "description": "Deadline, ISO 8601 with timezone"},
            "responsible_user_id": {"type": "integer", "description": "Optional Kommo user id"},
        }, "required": ["text", "due_at"]},
    },
    AgentAction.HANDOFF_TO_HUMAN: {
        "description": "Hand the conversation to a human colleague and stop answering.",
        "parameters": {"type": "object", "properties": {"reason": _REASON}, "required": ["reason"]},
    },
    AgentAction.UPDATE_LEAD_FIELD: {
        "description": "Set a custom field of the lead to a value the customer stated.",
        "parameters": {"type": "object", "properties": {
            "field_id": {"type": "integer"},
            "value": {"type": ["string", "number", "boolean"]},
        }, "required": ["field_id", "value"]},
    },
}


def tool_specs(agent: Agent) -> list[dict[str, Any]]:
    """OpenAI `tools` for this agent: only its allowed actions."""
    allowed = set(agent.allowed_actions)
    return [{"type": "function", "function": {"name": str(name), **spec}}
            for name, spec in SCHEMAS.items() if name in allowed]


class Refused(Exception):
    """Internal: a rule a tool call broke; its message becomes the refusal reason."""


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise Refused(f"{name} must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise Refused(f"{name} must be an integer")


def _text(args: dict[str, Any], name: str, limit: int = MAX_TEXT, required: bool = True) -> str:
    value = args.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise Refused(f"{name} must be a non-empty string")
    if len(value) > limit:
        raise Refused(f"{name} is longer than {limit} characters")
    return value.strip()


class ToolValidator:
    """Validates one turn's tool calls against the agent and the synced Kommo catalog.

    The catalog is read lazily and cached for the turn, so a turn with no actions costs no
    queries and one with several costs one query per kind.
    """

    def __init__(self, org_id: str, agent: Agent, catalog: KommoCatalogRepository, *,
                 now: datetime | None = None) -> None:
        self.org_id, self.agent, self.catalog = org_id, agent, catalog
        self.now = now or datetime.now(UTC)
        self._pipelines: dict[int, KommoPipeline | None] = {}
        self._fields: list[KommoField] | None = None
        self._users: list[KommoUser] | None = None

    async def lead_fields(self) -> list[KommoField]:
        if self._fields is None:
            fields = await self.catalog.fields(self.org_id, "leads")
            allowed = set(self.agent.writable_field_ids)  # set in the console; empty: none
            self._fields = [f for f in fields if f.field_id in allowed and not f.gone]
        return self._fields

    async def users(self) -> list[KommoUser]:
        if self._users is None:
            self._users = await self.catalog.users(self.org_id)
        return self._users

    async def _pipeline(self, pipeline_id: int) -> KommoPipeline | None:
        if pipeline_id not in self._pipelines:
            self._pipelines[pipeline_id] = await self.catalog.pipeline(self.org_id, pipeline_id)
        return self._pipelines[pipeline_id]

    async def validate(self, name: str, args: dict[str, Any] | None) -> PlannedAction:
        action = PlannedAction(kind=name, params=dict(args or {}))
        try:
            if name not in SCHEMAS:
                raise Refused("unknown tool")
            if name not in set(self.agent.allowed_actions):
                raise Refused("action not allowed for this agent")
            if args is None:
                raise Refused("arguments are not a JSON object")
            action.params = await getattr(self, f"_check_{name}")(args)
            action.valid = True
        except Refused as exc:
            action.refusal_reason = str(exc)
            log.warning("tool_call_refused", org_id=self.org_id, agent_id=self.agent.id, tool=name,
                        reason=action.refusal_reason, args=str(args)[:500])
        return action

    async def _check_reply(self, args: dict[str, Any]) -> dict[str, Any]:
        sources = args.get("sources") or []
        if not isinstance(sources, list):
            sources = [sources]
        return {"text": _text(args, "text"), "sources": [str(s) for s in sources][:10]}

    async def _check_handoff_to_human(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"reason": _text(args, "reason", 500, required=False) or "requested by the agent"}

    async def _check_move_lead_stage(self, args: dict[str, Any]) -> dict[str, Any]:
        status_id = _int(args.get("status_id"), "status_id")
        rules = [r for r in self.agent.stage_rules if r.status_id == status_id]
        if args.get("pipeline_id") is not None:
            pipeline_id = _int(args["pipeline_id"], "pipeline_id")
            rules = [r for r in rules if r.pipeline_id == pipeline_id]
        elif len({r.pipeline_id for r in rules}) > 1:  # 142/143 exist in every pipeline
            rules = [r for r in rules if r.pipeline_id == self.agent.pipeline_id]
        if len(rules) != 1:
            raise Refused(f"stage {status_id} is not among the stages this agent may move leads to")
        pipeline_id = rules[0].pipeline_id
        pipeline = await self._pipeline(pipeline_id)
        if pipeline is None or pipeline.gone:
            raise Refused(f"pipeline {pipeline_id} is not in the synced Kommo account")
        stage = pipeline.stage(status_id)
        if stage is None or stage.gone:
            raise Refused(f"stage {status_id} no longer exists in pipeline {pipeline_id}")
        return {"pipeline_id": pipeline_id, "status_id": status_id, "stage_name": stage.name,
                "reason": _text(args, "reason", 500, required=False)}

    async def _check_create_task(self, args: dict[str, Any]) -> dict[str, Any]:
        text = _text(args, "text", 1000)
        raw = args.get("due_at")
        try:
            due = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
        except ValueError:
            raise Refused("due_at is not an ISO 8601 date-time") from None
        if due.tzinfo is None:
            due = due.replace(tzinfo=self.now.tzinfo or UTC)  # the time the model was told: the account's
        if due <= self.now:
            raise Refused("deadline is in the past")
        if due > self.now + timedelta(days=MAX_DEADLINE_DAYS):
            raise Refused(f"deadline is more than {MAX_DEADLINE_DAYS} days ahead")
        params: dict[str, Any] = {"text": text, "due_at": due.isoformat(), "complete_till": int(due.timestamp())}
        if args.get("responsible_user_id") is not None:
            user_id = _int(args["responsible_user_id"], "responsible_user_id")
            user = next((u for u in await self.users() if u.user_id == user_id), None)
            if user is None or not user.is_active:
                raise Refused(f"user {user_id} does not exist or is not active in Kommo")
            params["responsible_user_id"] = user_id
        return params

    async def _check_update_lead_field(self, args: dict[str, Any]) -> dict[str, Any]:
        field_id = _int(args.get("field_id"), "field_id")
        if field_id not in set(self.agent.writable_field_ids):
            synced = {f.field_id for f in await self.catalog.fields(self.org_id, "leads")}
            if field_id not in synced:
                raise Refused(f"lead field {field_id} does not exist in the synced Kommo account")
            raise Refused(f"lead field {field_id} is not among the fields this agent may write")
        fld = next((f for f in await self.lead_fields() if f.field_id == field_id), None)
        if fld is None:
            raise Refused(f"lead field {field_id} does not exist in the synced Kommo account")
        try:  # type, options and length, as the Kommo side checks again before writing
            value, enum_id = check_field_value(fld, args.get("value"))
        except FieldValueRefused as exc:
            raise Refused(str(exc)) from None
        params: dict[str, Any] = {"field_id": field_id, "field_name": fld.name, "value": value}
        if enum_id is not None:
            params["enum_id"] = enum_id
        return params


async def validate_tool_call(validator: ToolValidator, name: str, arguments: dict[str, Any] | None) -> PlannedAction:
    """Validate one call (`arguments` None = unparseable JSON)."""
    return await validator.validate(name, arguments)
