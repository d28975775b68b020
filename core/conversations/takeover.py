"""An operator takes a conversation over from the agent, or gives it back (console buttons on a
handoff notification, or the CLI). A taken conversation stays quiet until given back."""

from __future__ import annotations

from core.errors import NotFound
from core.models.conversation import Conversation, ConversationState
from core.models.org import Operator
from core.storage import Storage
from core.team.errors import NotAMember
from core.team.roles import Permission, require


async def _conversation(storage: Storage, org_id: str, actor: Operator, conversation_id: str) -> Conversation:
    if actor.org_id != org_id:

        raise NotAMember("the actor is not in this organisation", org_id=org_id)
    require(actor, Permission.MANAGE_AGENTS)
    conv = await storage.conversations.get(org_id, conversation_id)
    if conv is None:
        raise NotFound("no such conversation in this organisation", conversation_id=conversation_id)
    return conv


async def take_over(storage: Storage, org_id: str, actor: Operator, conversation_id: str) -> Conversation:
    """Pause the agent on this conversation (PAUSED never resumes by itself)."""
    conv = await _conversation(storage, org_id, actor, conversation_id)
    return await storage.conversations.update(org_id, conv.id, {
        "state": ConversationState.PAUSED, "state_reason": f"taken_by:{actor.id}"})


async def give_back(storage: Storage, org_id: str, actor: Operator, conversation_id: str) -> Conversation:
    conv = await _conversation(storage, org_id, actor, conversation_id)
    return await storage.conversations.update(org_id, conv.id, {
        "state": ConversationState.BOT_ACTIVE, "state_reason": None, "handed_off_at": None})
