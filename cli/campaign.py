"""`kommo-agent campaign ...`: start, follow, cancel and list campaigns (рассылки).

`start` stores the campaign and hands it to a worker (task `campaigns.run`); with `--wait`
it runs it right here, printing a progress line and the final report, so it works without a
worker. Errors are one line and exit 1.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from cli.common import run_with_services
from cli.output import emit_json, json_option, pick
from core.errors import ServiceUnavailable


async def _service(services):
    return await services.campaigns()


async def _enqueue(services, org_id: str, campaign_id: str) -> None:
    """Hand the campaign to a worker (task `campaigns.run`) over this process's broker."""
    try:
        await services.queue.run_campaign(org_id, campaign_id)
    except Exception:  # noqa: BLE001 - kombu/redis raise many kinds; the operator needs one line
        raise ServiceUnavailable(
            f"campaign {campaign_id} is stored but could not be handed to a worker (is `kommo-agent up` "
            f"running?); "
            f"run `kommo-agent campaign resume --org {org_id} {campaign_id} --wait`") from None


def _progress_printer():
    interactive = sys.stdout.isatty()

    def show(campaign, tally: dict[str, int]) -> None:
        done = sum(tally.values())
        line = (f"progress: {done}/{campaign.total} - sent {tally['sent']}, skipped {tally['skipped']}, "
                f"failed {tally['failed']}")
        click.echo(f"\r{line}" if interactive else line, nl=not interactive)

    return show


async def _run_inline(service, org_id: str, campaign_id: str) -> tuple[Any, dict[str, Any]]:
    await service.run_to_end(org_id, campaign_id, progress=_progress_printer())
    if sys.stdout.isatty():
        click.echo("")
    return await service.status(org_id, campaign_id)


def _print_report(campaign, report: dict[str, Any]) -> None:
    click.echo(f"campaign:  {campaign.id} ({campaign.status.value}"
               + (f": {campaign.status_reason}" if campaign.status_reason else "") + ")")
    click.echo(f"stage:     {report['stage']}" + (f", tag {campaign.tag!r}" if campaign.tag else ""))
    click.echo(f"agent:     {campaign.agent_name} via {campaign.delivery_mode.value}"
               + (" (LLM-personalised)" if campaign.personalise else ""))
    click.echo(f"progress:  {campaign.done_count}/{campaign.total} - sent {campaign.sent}, skipped "
               f"{campaign.skipped}, failed {campaign.failed}"
               + (f", personalised {report['personalised']}" if campaign.personalise else ""))
    for title, key in (("skipped", "skipped_leads"), ("failed", "failed_leads")):
        leads = report[key]
        if leads:
            click.echo(f"{title}:")
            for lead in leads:
                name = f" {lead['lead_name']!r}" if lead["lead_name"] else ""
                click.echo(f"  lead {lead['lead_id']}{name}: {lead['reason']}")
            more = getattr(campaign, title) - len(leads)
            if more > 0:
                click.echo(f"  ... and {more} more")


@click.group()
def campaign() -> None:
    """Campaigns: one message to the leads of a pipeline stage."""


@campaign.command()
@click.option("--org", "org_id", required=True, help="Organisation id")
@click.option("--agent", required=True, help="Agent name or id (its delivery mode is used)")
@click.option("--pipeline", required=True, help="Pipeline name or id")
@click.option("--stage", required=True, help="Stage name or id within the pipeline")
@click.option("--tag", default=None, help="Only leads with this tag")
@click.option("--text", default=None, help="The message; placeholders such as {name} or {name|friend}")
@click.option("--template-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Read the message from a UTF-8 file instead")
@click.option("--personalise", is_flag=True, help="Let the LLM rewrite the filled message per lead")
@click.option("--wait", is_flag=True, help="Run it here (no worker needed) and print the report")
def start(org_id: str, agent: str, pipeline: str, stage: str, tag: str | None, text: str | None,
          template_file: Path | None, personalise: bool, wait: bool) -> None:
    """Start a campaign and print its id."""
    if (text is None) == (template_file is None):
        raise click.UsageError("give exactly one of --text or --template-file")
    if template_file is not None:
        try:
            text = template_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise click.ClickException(f"cannot read {template_file}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise click.ClickException(f"{template_file} is not UTF-8 text") from None

    async def job(services):
        service = await _service(services)
        created = await service.start(org_id, agent=agent, pipeline=pipeline, stage=stage, template=text or "",
                                      tag=tag, personalise=personalise)
        click.echo(created.id)
        if not wait:
            await _enqueue(services, org_id, created.id)
            return None
        return await _run_inline(service, org_id, created.id)

    finished = run_with_services(job)
    if finished is not None:
        _print_report(*finished)


@campaign.command()
@click.option("--org", "org_id", required=True)
@click.argument("campaign_id")
def status(org_id: str, campaign_id: str) -> None:
    """Progress and report of a campaign."""

    async def job(services):
        service = await _service(services)
        return await service.status(org_id, campaign_id)

    _print_report(*run_with_services(job))


@campaign.command()
@click.option("--org", "org_id", required=True)
@click.argument("campaign_id")
def cancel(org_id: str, campaign_id: str) -> None:
    """Stop a campaign: no message is sent after the lead in progress."""

    async def job(services):
        service = await _service(services)
        return await service.cancel(org_id, campaign_id)

    done = run_with_services(job)
    click.echo(f"cancelled: {done.id} after {done.sent} sent, {done.skipped} skipped, {done.failed} failed "
               f"of {done.total}")


@campaign.command()
@click.option("--org", "org_id", required=True)
@click.argument("campaign_id")
@click.option("--wait", is_flag=True, help="Run it here (no worker needed) and print the report")
def resume(org_id: str, campaign_id: str, wait: bool) -> None:
    """Continue a paused (or stalled) campaign with the leads not yet done."""

    async def job(services):
        service = await _service(services)
        resumed = await service.resume(org_id, campaign_id)
        if not wait:
            await _enqueue(services, org_id, resumed.id)
            click.echo(f"resumed: {resumed.id}")
            return None
        return await _run_inline(service, org_id, resumed.id)

    finished = run_with_services(job)
    if finished is not None:
        _print_report(*finished)


@campaign.command("list")
@click.option("--org", "org_id", required=True)
@click.option("--limit", default=20, show_default=True)
@json_option
def list_(org_id: str, limit: int, as_json: bool) -> None:
    """Recent campaigns, newest first."""

    async def job(services):
        service = await _service(services)
        return await service.list(org_id, limit)

    items = run_with_services(job)
    if as_json:
        emit_json([{**pick(c, "id", "status", "created_at", "pipeline_name", "stage_name", "total", "sent", "skipped",
                           "failed"), "done": c.done_count} for c in items])
        return
    if not items:
        click.echo("no campaigns")
    for c in items:
        click.echo(f"{c.id}\t{c.status.value}\t{c.created_at:%Y-%m-%d %H:%M}\t{c.pipeline_name} / {c.stage_name}"
                   f"\t{c.done_count}/{c.total} (sent {c.sent}, skipped {c.skipped}, failed {c.failed})")
