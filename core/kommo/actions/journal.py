"""Exactly-once side effects through the ActionJournal (agent_actions, also the audit log).

`run_journaled` claims the idempotency key first, then acts, then records SENT/FAILED.

Redelivery rules (a Celery retry or a crashed worker's task coming back):
- SENT / REFUSED: nothing is done; the stored record (with its result) is returned.
- PLANNED (an earlier dry run) or FAILED (Kommo refused for sure): one caller moves it back to
  SENDING and tries again.
- SENDING (an earlier attempt crashed or timed out, so it may or may not have landed):
  1. if the action can look itself up in Kommo (notes and tasks: same text on the same lead),
     a match is recorded as SENT and nothing is resent;
  2. if resending is harmless (PATCH of a stage or field: same value again), resend now;
  3. if Kommo cannot be asked and a second copy would reach the customer (`can_resend=False`:
     a Salesbot run, a Chats API message), the record becomes MAYBE_SENT once its first
     attempt is surely over (older than `stale_after_s`, or it ended without an answer) and
     `MaybeSent` is raised: an operator checks the chat, nothing is sent blindly a second time;
  4. otherwise resend only when the record is older than `stale_after_s` (its first attempt is
     surely over), claimed with compare-and-set so only one redelivery resends;
  5. else raise `ActionInProgress` (transient: the task retries later).
Timeouts and 5xx leave the record SENDING (the request may have landed), or MAYBE_SENT where it
cannot be resent; definite refusals (4xx, auth, blocked, a 429 past the retry budget) record
FAILED. The SENDING record is written before the call: it is the intent a crash leaves behind.

`precheck`, when given, runs right before every real attempt: a reason from it (say, a manager
took the conversation over meanwhile) records the effect REFUSED with `withheld` set, and
nothing is called.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from core.clock import aware, utcnow
from core.errors import KommoAgentError
from core.ids import new_id
from core.kommo.errors import ActionInProgress, KommoServerError, KommoUnavailable, MaybeSent
from core.models.events import ActionRecord, ActionState
from core.storage.repositories.events import ActionJournal

Perform = Callable[[], Awaitable[dict[str, Any]]]
Finder = Callable[[ActionRecord], Awaitable[dict[str, Any] | None]]
Precheck = Callable[[], Awaitable[str | None]]
UNCERTAIN = "uncertain: "


async def run_journaled(journal: ActionJournal, org_id: str, *, kind: str, key: str, params: dict[str, Any],
                        perform: Perform, lead_id: int | None = None, dry_run: bool = False,
                        refuse: str | None = None, find_existing: Finder | None = None,
                        resend_safe: bool = False, stale_after_s: float = 120.0,
                        conversation_id: str | None = None, agent_id: str | None = None,
                        can_resend: bool = True, precheck: Precheck | None = None) -> ActionRecord:
    state = ActionState.REFUSED if refuse else ActionState.PLANNED if dry_run else ActionState.SENDING
    record = ActionRecord(_id=new_id("act"), org_id=org_id, idempotency_key=key, kind=kind, params=params,
                          state=state, lead_id=lead_id, dry_run=dry_run, error=refuse,
                          conversation_id=conversation_id, agent_id=agent_id)
    existing, created = await journal.begin(org_id, record)
    if created:
        if state != ActionState.SENDING:
            return existing  # dry run ("would do") or refused: nothing is called
    elif existing.state in (ActionState.SENT, ActionState.REFUSED) or dry_run:
        return existing
    elif existing.state == ActionState.MAYBE_SENT:
        raise MaybeSent(f"{kind} {key} may have been sent already: {existing.error or 'unknown outcome'}")
    elif existing.state in (ActionState.PLANNED, ActionState.FAILED):
        if refuse:
            return existing
        if not await journal.restart(org_id, existing.id, [existing.state]):
            raise ActionInProgress(f"{kind} {key} is being retried by another worker")
    elif existing.state == ActionState.SENDING:
        found = await find_existing(existing) if find_existing else None
        if found is not None:
            return await journal.finish_and_get(org_id, existing.id, ActionState.SENT, result={**found, "recovered": True})
        age = (utcnow() - aware(existing.updated_at)).total_seconds()
        ended_unknown = (existing.error or "").startswith(UNCERTAIN)
        if not resend_safe and not can_resend and (age > stale_after_s or ended_unknown):
            await _maybe_sent(journal, org_id, existing, existing.error or "the attempt did not finish (a crash?)")
        if not (resend_safe or age > stale_after_s):
            raise ActionInProgress(f"{kind} {key} is still in flight ({age:.0f}s); retry later")
        if not await journal.reclaim(org_id, existing.id, existing.updated_at):
            raise ActionInProgress(f"{kind} {key} was taken over by another redelivery")
    if precheck is not None:
        reason = await precheck()
        if reason:
            return await journal.finish_and_get(org_id, existing.id, ActionState.REFUSED,
                                                result={"withheld": True, "reason": reason})
    try:
        result = await perform()
    except (KommoUnavailable, KommoServerError) as exc:
        if not resend_safe and not can_resend:
            await _maybe_sent(journal, org_id, existing, f"{UNCERTAIN}{exc}")
        await journal.finish(org_id, existing.id, ActionState.SENDING, error=f"{UNCERTAIN}{exc}"[:500])
        raise
    except KommoAgentError as exc:
        await journal.finish(org_id, existing.id, ActionState.FAILED, error=str(exc)[:500])
        raise
    return await journal.finish_and_get(org_id, existing.id, ActionState.SENT, result=result)


async def _maybe_sent(journal: ActionJournal, org_id: str, record: ActionRecord, why: str) -> None:
    await journal.finish(org_id, record.id, ActionState.MAYBE_SENT, error=why[:500])
    raise MaybeSent(f"{record.kind} {record.idempotency_key} may have been sent (Kommo cannot be asked): {why}"[:500])
