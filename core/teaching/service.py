"""Corrections: a manager's right answer to a question the agent got wrong.

Each agent has at most one FAQ source marked `options.corrections`, titled "Corrections"; every
correction is one question/answer pair in it. Adding, editing or deleting a pair stores the
source and hands it to the task queue at once, so the next retrieval finds (and the answer cites)
the corrected pair. The source is listed with the agent's other knowledge.
"""

from __future__ import annotations

from core.clock import utcnow
from core.errors import InvalidInput, NotFound
from core.ids import new_id
from core.models.knowledge import KnowledgeSource, SourceKind, SourceStatus
from core.storage import Storage

TITLE = "Corrections"
MAX_QUESTION = 1000
MAX_ANSWER = 3000


def _clean(text: str, limit: int, what: str) -> str:
    text = " ".join((text or "").split()) if what == "question" else (text or "").strip()
    if not text:
        raise InvalidInput(f"the {what} is empty")
    if len(text) > limit:
        raise InvalidInput(f"the {what} is longer than {limit} characters", limit=limit)
    return text


class Corrections:
    def __init__(self, storage: Storage, queue) -> None:
        self.storage = storage
        self.queue = queue  # core.ports.TaskQueue: indexing runs where the vector store lives

    async def source(self, org_id: str, agent_id: str) -> KnowledgeSource | None:
        for source in await self.storage.knowledge.for_agent(org_id, agent_id):
            if source.kind == SourceKind.FAQ and source.options.get("corrections"):
                return source
        return None

    async def pairs(self, org_id: str, agent_id: str) -> list[dict[str, str]]:
        source = await self.source(org_id, agent_id)
        return list(source.options.get("pairs", [])) if source else []

    async def add(self, org_id: str, agent_id: str, question: str, answer: str) -> KnowledgeSource:
        """Store the pair (replacing an earlier correction of the same question) and index it."""
        if await self.storage.agents.get(org_id, agent_id) is None:
            raise NotFound("agent not found", agent_id=agent_id)
        question, answer = _clean(question, MAX_QUESTION, "question"), _clean(answer, MAX_ANSWER, "answer")
        pair = {"id": new_id("fix"), "question": question, "answer": answer, "at": utcnow().isoformat()}
        source = await self.source(org_id, agent_id)
        if source is None:
            source = KnowledgeSource(_id=new_id("src"), org_id=org_id, agent_id=agent_id, kind=SourceKind.FAQ,
                                     title=TITLE, updated_at=utcnow(), options={"corrections": True, "pairs": [pair]})
            await self.storage.knowledge.insert(org_id, source)
        else:
            same = question.casefold()
            pairs = [p for p in source.options.get("pairs", []) if p["question"].casefold() != same] + [pair]
            source = await self._save(org_id, source, pairs)
        await self._index(org_id, source)
        return source

    async def edit(self, org_id: str, agent_id: str, pair_id: str, answer: str) -> KnowledgeSource:
        answer = _clean(answer, MAX_ANSWER, "answer")
        source = await self._require(org_id, agent_id)
        pairs = source.options.get("pairs", [])
        if not any(p.get("id") == pair_id for p in pairs):
            raise NotFound("correction not found", pair_id=pair_id)
        pairs = [{**p, "answer": answer, "at": utcnow().isoformat()} if p.get("id") == pair_id else p for p in pairs]
        source = await self._save(org_id, source, pairs)
        await self._index(org_id, source)
        return source

    async def delete(self, org_id: str, agent_id: str, pair_id: str) -> int:
        """Remove one pair; the number left. The last one removed leaves an empty source, which
        is deleted with its vectors (through the queue)."""
        source = await self._require(org_id, agent_id)
        pairs = [p for p in source.options.get("pairs", []) if p.get("id") != pair_id]
        if len(pairs) == len(source.options.get("pairs", [])):
            raise NotFound("correction not found", pair_id=pair_id)
        if not pairs:
            await self.storage.knowledge.set_status(org_id, source.id, SourceStatus.QUEUED)
            await self.queue.delete_source(org_id, source.id)
            return 0
        source = await self._save(org_id, source, pairs)
        await self._index(org_id, source)
        return len(pairs)

    async def _require(self, org_id: str, agent_id: str) -> KnowledgeSource:
        source = await self.source(org_id, agent_id)
        if source is None:
            raise NotFound("no corrections yet", agent_id=agent_id)
        return source

    async def _save(self, org_id: str, source: KnowledgeSource, pairs: list[dict]) -> KnowledgeSource:
        options = {**source.options, "pairs": pairs}
        await self.storage.knowledge.set_status(org_id, source.id, SourceStatus.QUEUED, options=options,
                                                updated_at=utcnow())
        return source.model_copy(update={"options": options, "status": SourceStatus.QUEUED})

    async def _index(self, org_id: str, source: KnowledgeSource) -> None:
        if self.queue is not None:
            await self.queue.index_source(org_id, source.id)
