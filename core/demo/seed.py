"""Seed the demo organisation on a fresh installation, so `up` and `chat` have something to try.

Everything comes from `core/demo/data/` (written for this product: prices, delivery, returns and
FAQ of a small furniture store, in Russian and English). Seeding happens once per installation
(an installation flag, claimed atomically), and only while no organisation exists, so a real
deployment is never given a demo tenant behind its back.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from core.ai.ingest.sources import SourceIntake
from core.models.agent import AgentAction, LanguagePolicy
from core.orgs import create_agent, create_org
from core.storage import Storage

DATA = Path(__file__).with_name("data")
FLAG = "demo_seeded"
ORG_NAME = "Cozy Home (demo)"
AGENT_NAME = "Anna"
PERSONA = "Анна, консультант мебельного магазина «Уютный дом» (Cozy Home)"
INSTRUCTIONS = """Ты консультант интернет-магазина мебели «Уютный дом» в Москве.
Отвечай коротко и дружелюбно, называй цены и сроки только из базы знаний.
Если клиент готов оформить заказ, предложи связаться с менеджером и передай диалог.
Не обещай скидок: индивидуальных скидок у магазина нет."""
FILES = ("prices.csv", "delivery.md", "returns.md")


@dataclass
class DemoSeed:
    org_id: str
    agent_id: str
    source_ids: list[str] = field(default_factory=list)


def faq_pairs(language: str) -> list[dict[str, str]]:
    text = (DATA / language / "faq.csv").read_text(encoding="utf-8")
    dialect = csv.Sniffer().sniff(text.splitlines()[0], delimiters=",;")
    return [{"question": row["question"], "answer": row["answer"]} for row in csv.DictReader(io.StringIO(text), dialect=dialect)]


async def seed_demo(storage: Storage, intake: SourceIntake) -> DemoSeed | None:
    """The demo organisation, agent and knowledge sources (queued for indexing through `intake`:
    a worker indexes them, or the caller does when `intake` has no queue); None when this
    installation already has organisations or was seeded before."""
    if await storage.orgs.list_all():
        return None
    if not await storage.installation.claim(FLAG):
        return None
    org = await create_org(storage, ORG_NAME, language="ru")
    agent = await create_agent(storage, org.id, AGENT_NAME, INSTRUCTIONS, persona=PERSONA, language="ru",
                               language_policy=LanguagePolicy.MIRROR,
                               allowed_actions=[AgentAction.REPLY, AgentAction.HANDOFF_TO_HUMAN])
    seeded = DemoSeed(org.id, agent.id)
    for language in ("ru", "en"):
        for name in FILES:
            source = await intake.add_file(org.id, agent.id, f"{language}-{name}", (DATA / language / name).read_bytes())
            seeded.source_ids.append(source.id)
        title = "Частые вопросы" if language == "ru" else "FAQ"
        seeded.source_ids.append((await intake.add_faq(org.id, agent.id, faq_pairs(language), title=title)).id)
    await storage.installation.collection.update_one({"_id": FLAG}, {"$set": {"org_id": org.id, "agent_id": agent.id}})
    return seeded
