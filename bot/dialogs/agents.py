"""/agents: the list with status, an agent's card, editing one field, enable/disable, delete."""

from __future__ import annotations

from typing import Any

from aiogram.types import CallbackQuery
from aiogram.utils.i18n import gettext
from aiogram_dialog import Data, Dialog, DialogManager, Window
from aiogram_dialog.widgets.kbd import Button, Start, SwitchTo

from bot.dialogs.states import Agents, AgentWizard
from bot.dialogs.widgets import Err, T, actor, choice, common_getter, guarded, nav, nav_to, needs, paged
from core.agents.hours import format_hours
from core.agents.service import EDITABLE, AgentAdmin
from core.models.agent import Agent, ApprovalTimeoutAction, ReplyMode
from core.team.roles import Permission, can

FIELD_STATES = {"name": AgentWizard.name, "persona": AgentWizard.persona, "instructions": AgentWizard.instructions,
                "language": AgentWizard.language, "model": AgentWizard.model, "scope": AgentWizard.pipeline,
                "actions": AgentWizard.actions, "delivery_mode": AgentWizard.delivery,
                "working_hours": AgentWizard.hours, "handoff_rules": AgentWizard.handoff}
PREVIEW = 300


def _status(agent: Agent) -> str:
    return "🟢" if agent.enabled else "⚪"


async def list_getter(dialog_manager: DialogManager, agents: AgentAdmin, org, operator, **_: Any) -> dict:
    found = await agents.list(org.id, operator)
    return {"agents": [{"id": a.id, "label": f"{_status(a)} {a.name} · {a.delivery_mode.value}"} for a in found],
            "count": len(found), "can_edit": can(operator.role, Permission.MANAGE_AGENTS)}


async def open_agent(callback: CallbackQuery, widget: Any, manager: DialogManager, agent_id: str) -> None:
    org_id, operator = actor(manager)
    await manager.middleware_data["agents"].get(org_id, operator, agent_id)  # NotFound for another org's id
    manager.dialog_data["agent_id"] = agent_id
    await manager.switch_to(Agents.card)


async def describe(manager: DialogManager, agent: Agent) -> dict[str, Any]:
    storage = manager.middleware_data["services"].storage
    scope = gettext("agents.scope_all")
    if agent.pipeline_id is not None:
        pipeline = await storage.kommo_catalog.pipeline(agent.org_id, agent.pipeline_id)
        names = {s.id: s.name for s in (pipeline.statuses if pipeline else [])}
        stages = ", ".join(names.get(s, str(s)) for s in agent.stage_ids) or gettext("agents.stages_all")
        scope = f"{pipeline.name if pipeline else agent.pipeline_id}: {stages}"
    instructions = agent.instructions if len(agent.instructions) <= PREVIEW else agent.instructions[:PREVIEW] + "…"
    language = gettext("agents.language_mirror") if agent.language_policy == "mirror" else agent.language
    return {"name": agent.name, "status": gettext("agents.enabled" if agent.enabled else "agents.disabled"),
            "persona": agent.persona, "instructions": instructions, "language": language,
            "model": agent.model or gettext("agents.model_default"), "scope": scope,
            "actions": ", ".join(gettext(f"action.{a}") for a in agent.allowed_actions),
            "delivery": gettext(f"delivery.{agent.delivery_mode.value}"),
            "hours": format_hours(agent.working_hours), "handoff": agent.handoff_rules or "—"}


async def card_getter(dialog_manager: DialogManager, agents: AgentAdmin, org, operator, **_: Any) -> dict:
    agent = await agents.get(org.id, operator, dialog_manager.dialog_data["agent_id"])
    can_edit = can(operator.role, Permission.MANAGE_AGENTS)
    approval = agent.reply_mode == ReplyMode.APPROVAL
    rule = gettext("approval.rule_send" if agent.approval_timeout_action == ApprovalTimeoutAction.SEND
                   else "approval.rule_handoff")
    return {**await describe(dialog_manager, agent), "can_edit": can_edit,
            "enabled": can_edit and agent.enabled, "disabled": can_edit and not agent.enabled,
            "reply_mode": gettext("agents.mode_approval" if approval else "agents.mode_automatic"),
            "timeout_rule": rule, "minutes": agent.approval_timeout_s // 60, "approval": approval,
            "to_approval": can_edit and not approval, "to_automatic": can_edit and approval,
            "can_rule": can_edit and approval}


@guarded
async def toggle_reply_mode(callback: CallbackQuery, widget: Any, manager: DialogManager) -> None:
    org_id, operator = actor(manager)
    admin: AgentAdmin = manager.middleware_data["agents"]
    agent = await admin.get(org_id, operator, manager.dialog_data["agent_id"])
    mode = ReplyMode.AUTOMATIC if agent.reply_mode == ReplyMode.APPROVAL else ReplyMode.APPROVAL
    await admin.set_reply_mode(org_id, operator, agent.id, mode.value)


@guarded
async def toggle_timeout_rule(callback: CallbackQuery, widget: Any, manager: DialogManager) -> None:
    org_id, operator = actor(manager)
    admin: AgentAdmin = manager.middleware_data["agents"]
    agent = await admin.get(org_id, operator, manager.dialog_data["agent_id"])
    rule = ApprovalTimeoutAction.HANDOFF if agent.approval_timeout_action == ApprovalTimeoutAction.SEND \
        else ApprovalTimeoutAction.SEND
    await admin.set_reply_mode(org_id, operator, agent.id, agent.reply_mode.value, rule.value)


@guarded
async def toggle(callback: CallbackQuery, widget: Any, manager: DialogManager) -> None:
    org_id, operator = actor(manager)
    admin: AgentAdmin = manager.middleware_data["agents"]
    agent = await admin.get(org_id, operator, manager.dialog_data["agent_id"])
    await admin.set_enabled(org_id, operator, agent.id, not agent.enabled)


@guarded
async def delete(callback: CallbackQuery, widget: Any, manager: DialogManager) -> None:
    org_id, operator = actor(manager)
    agent = await manager.middleware_data["agents"].delete(org_id, operator, manager.dialog_data.pop("agent_id"))
    await callback.answer(gettext("agents.deleted").format(name=agent.name))
    await manager.switch_to(Agents.list)


async def fields_getter(**_: Any) -> dict:
    return {"fields": [{"id": f, "label": gettext(f"field.{f}")} for f in EDITABLE]}


@guarded
async def edit_field(callback: CallbackQuery, widget: Any, manager: DialogManager, field: str) -> None:
    org_id, operator = actor(manager)
    agent_id = manager.dialog_data["agent_id"]
    await manager.middleware_data["agents"].get(org_id, operator, agent_id)
    await manager.start(FIELD_STATES[field], data={"agent_id": agent_id, "field": field})


async def on_result(start_data: Data, result: Any, manager: DialogManager) -> None:
    if isinstance(result, dict) and result.get("agent_id"):
        manager.dialog_data["agent_id"] = result["agent_id"]
        await manager.switch_to(Agents.card)


def agents_dialog() -> Dialog:
    return Dialog(
        Window(
            Err(), T("agents.title"),
            paged("agents", "ag_sel", open_agent),
            Start(T("agents.new"), id="ag_new", state=AgentWizard.name, when="can_edit",
                  on_click=needs(Permission.MANAGE_AGENTS)),
            nav(first=True),
            state=Agents.list, getter=list_getter,
        ),
        Window(
            Err(), T("agents.card_head"), T("agents.card_body"), T("agents.reply_mode_line"),
            T("agents.approval_rule_line", when="approval"),
            SwitchTo(T("agents.edit"), id="ag_edit", state=Agents.edit, when="can_edit",
                     on_click=needs(Permission.MANAGE_AGENTS)),
            Button(T("agents.disable"), id="ag_off", on_click=toggle, when="enabled"),
            Button(T("agents.enable"), id="ag_on", on_click=toggle, when="disabled"),
            Button(T("agents.to_approval"), id="ag_appr", on_click=toggle_reply_mode, when="to_approval"),
            Button(T("agents.to_automatic"), id="ag_auto", on_click=toggle_reply_mode, when="to_automatic"),
            Button(T("agents.toggle_rule"), id="ag_rule", on_click=toggle_timeout_rule, when="can_rule"),
            SwitchTo(T("agents.delete"), id="ag_del", state=Agents.delete, when="can_edit",
                     on_click=needs(Permission.MANAGE_AGENTS)),
            nav_to(Agents.list),
            state=Agents.card, getter=card_getter,
        ),
        Window(
            Err(), T("agents.edit_choose"),
            choice("fields", "ag_field", edit_field),
            nav_to(Agents.card),
            state=Agents.edit, getter=[card_getter, fields_getter],
        ),
        Window(
            Err(), T("agents.delete_confirm"),
            Button(T("agents.delete_yes"), id="ag_del_yes", on_click=delete),
            nav_to(Agents.card),
            state=Agents.delete, getter=card_getter,
        ),
        getter=common_getter,
        on_process_result=on_result,
    )
