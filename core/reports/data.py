"""The figures of the usage and billing reports, gathered from the read models in one call each.

The notebooks call `usage_report_data` / `billing_report_data` (synchronous, so a cell is one
plain call in Jupyter as under papermill) and the bot's /usage calls the async ones; both get
the same numbers. Costs stay integer nano-dollars here; the notebooks convert for display.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TypeVar

from pymongo.asynchronous.database import AsyncDatabase

from core.config import Settings
from core.reports.billing import BillingReadModel, check_month
from core.reports.outcomes import OutcomesReadModel
from core.reports.usage import Period, UsageReadModel, anomalies
from core.storage.mongo import create_mongo_client
from core.usage.plans import SHIPPED_PLANS, PlanCatalog
from core.usage.pricing import SHIPPED_TABLE, PriceTable

T = TypeVar("T")


def days_of(period: Period) -> list[str]:
    first, last = date.fromisoformat(period.start), date.fromisoformat(period.end)
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


async def usage_data(db: AsyncDatabase, period: Period, *, prices: PriceTable, drift_threshold: float = 0.05,
                     reprice_table: PriceTable | None = None, reprice_model: str | None = None) -> dict[str, Any]:
    usage, outcomes = UsageReadModel(db), OutcomesReadModel(db)
    totals = await usage.totals(period)
    daily = await usage.by(period, "day")
    zero = dict.fromkeys(totals, 0)
    series = [{"day": d, **daily.get(d, zero)} for d in days_of(period)]
    per_agent = await outcomes.per_agent(period)
    drift = await usage.drift(period, drift_threshold)
    result: dict[str, Any] = {
        "org_id": period.org_id, "start": period.start, "end": period.end, "totals": totals, "daily": series,
        "per_agent": per_agent, "per_model": await usage.by(period, "model"),
        "per_purpose": await usage.by(period, "purpose"), "per_org": await usage.by(period, "org_id"),
        "busiest_conversations": await usage.busiest_conversations(period), "drift": drift,
        "anomalies": anomalies([(row["day"], row["cost_nano"]) for row in series]),
        "outcomes": {k: sum(r[k] for r in per_agent) for k in ("leads_talked", "leads_moved", "deals_won")},
    }
    if reprice_table is not None or reprice_model:
        result["repriced"] = await usage.reprice(period, reprice_table or prices, reprice_model)
    return result


async def billing_data(db: AsyncDatabase, month: str, org_id: str | None, plans: PlanCatalog) -> dict[str, Any]:
    lines = await BillingReadModel(db, plans).invoice_lines(check_month(month), org_id)
    totals: dict[str, int] = {}
    for line in lines:
        totals[line["org_id"]] = totals.get(line["org_id"], 0) + line["amount_nano"]
    return {"month": month, "org_id": org_id, "lines": lines, "org_totals": totals,
            "total_nano": sum(totals.values())}


def _run(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from sync code, also inside Jupyter (whose own loop is
    running in this thread): in a fresh thread with its own loop."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


async def _with_db(mongo_url: str | None, database: str | None, job: Callable[[AsyncDatabase], Awaitable[T]]) -> T:
    settings = Settings()
    url = mongo_url or settings.mongo.url or f"mongodb://127.0.0.1:{settings.mongo.embedded_port}/"
    client = create_mongo_client(url, settings.mongo)
    try:
        return await job(client[database or settings.mongo.database])
    finally:
        await client.close()


def load_tables(price_table: str | None = None, plans_file: str | None = None) -> tuple[PriceTable, PlanCatalog]:
    usage = Settings().usage
    prices = PriceTable.from_csv(Path(price_table) if price_table else usage.price_table or SHIPPED_TABLE,
                                 default_input_usd_per_1m=usage.default_input_usd_per_1m,
                                 default_output_usd_per_1m=usage.default_output_usd_per_1m)
    plans = PlanCatalog.from_file(Path(plans_file) if plans_file else usage.plans_file or SHIPPED_PLANS)
    return prices, plans


def usage_report_data(org_id: str | None, start: str, end: str, *, mongo_url: str | None = None,
                      database: str | None = None, reprice_table: str | None = None,
                      reprice_model: str | None = None) -> dict[str, Any]:
    prices, _ = load_tables()
    other = load_tables(reprice_table)[0] if reprice_table else None
    period = Period(start, end, org_id or None)
    threshold = Settings().usage.drift_threshold
    return _run(lambda: _with_db(mongo_url, database, lambda db: usage_data(
        db, period, prices=prices, drift_threshold=threshold, reprice_table=other, reprice_model=reprice_model)))


def billing_report_data(month: str, org_id: str | None, *, mongo_url: str | None = None,
                        database: str | None = None) -> dict[str, Any]:
    _, plans = load_tables()
    return _run(lambda: _with_db(mongo_url, database, lambda db: billing_data(db, month, org_id or None, plans)))
