"""Price lists on real services: column roles in the stored points, re-indexing a changed price
list re-embeds only the rows whose embedded text changed, progress with an ETA, and the CLI's
column options stored on the source."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.ai.errors import ExtractionError
from core.models.agent import Agent
from core.models.knowledge import SourceStatus
from tests.integration.knowledge_helpers import knowledge_stack

ROOT = Path(__file__).resolve().parents[2]
HEADER = "Код товара,Артикул,Наименование товара,Страница на сайте,Цена,Остаток,Раздел"
ITEMS = [
    ("Глобус политический 150 мм", "Глобусы"), ("Калькулятор 14 разрядов настольный", "Калькуляторы"),
    ("Дырокол металлический на 40 листов", "Дыроколы"), ("Клей ПВА 20 г", "Клей"),
    ("Скотч двусторонний 24 мм", "Клейкая лента"), ("Ножницы 13 см нержавеющая сталь", "Ножницы"),
    ("Лупа 80 мм пятикратная", "Прочее"), ("Настольный светильник чёрный 9 Вт", "Светильники"),
    ("Гуашь тёмно-фиолетовая 40 мл", "Краски"), ("Мольберт складной 110 см", "Мольберты"),
    ("Пастель 30 цветов в деревянном пенале", "Пастель"), ("Фоторамка 21 на 30 серебристая", "Фоторамки"),
]


def price_list(prices: dict[int, int] | None = None, names: dict[int, str] | None = None) -> bytes:
    lines = [HEADER]
    for i, (name, section) in enumerate(ITEMS):
        name = (names or {}).get(i, name)
        price = (prices or {}).get(i, 100 + 10 * i)
        lines.append(f"0000012{i:04d},A-{i:03d},{name},https://shop.example/catalog/item-{i}/,{price}.00 руб.,{i % 4},"
                     f"{section}")
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
async def stack(storage, tmp_path):
    ingestion, retriever, embedder, store = await knowledge_stack(storage, tmp_path)
    ingestion.batch_size = 4  # several batches, so progress is reported mid-way
    yield ingestion, retriever, embedder, store
    await store.close()


async def test_rows_embed_names_and_answer_with_price(storage, stack):
    ingestion, retriever, embedder, store = stack
    src = await ingestion.add_file("o", "a", "prices.csv", price_list())
    done = await ingestion.index_source("o", src.id)
    roles = {c["header"]: c["role"] for c in done.columns}
    assert roles == {"Код товара": "keyword", "Артикул": "keyword", "Наименование товара": "embed",
                     "Страница на сайте": "payload", "Цена": "payload", "Остаток": "payload", "Раздел": "embed"}
    points = await store.fetch("o", "a", where={"source_id": src.id})
    assert len(points) == len(ITEMS) == embedder.passages
    best = (await retriever.retrieve("o", "a", "Сколько стоит лупа на 80 мм?")).best
    assert best.text.startswith("Код товара: 00000120006;") and "Цена: 160.00 руб." in best.text
    cells = {c["header"]: c for c in best.metadata["cells"]}
    assert cells["Цена"]["role"] == "payload" and cells["Цена"]["kind"] == "price"
    assert cells["Наименование товара"]["kind"] == "name"
    # A code still finds its row through the keyword index.
    found = await retriever.candidates("o", "a", "A-004", await retriever.live_generations("o", "a"), 5)
    assert found.keyword and "Скотч двусторонний" in found.keyword[0].payload["text"]


async def test_changed_price_list_re_embeds_only_changed_rows(storage, stack):
    ingestion, retriever, embedder, store = stack
    src = await ingestion.add_file("o", "a", "prices.csv", price_list())
    await ingestion.index_source("o", src.id)
    assert embedder.passages == len(ITEMS)
    # Every price changes, two names change: two rows are embedded again, the rest reused.
    new = price_list(prices={i: 999 + i for i in range(len(ITEMS))},
                     names={3: "Клей-карандаш 36 г", 9: "Мольберт-хлопушка 120 см"})
    file_id = await storage.files.put("o", "prices.csv", new, "text/csv")
    await storage.knowledge.update("o", src.id, {"file_id": file_id})
    again = await ingestion.index_source("o", src.id)
    assert again.status == SourceStatus.READY and again.generation == 2
    assert embedder.passages == len(ITEMS) + 2
    best = (await retriever.retrieve("o", "a", "Сколько стоит лупа на 80 мм?")).best
    assert "Цена: 1005.00 руб." in best.text
    assert "Клей-карандаш 36 г" in (await retriever.retrieve("o", "a", "клей-карандаш")).best.text
    assert await store.count("o", "a") == len(ITEMS)  # the old generation is gone
    # Unchanged file: nothing at all is embedded or written.
    await ingestion.index_source("o", src.id)
    assert embedder.passages == len(ITEMS) + 2


async def test_progress_reports_an_eta_stored_on_the_source(storage, stack):
    ingestion, _retriever, _embedder, _store = stack
    src = await ingestion.add_file("o", "a", "prices.csv", price_list())
    seen: list[tuple[int, float | None, float | None]] = []

    async def progress(s) -> None:
        stored = await storage.knowledge.get("o", s.id)
        seen.append((s.chunks_done, s.eta_s, stored.eta_s))

    done = await ingestion.index_source("o", src.id, on_progress=progress)
    assert [d for d, _, _ in seen] == [4, 8, 12]
    assert all(eta == stored and eta is not None and eta > 0 for _, eta, stored in seen[:-1])
    assert seen[-1][1] == 0.0 and done.eta_s == 0.0


async def test_column_overrides_are_checked_and_applied(storage, stack):
    ingestion, _retriever, embedder, store = stack
    with pytest.raises(ExtractionError, match="tables"):
        await ingestion.add_file("o", "a", "notes.txt", b"some text", columns={"embed": ["Name"]})
    assert await storage.knowledge.for_agent("o", "a") == []  # nothing stored for a refused upload
    src = await ingestion.add_file("o", "a", "prices.csv", price_list(), columns={"embed": ["Артикул"],
                                                                                 "skip": ["Раздел"]})
    done = await ingestion.index_source("o", src.id)
    roles = {c["header"]: c["role"] for c in done.columns}
    assert roles["Артикул"] == "embed" and roles["Раздел"] == "payload"
    # Another list (the same bytes again would be "already added"), with a column it does not have.
    bad = await ingestion.add_file("o", "a", "prices2.csv", price_list(prices={0: 999}), columns={"embed": ["Цвет"]})
    with pytest.raises(ExtractionError, match="no column named 'цвет'"):
        await ingestion.index_source("o", bad.id)
    failed = await storage.knowledge.get("o", bad.id)
    assert failed.status == SourceStatus.FAILED and "Наименование товара" in failed.error
    assert await store.count("o", "a", where={"source_id": bad.id}) == 0


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", "knowledge", *args], cwd=env["DATA_DIR"], env=env,
                          capture_output=True, text=True, timeout=300)


async def test_cli_column_options_are_stored_on_the_source(storage, mongo_url, redis_url, tmp_path):
    import base64  # noqa: PLC0415

    org = (await storage.orgs.create("CLI shop")).id
    await storage.agents.insert(org, Agent(_id="ag1", org_id=org, name="Anna", model="m"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGO_", "REDIS_", "LLM_", "SECRETS_", "QDRANT_"))}
    env.update(MONGO_URL=mongo_url, MONGO_DATABASE=storage.db.name, REDIS_URL=redis_url, DATA_DIR=str(tmp_path),
               SECRETS_KEYS="k1:" + base64.b64encode(os.urandom(32)).decode(), LOG_JSON="false", LLM_API_KEY="",
               KNOWLEDGE_CROSS_LINGUAL="false")
    path = tmp_path / "prices.csv"
    path.write_bytes(price_list())
    out = _cli(env, "add", "--org", org, "--agent", "ag1", "--embed-columns", "Артикул",
               "--skip-columns", "Раздел, Остаток", str(path))
    assert out.returncode == 0, out.stderr
    source_id = out.stdout.strip().splitlines()[-1]
    assert "columns: embed: Артикул (code), Наименование товара (name)" in out.stderr
    source = await storage.knowledge.get(org, source_id)
    assert source.options["columns"] == {"embed": ["артикул"], "skip": ["раздел", "остаток"]}
    assert source.status == SourceStatus.READY
    out = _cli(env, "reindex", "--org", org, "--auto-columns", source_id)
    assert out.returncode == 0, out.stderr
    source = await storage.knowledge.get(org, source_id)
    assert "columns" not in source.options and {c["header"]: c["role"] for c in source.columns}["Артикул"] == "keyword"
    other = tmp_path / "prices-2.csv"  # another list: the same one again would be "already added"
    other.write_bytes(price_list(prices={0: 999}))
    out = _cli(env, "add", "--org", org, "--agent", "ag1", "--embed-columns", "Цвет", str(other))
    assert out.returncode == 1 and "no column named 'цвет'" in out.stderr and "Traceback" not in out.stderr
