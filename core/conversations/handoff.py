"""Human takeover and resume.

`handed_off`: the bot stays quiet until an operator resumes it or the agent's
`handoff_resume_after_hours` passes. When the bot itself hands off, a task and a note tell the
humans why (journaled, so a retried turn does not create them twice).
"""

from __future__ import annotations

from datetime import timedelta

from core import metrics
from core.conversations.context import EngineDeps
from core.models.agent import Agent
from core.models.conversation import Conversation, ConversationState

HANDOFF_TASK_HOURS = 1

_REASONS = {
    "ru": {"manager_replied": "менеджер ответил в чате", "max_replies": "достигнут лимит ответов бота",
           "llm_failed": "ИИ-агент не смог ответить (ошибка провайдера)", "nothing_relevant":
           "в базе знаний нет ответа на вопрос клиента", "non_text": "клиент прислал не текст (голос/файл)",
           "delivery_failed": "не удалось отправить ответ клиенту", "quota": "исчерпан лимит тарифа"},
    "en": {"manager_replied": "a manager replied in the chat", "max_replies": "the bot's reply limit was reached",
           "llm_failed": "the AI agent could not answer (provider error)", "nothing_relevant":
           "the knowledge base has no answer to the customer's question", "non_text":
           "the customer sent a non-text message (voice/file)", "delivery_failed":
           "the reply could not be delivered to the customer", "quota": "the plan's limit is used up"},
}


HANDOFF_REASONS = frozenset(_REASONS["en"])


def describe_reason(reason: str, language: str) -> str:
    table = _REASONS.get(language, _REASONS["en"])
    return table.get(reason, reason)


async def hand_off(deps: EngineDeps, org_id: str, conv: Conversation, *, reason: str,
                   notify_humans: bool = True, agent: Agent | None = None, turn_id: str | None = None,
                   draft: str = "", language: str = "ru") -> None:
    """Mark the conversation handed off; when the bot decided it, leave a task and a note."""
    metrics.HANDOFFS.labels(metrics.bounded(reason, HANDOFF_REASONS)).inc()
    await deps.storage.conversations.update(org_id, conv.id, {
        "state": ConversationState.HANDED_OFF, "state_reason": reason, "handed_off_at": deps.clock()})
    if not (notify_humans and conv.lead_id):
        return
    key = turn_id or f"{conv.id}:{deps.clock().isoformat()}"
    # The console shows it to the org's operators with "I take it" / "Give back" buttons.
    await deps.storage.notifications.publish(org_id, "handoff", dedupe_key=f"{key}:handoff", reason=reason,
                                             conversation_id=conv.id, lead_id=conv.lead_id,
                                             agent_id=agent.id if agent else None)
    why = describe_reason(reason, language)
    title = "AI-агент передал диалог менеджеру" if language == "ru" else "The AI agent handed the chat to a manager"
    note = f"{title}: {why}."
    if draft:
        label = "Черновик ответа" if language == "ru" else "Draft reply"
        note += f"\n{label}:\n{draft}"
    await deps.kommo.add_note(org_id, lead_id=conv.lead_id, text=note, idempotency_key=f"{key}:handoff-note")
    await deps.kommo.create_task(org_id, lead_id=conv.lead_id, text=f"{title}: {why}",
                                 deadline=deps.clock() + timedelta(hours=HANDOFF_TASK_HOURS),
                                 responsible_user_id=None, idempotency_key=f"{key}:handoff-task")


def resume_due(conv: Conversation, agent: Agent | None, now) -> bool:
    """A handed-off conversation returns to the bot after the agent's configured quiet time."""
    if conv.state != ConversationState.HANDED_OFF or conv.handed_off_at is None or agent is None:
        return False
    hours = agent.handoff_resume_after_hours
    return hours is not None and conv.handed_off_at + timedelta(hours=hours) <= now


async def resume(deps: EngineDeps, org_id: str, conversation_id: str) -> Conversation | None:
    """An operator gives the conversation back to the bot."""
    return await deps.storage.conversations.update(org_id, conversation_id, {
        "state": ConversationState.BOT_ACTIVE, "state_reason": None, "handed_off_at": None})


async def pause(deps: EngineDeps, org_id: str, conversation_id: str) -> Conversation | None:
    return await deps.storage.conversations.update(org_id, conversation_id, {
        "state": ConversationState.PAUSED, "state_reason": "paused_by_operator"})
