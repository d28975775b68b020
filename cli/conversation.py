"""`kommo-agent conversation ...`: see conversations and give them back to the bot or pause it,
until the Telegram console offers the same."""

from __future__ import annotations

import click

from cli.common import run_with_services
from cli.output import emit_json, json_option, pick
from core.conversations import handoff
from core.conversations.context import EngineDeps
from core.errors import NotFound
from core.models.conversation import ConversationState
from core.orgs import require_org


def _deps(services):
    # handoff.resume/pause only touch storage: a minimal EngineDeps avoids building the agent
    # runtime (embedding model, vector store) for a one-line state change.
    return EngineDeps(storage=services.storage, redis=services.redis, queue=None, runtime=None,  # type: ignore[arg-type]
                      kommo=None)  # type: ignore[arg-type]


@click.group()
def conversation() -> None:
    """Conversations of the agents with customers."""


@conversation.command("list")
@click.option("--org", "org_id", required=True)
@click.option("--state", type=click.Choice([s.value for s in ConversationState]), default=None)
@click.option("--limit", default=50, show_default=True)
@json_option
def list_(org_id: str, state: str | None, limit: int, as_json: bool) -> None:
    """Conversations, most recent customer message first."""
    async def job(services):
        await require_org(services.storage, org_id)
        query = {"state": state} if state else {}
        return await services.storage.conversations.list(org_id, query, sort=[("last_customer_at", -1)], limit=limit)

    items = run_with_services(job)
    if as_json:
        emit_json([pick(c, "id", "state", "state_reason", "agent_id", "lead_id", "origin", "last_customer_at",
                        "replies_count") for c in items])
        return
    if not items:
        click.echo("no conversations")
    for c in items:
        last = f"{c.last_customer_at:%Y-%m-%d %H:%M}" if c.last_customer_at else "-"
        reason = f"\t{c.state_reason}" if c.state_reason else ""
        click.echo(f"{c.id}\t{c.state.value}\tlead {c.lead_id or '-'}\t{c.origin or '-'}\tlast customer {last}"
                   f"\treplies {c.replies_count}{reason}")


def _set_state(org_id: str, conversation_id: str, action: str) -> None:
    async def job(services):
        existing = await services.storage.conversations.get(org_id, conversation_id)
        if existing is None:
            raise NotFound(f"conversation {conversation_id!r} not found in this organisation")
        change = handoff.resume if action == "resume" else handoff.pause
        return await change(_deps(services), org_id, conversation_id)

    updated = run_with_services(job)
    click.echo(f"{updated.id}: {updated.state.value}")


@conversation.command()
@click.option("--org", "org_id", required=True)
@click.argument("conversation_id")
def resume(org_id: str, conversation_id: str) -> None:
    """Give a handed-off or paused conversation back to the bot."""
    _set_state(org_id, conversation_id, "resume")


@conversation.command()
@click.option("--org", "org_id", required=True)
@click.argument("conversation_id")
def pause(org_id: str, conversation_id: str) -> None:
    """Keep the bot quiet in this conversation until it is resumed."""
    _set_state(org_id, conversation_id, "pause")
