"""Small pure pieces of issue 15 section 4: the accepted/declined lead ids of an `unsorted`
hook in the shapes Kommo sends, when a closed conversation opens again, and reading the
account's timezone."""

from __future__ import annotations

from core.conversations.lead_events import _lead_ids, reopen_for
from core.kommo.sync.catalog import account_timezone
from core.models.conversation import Conversation, ConversationState


def test_unsorted_lead_ids_in_every_shape():
    assert _lead_ids({"accept_result": {"leads": ["11", "12"]}}, "accept_result") == [11, 12]
    assert _lead_ids({"accept_result": {"leads": {"0": {"id": "13"}}}, "lead_id": "13"}, "accept_result") == [13]
    assert _lead_ids({"data": {"leads": [{"id": 14}]}, "lead_id": "15"}, "decline_result") == [14, 15]
    assert _lead_ids({"accept_result": "junk", "data": {"leads": [{"id": "x"}]}}, "accept_result") == []


def test_a_closed_conversation_opens_again_only_on_another_lead_or_talk():
    conv = Conversation(_id="c", org_id="o", conversation_key="chat:1", lead_id=5, talk_id=7,
                        state=ConversationState.CLOSED, state_reason="lead_won", closed_lead_id=5, closed_talk_id=7)
    assert not reopen_for(conv, 5, 7)
    assert reopen_for(conv, 6, 7) and reopen_for(conv, 5, 8)
    by_stage = conv.model_copy(update={"state_reason": "left_agent_stages"})
    assert not reopen_for(by_stage, 6, 8)  # the lead's stage decides that one
    paused = conv.model_copy(update={"state": ConversationState.PAUSED, "state_reason": "taken_by:op"})
    assert not reopen_for(paused, 6, 8)


def test_account_timezone_from_datetime_settings():
    assert account_timezone({"_embedded": {"datetime_settings": {"timezone": "Europe/Moscow"}}}) == "Europe/Moscow"
    assert account_timezone({"timezone": "America/Bogota"}) == "America/Bogota"  # older answers
    assert account_timezone({"_embedded": {"datetime_settings": {"timezone": "Mars/Olympus"}}}) is None
    assert account_timezone({"_embedded": {"datetime_settings": "junk"}}) is None
    assert account_timezone({}) is None
