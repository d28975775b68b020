"""Follow-ups: a nudge after N hours of customer silence, at most M times, within the channel's
rules (WhatsApp allows free-form messages only within 24 h of the customer's last message)."""

from __future__ import annotations

from datetime import timedelta

from core.conversations.context import EngineDeps
from core.kommo.errors import KommoError
from core.logging import get_logger
from core.models.agent import DeliveryMode
from core.models.conversation import Conversation, ConversationState

log = get_logger(__name__)
WHATSAPP_ORIGINS = ("whatsapp", "waba", "wa", "whatsapp_business")
WHATSAPP_WINDOW = timedelta(hours=24)

DEFAULT_NUDGE = {
    "ru": "Здравствуйте! Удалось ли посмотреть наш ответ? Если остались вопросы — напишите, я помогу.",
    "en": "Hello! Did you have a chance to look at our answer? If you have any questions, just write — I'm happy to help.",
    "es": "¡Hola! ¿Pudo revisar nuestra respuesta? Si tiene preguntas, escríbanos y le ayudo.",
    "pt": "Olá! Conseguiu ver a nossa resposta? Se tiver dúvidas, escreva-nos e eu ajudo.",
}


def outside_channel_window(conv: Conversation, now) -> bool:
    is_whatsapp = (conv.origin or "").lower() in WHATSAPP_ORIGINS
    return is_whatsapp and (conv.last_customer_at is None or now - conv.last_customer_at >= WHATSAPP_WINDOW)


async def send_due_follow_ups(deps: EngineDeps, org_id: str) -> int:
    now = deps.clock()
    sent = 0
    for agent in await deps.storage.agents.enabled(org_id):
        policy = agent.follow_up
        if not policy.enabled or policy.max_times <= 0:
            continue
        if agent.delivery_mode == DeliveryMode.SALESBOT:
            continue  # only a waiting Salesbot's return_url reaches the customer, and a nudge has none
        candidates = await deps.storage.conversations.list(org_id, {
            "agent_id": agent.id, "state": ConversationState.BOT_ACTIVE, "pending_turn_id": None,
            "follow_ups_sent": {"$lt": policy.max_times},
            "last_reply_at": {"$lte": now - timedelta(hours=policy.after_hours)},
        }, limit=500)
        for conv in candidates:
            if conv.last_customer_at and conv.last_reply_at and conv.last_reply_at < conv.last_customer_at:
                continue  # the customer spoke last: a turn is due, not a nudge
            if outside_channel_window(conv, now):
                continue
            n = conv.follow_ups_sent + 1
            text = policy.text or DEFAULT_NUDGE.get(agent.language, DEFAULT_NUDGE["en"])
            try:
                await deps.kommo.send_reply(org_id, lead_id=conv.lead_id, text=text, mode=agent.delivery_mode,
                                            idempotency_key=f"followup:{conv.id}:{n}", context=conv.reply_context)
            except KommoError as exc:
                log.warning("follow_up_failed", org_id=org_id, conversation_id=conv.id, error=str(exc))
                continue
            res = await deps.storage.conversations.collection.update_one(
                {"org_id": org_id, "_id": conv.id, "follow_ups_sent": n - 1},
                {"$set": {"follow_ups_sent": n, "last_reply_at": now}})
            sent += res.modified_count
    return sent
