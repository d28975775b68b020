"""Column roles of tables: decided from headers and values, overridable, and what each text gets."""

from __future__ import annotations

import pytest

from core.ai.errors import ExtractionError
from core.ai.ingest.columns import (
    CATEGORY,
    CODE,
    EMBED,
    EMPTY,
    KEYWORD,
    NAME,
    NUMBER,
    PAYLOAD,
    PRICE,
    STOCK,
    URL,
    ColumnOverrides,
    apply_column_roles,
    plan_columns,
)
from core.ai.ingest.extract.tabular import extract_csv
from core.ai.ingest.split import embedding_text, keyword_index_text, split_sections

HEADER = ["Код товара", "Артикул", "Наименование товара", "Страница на сайте", "Год выпуска", "Издательство",
          "Заказ", "Цена", "category_path"]


def _rows(n: int = 30) -> list[list[str]]:
    return [[f"{100000 + i:011d}", f"КЖ-{700 + i}", f"ЖУРНАЛ УЧЕТА номер {i} ТВЕРДАЯ ОБЛОЖКА",
             f"https://shop.example/catalog/item_{i}/", str(2015 + i % 5), ["Учитель", "Хатбер"][i % 2], "",
             f"{70 + i}.00 руб.", f"КАНЦЕЛЯРСКИЕ ТОВАРЫ / {['Журналы', 'Бланки'][i % 2]}"] for i in range(n)]


def _csv(rows: list[list[str]], header: list[str] = HEADER) -> bytes:
    return ("\n".join(",".join(r) for r in [header, *rows]) + "\n").encode()


def test_roles_follow_headers_and_values():
    plan = {c.header: (c.role, c.kind) for c in plan_columns(HEADER, _rows())}
    assert plan["Код товара"] == (KEYWORD, CODE)
    assert plan["Артикул"] == (KEYWORD, CODE)
    assert plan["Наименование товара"] == (EMBED, NAME)
    assert plan["Страница на сайте"] == (PAYLOAD, URL)
    assert plan["Год выпуска"] == (KEYWORD, NUMBER)
    assert plan["Издательство"][0] == EMBED
    assert plan["Заказ"] == (PAYLOAD, EMPTY)
    assert plan["Цена"] == (PAYLOAD, PRICE)
    assert plan["category_path"] == (EMBED, CATEGORY)


def test_unnamed_headers_are_recognised_by_their_values():
    # English headers no rule names: the URL, the unique codes and the stock by their values.
    header = ["Item", "Ref", "Link", "Left in stock", "Colour"]
    rows = [[f"Office chair model {i}", f"A{i:05d}", f"http://x.example/p/{i}", str(i % 7), ["red", "blue"][i % 2]]
            for i in range(40)]
    plan = {c.header: (c.role, c.kind) for c in plan_columns(header, rows)}
    assert plan == {"Item": (EMBED, NAME), "Ref": (KEYWORD, CODE), "Link": (PAYLOAD, URL),
                    "Left in stock": (PAYLOAD, STOCK), "Colour": (EMBED, "attribute")}


def test_a_column_saying_the_same_in_nearly_every_row_is_not_embedded():
    rows = [[f"Тетрадь {i} листов", "Канц" if i % 20 else "Книги"] for i in range(40)]
    assert [(c.role, c.kind) for c in plan_columns(["Товар", "Жанр"], rows)] == [(EMBED, NAME), (KEYWORD, "attribute")]


def test_a_table_of_numbers_still_embeds_something():
    plan = plan_columns(["Размер", "Вес"], [["10", "2"], ["12", "3"]])
    assert {c.role for c in plan} == {EMBED}


def test_operator_overrides_win_and_are_checked():
    overrides = ColumnOverrides.of({"embed": ["год выпуска"], "skip": ["Издательство"], "keyword": ["Цена"]})
    plan = {c.header: c.role for c in plan_columns(HEADER, _rows(), overrides)}
    assert plan["Год выпуска"] == EMBED and plan["Издательство"] == PAYLOAD and plan["Цена"] == KEYWORD
    with pytest.raises(ExtractionError, match="no column named 'цвет'.*Наименование товара"):
        plan_columns(HEADER, _rows(), ColumnOverrides.of({"embed": ["Цвет"]}))
    with pytest.raises(ExtractionError, match="both as embed and as skip"):
        ColumnOverrides.of({"embed": ["Цена"], "skip": ["цена"]})
    with pytest.raises(ExtractionError, match="embed, keyword or skip"):
        ColumnOverrides.of({"vectors": ["Цена"]})
    with pytest.raises(ExtractionError, match="list of column names"):
        ColumnOverrides.of({"embed": "Цена"})


def test_row_texts_by_role_and_the_full_row_kept():
    sections, columns = apply_column_roles(extract_csv(_csv(_rows()), "prices", 1000))
    assert [c.header for c in columns] == HEADER
    chunks = split_sections(sections, 350, 60)
    assert len(chunks) == 30
    row = chunks[3]
    embedded, keyword = embedding_text(row, "prices.csv"), keyword_index_text(row, "prices.csv")
    # The name first, shouting calmed; the brand bare; the category without the prefix every row shares.
    assert embedded == "журнал учета номер 3 твердая обложка; Хатбер; Бланки"
    for shown_only in ("https://", "руб", "00000100003", "КЖ-703", "prices"):
        assert shown_only not in embedded
    assert "00000100003" in keyword and "КЖ-703" in keyword and "https://" not in keyword and "руб" not in keyword
    assert "Наименование товара: ЖУРНАЛ УЧЕТА номер 3" in keyword and "КАНЦЕЛЯРСКИЕ ТОВАРЫ / Бланки" in keyword
    # The chunk's text (what answers the customer) is the whole row, price and link included.
    assert "Цена: 73.00 руб." in row.text and "https://shop.example/catalog/item_3/" in row.text
    cells = {c["header"]: c for c in row.metadata["cells"] if not c["header"].startswith("_")}
    assert cells["Цена"] == {"header": "Цена", "value": "73.00 руб.", "role": PAYLOAD, "kind": PRICE}
    assert "Заказ" not in cells  # empty cells are not carried
    assert row.metadata["row"] == 5 and "header" not in row.metadata and "values" not in row.metadata


def test_every_column_embedded_is_the_row_as_before():
    sections, _ = apply_column_roles(extract_csv(_csv(_rows()), "prices", 1000), {"embed": ["*"]})
    row = split_sections(sections, 350, 60)[0]
    assert embedding_text(row, "prices.csv") == "prices.csv > prices\n" + row.text


def test_a_long_row_is_one_chunk():
    rows = _rows(3)
    rows[1][2] = "Журнал " + " ".join(f"слово{i}" for i in range(600))
    sections, _ = apply_column_roles(extract_csv(_csv(rows), "prices", 1000))
    chunks = split_sections(sections, 100, 20)
    assert len(chunks) == 3 and "слово599" in chunks[1].text and "Цена: 71.00 руб." in chunks[1].text
