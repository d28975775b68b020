"""The agent wizard: name -> persona -> instructions (message or .txt) -> language -> model ->
Kommo pipeline and stages -> actions and writable lead fields -> delivery -> working hours ->
handoff rules -> confirm. Each answer is checked by core as it is given; the draft lives in
the dialog's data in Redis, so a restart resumes it. Started with `{"agent_id", "field"}` it
edits that one field of an existing agent and returns to its card."""

from __future__ import annotations

from typing import Any

from aiogram.types import CallbackQuery, ContentType, Message
from aiogram.utils.i18n import gettext
from aiogram_dialog import Dialog, DialogManager, Window
from aiogram_dialog.widgets.input import MessageInput, TextInput
from aiogram_dialog.widgets.kbd import Button, Cancel, Column, Multiselect, Row, ScrollingGroup, SwitchTo
from aiogram_dialog.widgets.text import Format

from bot.dialogs.agents import describe
from bot.dialogs.states import AgentWizard as W
from bot.dialogs.widgets import Err, T, actor, choice, common_getter, guarded, paged, to_main_menu
from core.agents.errors import AgentFieldInvalid
from core.agents.service import AgentAdmin
from core.models.agent import Agent, AgentAction, DeliveryMode

MAX_TXT_BYTES = 100_000
OPTIONAL_ACTIONS = (AgentAction.MOVE_LEAD_STAGE, AgentAction.CREATE_TASK, AgentAction.UPDATE_LEAD_FIELD)
HOURS_PRESETS = ("24/7", "1-5 09:00-18:00", "1-6 09:00-20:00")
LANGUAGE_CHOICES = ("mirror", "ru", "en", "es", "pt")


def editing(manager: DialogManager) -> str | None:
    start = manager.start_data if isinstance(manager.start_data, dict) else {}
    return start.get("agent_id")


async def advance(manager: DialogManager, field: str, value: Any, next_state) -> None:
    """Check the answer with core; save it (editing) or keep it in the draft and go on."""
    org_id, operator = actor(manager)
    admin: AgentAdmin = manager.middleware_data["agents"]
    agent_id = editing(manager)
    if agent_id:
        await admin.update(org_id, operator, agent_id, field, value)
        await manager.done({"agent_id": agent_id})
        return
    await admin.check(org_id, field, value)
    manager.dialog_data.setdefault("draft", {})[field] = value
    await manager.switch_to(next_state)


def text_step(field: str, next_state):
    @guarded
    async def on_text(message: Message, widget: Any, manager: DialogManager, value: str) -> None:
        await advance(manager, field, value, next_state)
    return on_text


@guarded
async def on_instructions_file(message: Message, widget: Any, manager: DialogManager) -> None:
    doc = message.document
    if doc is None or not (doc.file_name or "").lower().endswith((".txt", ".md")):
        raise AgentFieldInvalid("file_not_text", "send the instructions as text or a .txt file")
    if (doc.file_size or 0) > MAX_TXT_BYTES:
        raise AgentFieldInvalid("file_too_large", "the file is too large", limit=MAX_TXT_BYTES // 1000)
    buffer = await message.bot.download(doc)
    raw = buffer.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1251", errors="replace")
    await advance(manager, "instructions", text, W.language)


def wizard_nav(back_state) -> Row:
    """Back: the previous step while creating, the agent's card while editing; Cancel: the menu."""
    back = SwitchTo(T("nav.back"), id="nav_back", state=back_state, when="creating") if back_state else \
        Cancel(T("nav.back"), id="nav_back_first", when="creating")
    return Row(back, Cancel(T("nav.back"), id="nav_back_edit", when="editing"),
               Button(T("nav.cancel"), id="nav_cancel", on_click=to_main_menu))


async def wizard_getter(dialog_manager: DialogManager, services, org, **_: Any) -> dict[str, Any]:
    draft = dialog_manager.dialog_data.get("draft", {})
    pid = dialog_manager.dialog_data.get("pipeline_id")
    catalog = services.storage.kommo_catalog
    pipelines = await catalog.pipelines(org.id)
    pipeline = next((p for p in pipelines if p.pipeline_id == pid), None)
    fields = [f for f in await catalog.fields(org.id, "leads") if f.type in ("text", "textarea", "numeric", "url",
                                                                            "select", "checkbox", "date")]
    return {
        "creating": not editing(dialog_manager), "editing": bool(editing(dialog_manager)),
        "draft_name": draft.get("name", ""),
        "default_model": services.settings.llm.model,
        "pipelines": [{"id": str(p.pipeline_id), "label": p.name} for p in pipelines if not p.is_archive],
        "has_pipelines": bool(pipelines), "no_pipelines": not pipelines,
        "pipeline_name": pipeline.name if pipeline else "",
        "stages": [{"id": str(s.id), "label": s.name} for s in (pipeline.statuses if pipeline else [])
                   if not s.gone and s.id not in (142, 143)],
        "actions": [{"id": a.value, "label": gettext(f"action.{a.value}")} for a in OPTIONAL_ACTIONS],
        "lead_fields": [{"id": str(f.field_id), "label": f.name} for f in fields],
        "modes": [{"id": m.value, "label": gettext(f"delivery.{m.value}")} for m in DeliveryMode],
        "languages": [{"id": c, "label": gettext(f"language.{c}")} for c in LANGUAGE_CHOICES],
        "presets": [{"id": str(i), "label": p} for i, p in enumerate(HOURS_PRESETS)],
    }


@guarded
async def on_language(callback: CallbackQuery, widget: Any, manager: DialogManager, choice: str) -> None:
    org = manager.middleware_data["org"]
    value = ["mirror", org.language if org.language in ("ru", "en", "es", "pt") else "en"] if choice == "mirror" \
        else ["fixed", choice]
    await advance(manager, "language", value, W.model)


@guarded
async def on_default_model(callback: CallbackQuery, widget: Any, manager: DialogManager) -> None:
    await advance(manager, "model", None, W.pipeline)


@guarded
async def on_pipeline(callback: CallbackQuery, widget: Any, manager: DialogManager, pipeline_id: str) -> None:
    manager.dialog_data["pipeline_id"] = int(pipeline_id)
    await manager.find("stages").reset_checked()
    await manager.switch_to(W.stages)


@guarded
async def on_all_pipelines(callback: CallbackQuery, widget: Any, manager: DialogManager) -> None:
    await advance(manager, "scope", [None, []], W.actions)


@guarded
async def on_stages_done(callback: CallbackQuery, widget: Any, manager: DialogManager) -> None:
    stage_ids = [int(s) for s in manager.find("stages").get_checked()]
    await advance(manager, "scope", [manager.dialog_data["pipeline_id"], stage_ids], W.actions)


@guarded
async def on_actions_done(callback: CallbackQuery, widget: Any, manager: DialogManager) -> None:
    chosen = list(manager.find("actions").get_checked())
    if AgentAction.UPDATE_LEAD_FIELD.value in chosen:
        manager.dialog_data["chosen_actions"] = chosen
        await manager.switch_to(W.fields)
        return
    await advance(manager, "actions", [chosen, []], W.delivery)


@guarded
async def on_fields_done(callback: CallbackQuery, widget: Any, manager: DialogManager) -> None:
    field_ids = [int(f) for f in manager.find("lead_fields").get_checked()]
    await advance(manager, "actions", [manager.dialog_data.get("chosen_actions", []), field_ids], W.delivery)


@guarded
async def on_mode(callback: CallbackQuery, widget: Any, manager: DialogManager, mode: str) -> None:
    await advance(manager, "delivery_mode", mode, W.hours)


@guarded
async def on_preset(callback: CallbackQuery, widget: Any, manager: DialogManager, index: str) -> None:
    await advance(manager, "working_hours", HOURS_PRESETS[int(index)], W.handoff)


@guarded
async def on_skip_handoff(callback: CallbackQuery, widget: Any, manager: DialogManager) -> None:
    await advance(manager, "handoff_rules", "", W.confirm)


async def confirm_getter(dialog_manager: DialogManager, services, org, **_: Any) -> dict[str, Any]:
    draft = dict(dialog_manager.dialog_data.get("draft", {}))
    admin: AgentAdmin = dialog_manager.middleware_data["agents"]
    fields: dict[str, Any] = {}
    for key, value in draft.items():
        try:
            fields |= await admin.check(org.id, key, value)
        except Exception:  # noqa: BLE001 - shown as entered; create() checks again and explains
            pass
    fields.setdefault("name", draft.get("name", ""))
    preview = Agent(_id="preview", org_id=org.id, **fields)
    return await describe(dialog_manager, preview)


@guarded
async def on_create(callback: CallbackQuery, widget: Any, manager: DialogManager) -> None:
    org_id, operator = actor(manager)
    agent = await manager.middleware_data["agents"].create(org_id, operator, manager.dialog_data.get("draft", {}))
    await callback.answer(gettext("wizard.created").format(name=agent.name))
    await manager.done({"agent_id": agent.id})


def checks(items: str, widget_id: str) -> Multiselect:
    return Multiselect(Format("☑️ {item[label]}"), Format("⬜ {item[label]}"), id=widget_id,
                       item_id_getter=lambda i: i["id"], items=items)


def agent_wizard() -> Dialog:
    return Dialog(
        Window(Err(), T("wizard.name"), TextInput(id="w_name", on_success=text_step("name", W.persona)),
               wizard_nav(None), state=W.name),
        Window(Err(), T("wizard.persona"), TextInput(id="w_persona", on_success=text_step("persona", W.instructions)),
               wizard_nav(W.name), state=W.persona),
        Window(Err(), T("wizard.instructions"),
               TextInput(id="w_instr", on_success=text_step("instructions", W.language)),
               MessageInput(on_instructions_file, content_types=[ContentType.DOCUMENT]),
               wizard_nav(W.persona), state=W.instructions),
        Window(Err(), T("wizard.language"), Column(choice("languages", "w_lang", on_language)),
               wizard_nav(W.instructions), state=W.language),
        Window(Err(), T("wizard.model"), Button(T("wizard.model_default"), id="w_model_def", on_click=on_default_model),
               TextInput(id="w_model", on_success=text_step("model", W.pipeline)),
               wizard_nav(W.language), state=W.model),
        Window(Err(), T("wizard.pipeline"), T("wizard.no_pipelines", when="no_pipelines"),
               paged("pipelines", "w_pipe", on_pipeline),
               Button(T("wizard.all_pipelines"), id="w_pipe_all", on_click=on_all_pipelines),
               wizard_nav(W.model), state=W.pipeline),
        Window(Err(), T("wizard.stages"),
               ScrollingGroup(checks("stages", "stages"), id="w_stage_scroll", width=1, height=8,
                              hide_on_single_page=True),
               Button(T("wizard.done"), id="w_stages_done", on_click=on_stages_done),
               wizard_nav(W.pipeline), state=W.stages),
        Window(Err(), T("wizard.actions"), Column(checks("actions", "actions")),
               Button(T("wizard.done"), id="w_actions_done", on_click=on_actions_done),
               wizard_nav(W.pipeline), state=W.actions),
        Window(Err(), T("wizard.fields"),
               ScrollingGroup(checks("lead_fields", "lead_fields"), id="w_fields_scroll", width=1, height=8,
                              hide_on_single_page=True),
               Button(T("wizard.done"), id="w_fields_done", on_click=on_fields_done),
               wizard_nav(W.actions), state=W.fields),
        Window(Err(), T("wizard.delivery"), Column(choice("modes", "w_mode", on_mode)),
               wizard_nav(W.actions), state=W.delivery),
        Window(Err(), T("wizard.hours"), Column(choice("presets", "w_hours", on_preset)),
               TextInput(id="w_hours_text", on_success=text_step("working_hours", W.handoff)),
               wizard_nav(W.delivery), state=W.hours),
        Window(Err(), T("wizard.handoff"), Button(T("wizard.skip"), id="w_handoff_skip", on_click=on_skip_handoff),
               TextInput(id="w_handoff", on_success=text_step("handoff_rules", W.confirm)),
               wizard_nav(W.hours), state=W.handoff),
        Window(Err(), T("wizard.confirm"), T("agents.card_body"),
               Button(T("wizard.create"), id="w_create", on_click=on_create),
               wizard_nav(W.handoff), state=W.confirm, getter=confirm_getter),
        getter=[common_getter, wizard_getter],
    )
