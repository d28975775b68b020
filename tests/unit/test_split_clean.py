import itertools

from core.ai.ingest.clean import clean_text
from core.ai.ingest.extract.base import Section
from core.ai.ingest.extract.tabular import extract_csv
from core.ai.ingest.split import chunk_parts, embedding_text, part_texts, split_sections, split_text
from core.ai.tokens import count_tokens
from core.ai.types import Chunk


def test_clean_text():
    raw = "\ufeffЗаголовок\r\n\r\n\r\n\r\nинфор-\nмация\u00a0\u00a0и   текст\x07\u200b\n  хвост  "
    assert clean_text(raw) == "Заголовок\n\nинформация и текст\nхвост"
    assert clean_text("") == ""


def _text(n: int) -> str:
    return " ".join(f"Предложение номер {i} про доставку и оплату заказа." for i in range(n))


def test_split_respects_budget_and_overlaps():
    text = _text(200)
    chunks = split_text(text, 100, 20)
    assert len(chunks) > 5
    assert all(count_tokens(c) <= 100 for c in chunks)
    for a, b in itertools.pairwise(chunks):
        last_sentence = a.rsplit(". ", 1)[-1]
        assert last_sentence in b  # overlap carries the tail forward
    assert "номер 0 " in chunks[0] and "номер 199 " in chunks[-1]


def test_split_long_sentence_and_short_text():
    assert split_text("коротко", 100, 10) == ["коротко"]
    assert split_text("   ", 100, 10) == []
    long_line = "слово " * 1000
    pieces = split_text(long_line, 120, 20)
    assert all(count_tokens(p) <= 120 for p in pieces) and len(pieces) >= 8


def test_sections_carry_headings_and_atomic_rows():
    sections = [
        Section(_text(60), ["Договор", "1. Предмет"]),
        Section("Артикул: A1; Цена: 70 руб.", ["Прайс"], atomic=True, metadata={"row": 2}),
    ]
    chunks = split_sections(sections, 120, 20)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert chunks[0].heading == "Договор > 1. Предмет"
    assert chunks[-1].text == "Артикул: A1; Цена: 70 руб." and chunks[-1].metadata == {"row": 2}
    assert all(count_tokens(embedding_text(c, "Договор")) <= 125 for c in chunks)
    assert embedding_text(chunks[0], "Договор").startswith("Договор > 1. Предмет\n")


def test_chunk_parts_are_prose_sentences_of_multi_sentence_chunks():
    text = ("Доставка по Москве бесплатная при заказе от 3000 рублей. Да. Курьер привозит заказ "
            "на следующий день.\n\nОплата: картой или наличными курьеру при получении.")
    chunk = Chunk(text=text, index=0, heading_path=["Условия"])
    parts = chunk_parts(chunk)
    # "Да." is too short to be a vector of its own; "Оплата:" does not end a sentence.
    assert parts == ["Доставка по Москве бесплатная при заказе от 3000 рублей.",
                     "Да. Курьер привозит заказ на следующий день.",
                     "Оплата: картой или наличными курьеру при получении."]
    assert part_texts(chunk, "Файл")[0] == "Файл > Условия\n" + parts[0]
    assert chunk_parts(Chunk(text="Одно предложение без точки в конце", index=0)) == []
    # A short last sentence joins the one before it (two sentences then make one part: none).
    assert chunk_parts(Chunk(text="Доставка по Москве бесплатная при любом заказе. Всегда.", index=0)) == []
    assert chunk_parts(Chunk(text=f"{parts[0]} {parts[2]} Всегда.", index=0)) == [
        parts[0], parts[2] + " Всегда."]
    row = Chunk(text="Товар: Журнал. Тип два; Цена: 70 руб. Наличие: есть", index=0, sentence_vectors=False)
    assert chunk_parts(row) == []


def test_table_rows_opt_out_of_sentence_vectors():
    sections = extract_csv("Товар,Цена\nЖурнал учёта. Формат А4,70 руб.\n".encode(), "prices.csv", 100)
    chunks = split_sections(sections, 120, 20)
    assert chunks and not chunks[0].sentence_vectors
    assert split_sections([Section(_text(20), ["Doc"])], 120, 20)[0].sentence_vectors
