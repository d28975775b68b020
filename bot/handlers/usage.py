"""/usage (today, 7 and 30 days with a chart) and /report (usage or billing for a month, rendered
by the report notebooks and sent as files), and the buttons on quota notices (see usage, pause
the agent). Viewers see usage; only owners and admins get billing. Callback data carries no
organisation for /report (the user's active one is used) and a quota button's organisation is
checked against the user's memberships, so forged data reaches nothing."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, date, datetime

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import BufferedInputFile, CallbackQuery, FSInputFile, InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.types import Message as TgMessage

from bot.filters import Can
from bot.i18n import _
from bot.notify import PAUSE_AGENT, SEE_USAGE
from core.agents.service import AgentAdmin
from core.errors import InvalidInput, PermissionDenied
from core.logging import get_logger
from core.models.org import Operator, Organization
from core.reports.charts import daily_usage_png
from core.reports.render import ReportFailed, render_report
from core.reports.summary import UsageSummary, usage_summary
from core.services import CoreServices, effective_mongo_url
from core.team.roles import Permission, can, require
from core.team.service import TeamService

log = get_logger("bot.usage")
REPORT, KINDS = "rp", {"u": "usage", "b": "billing"}
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
RENDER_LOCK_S = 900  # one report at a time per user; longer than any render


def _usd(nano: int | None) -> str:
    return "—" if nano is None else f"{nano / 1e9:.4f}"


def summary_text(org: Organization, summary: UsageSummary) -> str:
    lines = [_("usage.title", org_name=org.name)]
    for name in ("today", "week", "month"):
        w = summary.windows[name]
        lines.append(_("usage.window", label=_("usage." + name), replies=w["replies"], tokens=w["total_tokens"],
                       cost=_usd(w["cost_nano"]), talked=w["leads_talked"], moved=w["leads_moved"],
                       won=w["deals_won"]))
    if summary.agents:
        lines.append(_("usage.per_agent"))
    for row in summary.agents:
        lines.append(_("usage.agent_line", agent=row["agent_id"], replies=row["replies"], handoffs=row["handoffs"],
                       cost=_usd(row["cost_nano"]), per_reply=_usd(row["cost_per_reply_nano"]),
                       per_won=_usd(row["cost_per_deal_won_nano"])))
    return "\n".join(lines)[:4096]


async def send_usage(message: TgMessage, services: CoreServices, org: Organization) -> None:
    summary = await usage_summary(services.storage.db, org.id, datetime.now(UTC).date())
    await message.answer(summary_text(org, summary))
    if not any(row["replies"] or row["cost_nano"] for row in summary.daily):
        await message.answer(_("usage.none"))
        return
    png = await asyncio.to_thread(daily_usage_png, summary.daily, org.name)
    await message.answer_photo(BufferedInputFile(png, "usage.png"), caption=_("usage.chart_caption"))


async def usage_command(message: TgMessage, services: CoreServices, org: Organization) -> None:
    await send_usage(message, services, org)


async def see_usage(query: CallbackQuery, team: TeamService, services: CoreServices) -> None:
    org_id = f"org_{query.data.split(':', 2)[2]}"
    membership = await team.membership(query.from_user.id, org_id)  # NotAMember for a forged org id
    require(membership.operator, Permission.VIEW)
    await query.answer()
    await send_usage(query.message, services, membership.org)


async def pause_agent(query: CallbackQuery, team: TeamService, agents: AgentAdmin) -> None:
    _p, _a, org_hex, agent_id = query.data.split(":", 3)
    membership = await team.membership(query.from_user.id, f"org_{org_hex}")
    agent = await agents.set_enabled(membership.org.id, membership.operator, agent_id, False)  # checks the role
    await query.answer(_("usage.agent_paused", agent=agent.name), show_alert=True)


def _months(today: date, count: int = 6) -> list[str]:
    found, year, month = [], today.year, today.month
    for _i in range(count):
        found.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return found


async def report_command(message: TgMessage, operator: Operator) -> None:
    rows = [[InlineKeyboardButton(text=_("report.kind_usage"), callback_data=f"{REPORT}:k:u")]]
    if can(operator.role, Permission.SEE_BILLING):
        rows.append([InlineKeyboardButton(text=_("report.kind_billing"), callback_data=f"{REPORT}:k:b")])
    await message.answer(_("report.choose_kind"), reply_markup=InlineKeyboardMarkup(inline_keyboard=rows))


def _kind(code: str, operator: Operator | None) -> str:
    kind = KINDS.get(code)
    if kind is None:
        raise InvalidInput("unknown report kind")
    if operator is None:
        raise PermissionDenied("not in an organisation")
    require(operator, Permission.SEE_BILLING if kind == "billing" else Permission.VIEW)
    return kind


async def choose_month(query: CallbackQuery, operator: Operator | None = None) -> None:
    code = query.data.split(":")[2]
    _kind(code, operator)
    months = _months(datetime.now(UTC).date())
    rows = [[InlineKeyboardButton(text=m, callback_data=f"{REPORT}:m:{code}:{m}")] for m in months]
    await query.answer()
    await query.message.edit_text(_("report.choose_month"), reply_markup=InlineKeyboardMarkup(inline_keyboard=rows))


def _params(kind: str, org: Organization, month: str, services: CoreServices) -> dict:
    settings = services.settings
    base = {"org_id": org.id, "currency": "USD", "mongo_url": effective_mongo_url(settings),
            "database": services.storage.db.name}  # the database this process uses
    if kind == "billing":
        return {**base, "month": month}
    year, number = int(month[:4]), int(month[5:])
    last = (date(year + number // 12, number % 12 + 1, 1) - date.resolution).day
    return {**base, "start": f"{month}-01", "end": f"{month}-{last:02d}"}


async def render_chosen(query: CallbackQuery, services: CoreServices, org: Organization | None = None,
                        operator: Operator | None = None) -> None:
    _r, _m, code, month = (query.data.split(":") + ["", ""])[:4]
    kind = _kind(code, operator)
    if not _MONTH.match(month):
        raise InvalidInput("bad month")
    lock = f"report:render:{query.from_user.id}"
    if not await services.redis.set(lock, "1", nx=True, ex=RENDER_LOCK_S):
        await query.answer(_("report.busy"), show_alert=True)
        return
    try:
        await query.answer()
        label = _("report.kind_" + kind)
        await query.message.edit_text(_("report.rendering", kind=label, month=month))
        await query.bot.send_chat_action(query.message.chat.id, "upload_document")
        out = (services.settings.reports.out_dir or services.settings.data_dir / "reports") / "console" / org.id
        try:
            report = await asyncio.to_thread(render_report, kind, _params(kind, org, month, services),
                                             services.settings.reports, out)
        except ReportFailed as exc:
            log.warning("console_report_failed", org_id=org.id, kind=kind, error=str(exc))
            await query.message.edit_text(_("report.failed", kind=label, month=month))
            return
        await query.message.edit_text(_("report.done", kind=label, month=month))
        await query.message.answer_document(FSInputFile(report.html, f"{kind}_{month}.html"),
                                            caption=_("report.done", kind=label, month=month))
        if report.csv is not None:
            await query.message.answer_document(FSInputFile(report.csv, f"invoice_lines_{month}.csv"),
                                                caption=_("report.csv_caption"))
    finally:
        await services.redis.delete(lock)


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.register(usage_command, Command("usage"), F.chat.type == "private", Can(Permission.VIEW))
    router.message.register(report_command, Command("report"), F.chat.type == "private", Can(Permission.VIEW))
    router.callback_query.register(choose_month, F.data.startswith(f"{REPORT}:k:"))
    router.callback_query.register(render_chosen, F.data.startswith(f"{REPORT}:m:"))
    router.callback_query.register(see_usage, F.data.startswith(SEE_USAGE + ":"))
    router.callback_query.register(pause_agent, F.data.startswith(PAUSE_AGENT + ":"))
    return router
