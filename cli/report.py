"""`kommo-agent report usage|billing`: render a report notebook (papermill, then HTML without
code) into a folder with the executed notebook, headline.json and, for billing, the CSV of the
invoice lines. Prints the folder; a failure prints the failing cell and leaves nothing behind."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from core.config import load_settings
from core.errors import KommoAgentError
from core.reports.billing import check_month
from core.reports.render import render_report
from core.reports.usage import Period
from core.services import effective_mongo_url


def _last_month() -> tuple[str, str]:
    first = datetime.now(UTC).date().replace(day=1)
    last = first - timedelta(days=1)
    return last.replace(day=1).isoformat(), last.isoformat()


def _render(kind: str, params: dict, out: Path | None, as_json: bool) -> None:
    settings = load_settings()
    params = {**params, "mongo_url": effective_mongo_url(settings), "database": settings.mongo.database}
    try:
        report = render_report(kind, params, settings.reports, out or settings.reports.out_dir
                               or settings.data_dir / "reports")
    except KommoAgentError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps({"folder": str(report.folder), "headline": report.headline}, ensure_ascii=False))
        return
    click.echo(f"{kind} report: {report.html}")
    if report.csv:
        click.echo(f"invoice lines: {report.csv}")


@click.group("report")
def report() -> None:
    """Usage and billing reports (papermill notebooks rendered to HTML)."""


@report.command("usage")
@click.option("--org", "org_id", default=None, help="Organisation id (default: all)")
@click.option("--from", "start", default=None, help="First day YYYY-MM-DD (default: last month's first)")
@click.option("--to", "end", default=None, help="Last day YYYY-MM-DD, inclusive (default: last month's last)")
@click.option("--currency", default="USD", show_default=True)
@click.option("--usd-rate", default=1.0, show_default=True, type=float, help="Units of the currency per USD")
@click.option("--reprice-table", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Re-price the period with this price table CSV")
@click.option("--reprice-model", default=None, help="Re-price every call as this model")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--json", "as_json", is_flag=True)
def usage(org_id, start, end, currency, usd_rate, reprice_table, reprice_model, out, as_json) -> None:
    """Replies, tokens, cost, outcomes and drift of a period."""
    default_start, default_end = _last_month()
    try:
        period = Period(start or default_start, end or default_end, org_id)
    except KommoAgentError as exc:
        raise click.BadParameter(str(exc)) from None
    _render("usage", {"org_id": org_id, "start": period.start, "end": period.end, "currency": currency,
                      "usd_rate": usd_rate, "reprice_table": str(Path(reprice_table).resolve()) if reprice_table
                      else None, "reprice_model": reprice_model}, out, as_json)


@report.command("billing")
@click.option("--month", default=None, help="YYYY-MM (default: last month)")
@click.option("--org", "org_id", default=None, help="Organisation id (default: all)")
@click.option("--currency", default="USD", show_default=True)
@click.option("--usd-rate", default=1.0, show_default=True, type=float)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--json", "as_json", is_flag=True)
def billing(month, org_id, currency, usd_rate, out, as_json) -> None:
    """Invoice lines per organisation for a month, with the CSV."""
    try:
        month = check_month(month or _last_month()[0][:7])
    except KommoAgentError as exc:
        raise click.BadParameter(str(exc)) from None
    _render("billing", {"month": month, "org_id": org_id, "currency": currency, "usd_rate": usd_rate}, out, as_json)
