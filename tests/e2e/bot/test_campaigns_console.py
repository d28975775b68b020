"""/campaigns through the real dispatcher, the fake Bot API and a real worker: agent and stage
picked, the message written with a placeholder, previewed on two real leads with the count,
started, paused and resumed from the bot, one progress message edited until the final report
(sent, skipped with why, failed); each lead's message checked at the fake Kommo."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest

from core.clock import utcnow
from core.orgs import create_agent
from tests.fixtures.campaigns import QUALIFIED, add_conversation, add_lead, drafts
from tests.fixtures.telegram import org_with_owner, user

_users = itertools.count(19_700)


@pytest.mark.timeout(600)
async def test_campaign_previewed_started_paused_resumed_and_reported(console_stack):
    stack, console, fake = console_stack, console_stack.console, console_stack.telegram
    storage = stack.services.storage
    owner = user(next(_users), language_code="en")
    membership = await org_with_owner(stack.services, owner, "Campaign shop")
    org_id = membership.org.id
    fake_acc = stack.kommo.add_account(f"cmp{owner.id}")
    kommo = await stack.services.kommo()
    await kommo.connections.connect_long_lived(org_id, fake_acc.subdomain, stack.kommo.book.issue_long_lived(fake_acc.id))
    await create_agent(storage, org_id, "Sales", "Sell.")
    ivan = add_lead(fake_acc, "Ivan Petrov")
    stale = add_lead(fake_acc, "Olga")
    await add_conversation(storage, org_id, stale, origin="whatsapp", last_customer_at=utcnow() - timedelta(hours=25))
    others = [add_lead(fake_acc, f"Client {n}") for n in range(8)]
    at_stage = [lead_id for lead_id, lead in fake_acc.leads.items() if lead.get("status_id") == QUALIFIED]

    await console.send(owner, "/campaigns")
    assert "Campaigns · Campaign shop: 0" in console.text(owner)
    await console.click(owner, "New campaign")
    await console.click(owner, "Sales")
    await console.click(owner, "Sales: Qualified")
    await console.send(owner, "Hi {first_nme}!")  # a placeholder that does not exist
    assert "The campaign cannot run: unknown placeholder" in console.text(owner)
    await console.send(owner, "Hi {first_name|there}, new prices!")
    preview = console.text(owner)
    assert f"Leads to get it: {len(at_stage)}" in preview
    assert preview.count("For «") == 2 and "Hi Ivan, new prices!" in preview
    assert drafts(fake_acc, ivan) == []  # a preview sends nothing

    await console.click(owner, "Start")
    progress = fake.last(owner.id)
    assert progress.text.startswith("📣 ") and not progress.buttons()
    await console.click(owner, "Pause")
    assert console.alerts()[-1] == "The campaign is paused."
    [campaign] = await storage.campaigns.recent(org_id, 5)

    async def paused_and_still():
        shown = fake.messages[(owner.id, progress.message_id)].text
        return shown.startswith("⏸ Campaign to «Qualified» paused") and shown
    shown = await stack.until(paused_and_still, what="the progress message to show the pause")
    done_before = sum(len(drafts(fake_acc, lead)) for lead in [ivan, *others])
    assert (await storage.campaigns.get(org_id, campaign.id)).status == "paused"
    assert done_before < len(at_stage) and "sent" in shown

    await console.click(owner, "Resume")
    assert console.alerts()[-1] == "The campaign goes on."
    await console.dp["progress"].idle()
    report = fake.messages[(owner.id, progress.message_id)].text
    sent = len(at_stage) - 1
    head, sent_line, skipped_line, failed_line = report.split("\n")
    assert (head, sent_line, failed_line) == ("✅ Campaign to «Qualified» done.", f"Sent: {sent}", "Failed: 0 (—)")
    assert skipped_line.startswith("Skipped: 1 (WhatsApp 24-hour window closed") and skipped_line.endswith("— 1)")
    [to_ivan] = drafts(fake_acc, ivan)  # once, although paused and resumed
    assert to_ivan.endswith("\n\nHi Ivan, new prices!")
    assert all(len(drafts(fake_acc, lead)) == 1 for lead in others) and drafts(fake_acc, stale) == []
