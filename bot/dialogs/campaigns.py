"""/campaigns: pick an agent and a stage, write the message (placeholders such as {first_name|there}),
preview it on two real leads with the count, start; then pause, resume, and watch one progress
message until the final report (sent, skipped with why, failed). The campaign engine is core's
(core/campaigns); the sends run in a worker (task campaigns.run)."""

from __future__ import annotations

from typing import Any

from aiogram.types import CallbackQuery, ContentType, Message
from aiogram.utils.i18n import I18n, gettext
from aiogram_dialog import Dialog, DialogManager, ShowMode, Window
from aiogram_dialog.widgets.input import MessageInput
from aiogram_dialog.widgets.kbd import Button, SwitchTo

from bot.dialogs.states import Campaigns
from bot.dialogs.widgets import Err, T, actor, common_getter, guarded, nav, nav_to, paged
from bot.i18n import _
from core.errors import InvalidInput, NotFound
from core.models.campaign import ACTIVE, CampaignStatus

MAX_TEMPLATE = 2000


class CampaignRefused(InvalidInput):
    code = "campaign_refused"


async def _service(manager: DialogManager):
    return await manager.middleware_data["services"].campaigns()


async def list_getter(dialog_manager: DialogManager, org, **_kw: Any) -> dict:
    found = await (await _service(dialog_manager)).list(org.id, limit=20)
    icon = {"running": "▶️", "draft": "▶️", "paused": "⏸", "done": "✅", "cancelled": "✖️", "failed": "❌"}
    return {"campaigns": [{"id": c.id, "label": f"{icon.get(c.status.value, '•')} {c.stage_name} · {c.agent_name} · "
                           f"{c.sent}/{c.total}"} for c in found], "count": len(found)}


async def agents_getter(dialog_manager: DialogManager, agents, org, operator, **_kw: Any) -> dict:
    return {"agents": [{"id": a.id, "label": a.name} for a in await agents.list(org.id, operator)]}


@guarded
async def pick_agent(callback: CallbackQuery, widget: Any, manager: DialogManager, agent_id: str) -> None:
    org_id, operator = actor(manager)
    agent = await manager.middleware_data["agents"].get(org_id, operator, agent_id)  # NotFound for another org's
    manager.dialog_data.update(agent_id=agent.id, agent_name=agent.name)
    await manager.switch_to(Campaigns.stage)


async def stages_getter(dialog_manager: DialogManager, services, org, **_kw: Any) -> dict:
    stages = []
    for p in await services.storage.kommo_catalog.pipelines(org.id):
        stages += [{"id": f"{p.pipeline_id}.{s.id}", "label": f"{p.name}: {s.name}"} for s in p.statuses if not s.gone]
    return {"stages": stages, "no_stages": not stages}


@guarded
async def pick_stage(callback: CallbackQuery, widget: Any, manager: DialogManager, item_id: str) -> None:
    org_id, _operator = actor(manager)
    try:
        pipeline_id, stage_id = (int(x) for x in item_id.split(".", 1))
    except ValueError:
        raise InvalidInput("not a stage") from None
    pipeline = await manager.middleware_data["services"].storage.kommo_catalog.pipeline(org_id, pipeline_id)
    stage = pipeline.stage(stage_id) if pipeline else None
    if stage is None or stage.gone:
        raise NotFound("stage not found", stage_id=stage_id)
    manager.dialog_data.update(pipeline_id=pipeline_id, stage_id=stage_id, stage_name=f"{pipeline.name}: {stage.name}")
    await manager.switch_to(Campaigns.text)


async def draft_getter(dialog_manager: DialogManager, **_kw: Any) -> dict:
    d = dialog_manager.dialog_data
    samples = "\n\n".join(_("campaigns.sample", lead=name, text=text) for name, text in d.get("samples", []))
    return {"agent_name": d.get("agent_name", ""), "stage_name": d.get("stage_name", ""),
            "template": d.get("template", ""), "total": d.get("total", 0),
            "samples": samples or _("campaigns.no_leads"), "can_start": d.get("total", 0) > 0}


@guarded
async def on_text(message: Message, widget: Any, manager: DialogManager) -> None:
    org_id, _operator = actor(manager)
    text = (message.text or "").strip()
    if not text:
        raise InvalidInput("the message is empty")
    if len(text) > MAX_TEMPLATE:
        raise InvalidInput("too long", limit=MAX_TEMPLATE)
    d = manager.dialog_data
    try:
        total, samples = await (await _service(manager)).preview(org_id, pipeline_id=d["pipeline_id"],
                                                                 stage_id=d["stage_id"], template=text)
    except InvalidInput as exc:
        raise CampaignRefused(str(exc), reason=str(exc)) from exc
    d.update(template=text, total=total, samples=samples)
    manager.show_mode = ShowMode.SEND
    await manager.switch_to(Campaigns.preview)


def _watch(manager: DialogManager, bot, chat_id: int, message_id: int, org_id: str, campaign_id: str) -> None:
    i18n = I18n.get_current()
    manager.middleware_data["progress"].watch_campaign(bot, chat_id, message_id, org_id, campaign_id, i18n,
                                                       i18n.current_locale)


@guarded
async def start(callback: CallbackQuery, widget: Any, manager: DialogManager) -> None:
    org_id, operator = actor(manager)
    d, services = manager.dialog_data, manager.middleware_data["services"]
    try:
        campaign = await (await _service(manager)).start(
            org_id, agent=d["agent_id"], pipeline=str(d["pipeline_id"]), stage=str(d["stage_id"]),
            template=d["template"], started_by=f"tg:{operator.name or callback.from_user.id}")
    except InvalidInput as exc:
        raise CampaignRefused(str(exc), reason=str(exc)) from exc
    await services.queue.run_campaign(org_id, campaign.id)
    d["campaign_id"] = campaign.id
    shown = await callback.message.answer(_("campaigns.progress_starting", stage=campaign.stage_name))
    _watch(manager, callback.bot, shown.chat.id, shown.message_id, org_id, campaign.id)
    await manager.switch_to(Campaigns.card)


@guarded
async def open_campaign(callback: CallbackQuery, widget: Any, manager: DialogManager, campaign_id: str) -> None:
    org_id, _operator = actor(manager)
    await (await _service(manager)).get(org_id, campaign_id)  # NotFound for another org's id
    manager.dialog_data["campaign_id"] = campaign_id
    await manager.switch_to(Campaigns.card)


async def card_getter(dialog_manager: DialogManager, org, **_kw: Any) -> dict:
    campaign = await (await _service(dialog_manager)).get(org.id, dialog_manager.dialog_data["campaign_id"])
    return {"stage_name": campaign.stage_name, "agent_name": campaign.agent_name,
            "status": gettext(f"campaigns.status_{campaign.status.value}"), "sent": campaign.sent,
            "skipped": campaign.skipped, "failed": campaign.failed, "total": campaign.total,
            "can_pause": campaign.status in ACTIVE, "can_resume": campaign.status == CampaignStatus.PAUSED}


@guarded
async def pause(callback: CallbackQuery, widget: Any, manager: DialogManager) -> None:
    org_id, operator = actor(manager)
    await (await _service(manager)).pause(org_id, manager.dialog_data["campaign_id"],
                                          by=operator.name or str(callback.from_user.id))
    await callback.answer(_("campaigns.paused"))


@guarded
async def resume(callback: CallbackQuery, widget: Any, manager: DialogManager) -> None:
    org_id, _operator = actor(manager)
    campaign_id = manager.dialog_data["campaign_id"]
    service = await _service(manager)
    try:
        await service.resume(org_id, campaign_id)
    except InvalidInput as exc:
        raise CampaignRefused(str(exc), reason=str(exc)) from exc
    await manager.middleware_data["services"].queue.run_campaign(org_id, campaign_id)
    await callback.answer(_("campaigns.resumed"))
    if not manager.middleware_data["progress"].watching(campaign_id):
        shown = await callback.message.answer(_("campaigns.progress_starting", stage=""))
        _watch(manager, callback.bot, shown.chat.id, shown.message_id, org_id, campaign_id)


def campaigns_dialog() -> Dialog:
    return Dialog(
        Window(
            Err(), T("campaigns.title"),
            paged("campaigns", "cm_open", open_campaign),
            SwitchTo(T("campaigns.new"), id="cm_new", state=Campaigns.agent),
            nav(first=True),
            state=Campaigns.list, getter=list_getter,
        ),
        Window(
            Err(), T("campaigns.pick_agent"),
            paged("agents", "cm_agent", pick_agent),
            nav_to(Campaigns.list),
            state=Campaigns.agent, getter=agents_getter,
        ),
        Window(
            Err(), T("campaigns.pick_stage"), T("testchat.no_synced_stages", when="no_stages"),
            paged("stages", "cm_stage", pick_stage),
            nav_to(Campaigns.agent),
            state=Campaigns.stage, getter=stages_getter,
        ),
        Window(
            Err(), T("campaigns.write"),
            MessageInput(on_text, content_types=[ContentType.TEXT]),
            nav_to(Campaigns.stage),
            state=Campaigns.text, getter=draft_getter,
        ),
        Window(
            Err(), T("campaigns.preview"),
            Button(T("campaigns.start"), id="cm_start", on_click=start, when="can_start"),
            SwitchTo(T("campaigns.rewrite"), id="cm_rewrite", state=Campaigns.text),
            nav_to(Campaigns.text),
            state=Campaigns.preview, getter=draft_getter,
        ),
        Window(
            Err(), T("campaigns.card"),
            Button(T("campaigns.pause"), id="cm_pause", on_click=pause, when="can_pause"),
            Button(T("campaigns.resume"), id="cm_resume", on_click=resume, when="can_resume"),
            nav_to(Campaigns.list),
            state=Campaigns.card, getter=card_getter,
        ),
        getter=common_getter,
    )
