"""/knowledge through the real dispatcher, the fake Bot API and a real worker: a real DOCX from
../shared/datasets uploaded with one progress message edited in place (at most once per 2 s)
ending in "ready"; a broken file ending in "failed" with the reason; an oversized and an
unsupported file refused before anything is downloaded; a link and FAQ pairs imported; the list
with status, size and date; re-index one and all; delete with confirmation."""

from __future__ import annotations

import itertools

import pytest

from core.orgs import create_agent
from tests.conftest import shared_path
from tests.fixtures.telegram import org_with_owner, user

_users = itertools.count(19_300)


def progress_edits(fake, chat_id: int, message_id: int) -> list:
    return [c for c in fake.calls_of("editMessageText", chat_id) if int(c.params["message_id"]) == message_id]


@pytest.mark.timeout(900)  # a real worker embeds the document; the shared machine is slow
async def test_upload_with_live_progress_links_faq_list_reindex_delete(console_stack):
    stack, console, fake = console_stack, console_stack.console, console_stack.telegram
    storage = stack.services.storage
    owner = user(next(_users), language_code="en")
    membership = await org_with_owner(stack.services, owner, "Furniture")
    org_id = membership.org.id
    agent = await create_agent(storage, org_id, "Anna", "Answer from the knowledge.")

    await console.send(owner, "/knowledge")
    await console.click(owner, "Anna")
    assert "Knowledge of Anna: 0 sources" in console.text(owner)

    # A real DOCX: one message, edited in place until it is ready.
    docx = shared_path("datasets", "docs_ru", "poi_bib-chernigovka_calendar2017.docx")
    await console.send_document(owner, docx.name, docx.read_bytes(),
                                mime_type="application/vnd.openxmlformats-officedocument.wordprocessingml.document")
    progress = fake.last(owner.id)
    assert progress.text.startswith("⏳ poi_bib-chernigovka_calendar2017.docx: queued")
    await console.dp["progress"].idle()
    [source] = await storage.knowledge.for_agent(org_id, agent.id)
    assert source.status == "ready" and source.chunks_total > 0, (
        [c.params.get("text") for c in progress_edits(fake, owner.id, progress.message_id)], stack.worker_log())
    final = fake.messages[(owner.id, progress.message_id)].text
    assert final.startswith(f"✅ {docx.name} is ready: {source.chunks_total} chunks in "), final
    edits = progress_edits(fake, owner.id, progress.message_id)
    assert edits and all(b.at - a.at >= 1.95 for a, b in itertools.pairwise(edits))
    assert edits[0].at - fake.calls_of("sendMessage", owner.id)[-1].at >= 1.95 or len(edits) == 1

    # A file that cannot be parsed ends in "failed" with the reason in words.
    await console.send_document(owner, "broken.pdf", b"%PDF-1.4 this is not really a pdf", mime_type="application/pdf")
    broken = fake.last(owner.id)
    await console.dp["progress"].idle()
    failed = fake.messages[(owner.id, broken.message_id)].text
    assert failed.startswith("❌ broken.pdf failed: ") and len(failed) > len("❌ broken.pdf failed: ") + 5, failed

    # Refused from the message alone: nothing is downloaded.
    get_files = len(fake.calls_of("getFile"))
    await console.send_document(owner, "catalogue.pdf", b"%PDF-1.4", size=25 * 1024 * 1024,
                                mime_type="application/pdf")
    assert "Telegram lets bots download at most 20 MB" in console.text(owner) and "link" in console.text(owner)
    await console.send_document(owner, "setup.exe", b"MZ\x90\x00", mime_type="application/octet-stream")
    assert ".exe files are not supported" in console.text(owner)
    assert len(fake.calls_of("getFile")) == get_files

    # A link (a page of the stack's web server, allowed by KNOWLEDGE_URL_ALLOW_HOSTS) and FAQ pairs.
    stack.pages["delivery"] = ("<html><head><title>Delivery</title></head><body><h1>Delivery</h1>"
                               "<p>We deliver sofas across Spain within five working days.</p></body></html>")
    await console.send(owner, f"{stack.links_base}/delivery")
    link_progress = fake.last(owner.id)
    await console.send(owner, "Q: Do you assemble the furniture?\nA: Yes, assembly is free in Madrid.\n"
                              "Q: Can I pay in instalments?\nA: Yes, in up to 12 monthly payments.")
    faq_progress = fake.last(owner.id)
    await console.dp["progress"].idle()
    assert "is ready: 1 chunks" in fake.messages[(owner.id, link_progress.message_id)].text
    assert "is ready: 2 chunks" in fake.messages[(owner.id, faq_progress.message_id)].text
    faq = next(s for s in await storage.knowledge.for_agent(org_id, agent.id) if s.kind == "faq")
    assert [p["question"] for p in faq.options["pairs"]] == ["Do you assemble the furniture?",
                                                             "Can I pay in instalments?"]
    await console.send(owner, "just some words")
    assert "Send a file, a link (https://…) or FAQ pairs" in console.text(owner)

    # The list: status, size, date; then one source's card, re-index, delete with confirmation.
    await console.send(owner, "/knowledge")
    await console.click(owner, "Anna")
    listing = console.text(owner)
    assert "Knowledge of Anna: 4 sources" in listing
    labels = [b["text"] for b in fake.last(owner.id).buttons()]
    docx_label = next(t for t in labels if docx.name[:20] in t)
    assert docx_label.startswith("✅ ") and " KB · " in docx_label
    assert any(t.startswith("❌ broken.pdf") for t in labels)
    await console.click(owner, docx.name[:20])
    card = console.text(owner)
    assert "Status: ready" in card and f"Chunks: {source.chunks_total}" in card
    await console.click(owner, "Re-index")
    await console.dp["progress"].idle()
    assert fake.last(owner.id).text.startswith(f"✅ {docx.name} is ready")
    await console.click(owner, "Delete")
    confirm, _ = console.button(owner, "Yes, delete")  # the card above the progress message asks
    assert f"Delete the source «{docx.name}»" in confirm["text"]
    assert await storage.knowledge.get(org_id, source.id) is not None
    await console.click(owner, "Yes, delete")

    async def deleted():
        return await storage.knowledge.get(org_id, source.id) is None
    await stack.until(deleted, what="the worker to delete the source")
    await console.click(owner, "Re-index all")
    assert console.alerts()[-1] == "Re-indexing started: 3"
