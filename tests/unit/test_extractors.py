"""Extractors on files the tests make themselves."""

from __future__ import annotations

import io
from pathlib import Path

import docx
import openpyxl
import pytest
from fpdf import FPDF

from core.ai.errors import ExtractionError
from core.ai.ingest.extract import extract_file
from core.ai.ingest.extract.faq import extract_faq
from core.ai.ingest.extract.html import extract_html
from core.config import KnowledgeSettings

SETTINGS = KnowledgeSettings(max_file_bytes=200_000, max_pages=3)
FONTS = [Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")]


def _font() -> Path:
    for f in FONTS:
        if f.exists():
            return f
    try:
        import matplotlib  # noqa: PLC0415 - optional: the test skips without it

        return Path(matplotlib.get_data_path()) / "fonts/ttf/DejaVuSans.ttf"
    except ImportError:
        pytest.skip("no TTF font with Cyrillic glyphs on this machine (DejaVuSans)")


def _pdf(pages: list[str]) -> bytes:
    pdf = FPDF()
    pdf.add_font("dejavu", fname=str(_font()))
    pdf.set_font("dejavu", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def test_pdf_with_cyrillic_text():
    sections = extract_file("price.pdf", _pdf(["Доставка по Москве — бесплатно.", "Гарантия 2 года."]), SETTINGS)
    assert "Доставка по Москве" in sections[0].text and sections[0].metadata["page"] == 1
    assert "Гарантия 2 года" in sections[1].text


def test_pdf_failures():
    with pytest.raises(ExtractionError, match="damaged"):
        extract_file("broken.pdf", b"%PDF-1.7\n1 0 obj garbage", SETTINGS)
    blank = FPDF()
    blank.add_page()  # a page with no text: what a scan looks like to a text extractor
    with pytest.raises(ExtractionError, match="no text layer"):
        extract_file("scan.pdf", bytes(blank.output()), SETTINGS)
    with pytest.raises(ExtractionError, match=r"4 pages; the limit is 3 \(KNOWLEDGE_MAX_PAGES\)"):
        extract_file("long.pdf", _pdf(["a", "b", "c", "d"]), SETTINGS)


def test_size_type_and_empty_limits():
    with pytest.raises(ExtractionError, match="empty"):
        extract_file("empty.txt", b"", SETTINGS)
    with pytest.raises(ExtractionError, match=r"0.20 MB; the limit is 0.2 MB \(KNOWLEDGE_MAX_FILE_BYTES\)"):
        extract_file("big.txt", b"a" * 200_001, SETTINGS)
    with pytest.raises(ExtractionError, match="Supported: PDF, DOCX, TXT, Markdown, HTML, CSV, XLSX"):
        extract_file("photo.jpg", b"\xff\xd8", SETTINGS)
    with pytest.raises(ExtractionError, match="save it as DOCX or PDF"):
        extract_file("old.doc", b"\xd0\xcf\x11\xe0", SETTINGS)


def test_docx_headings_and_tables():
    d = docx.Document()
    d.add_heading("Условия", level=1)
    d.add_heading("Доставка", level=2)
    d.add_paragraph("Курьер привозит заказ на следующий день.")
    table = d.add_table(rows=3, cols=2)
    for r, (a, b) in enumerate([("Город", "Цена"), ("Москва", "0 ₽"), ("Тверь", "300 ₽")]):
        table.cell(r, 0).text, table.cell(r, 1).text = a, b
    d.add_heading("Оплата", level=2)
    d.add_paragraph("Картой или наличными.")
    buf = io.BytesIO()
    d.save(buf)
    sections = extract_file("terms.docx", buf.getvalue(), SETTINGS)
    assert sections[0].heading_path == ["terms", "Условия", "Доставка"]
    assert "Город: Москва; Цена: 0 ₽" in sections[0].text and "Город: Тверь; Цена: 300 ₽" in sections[0].text
    assert sections[1].heading_path == ["terms", "Условия", "Оплата"]


def test_markdown_and_encodings():
    md = "# Прайс\n\nТекст.\n\n## Скидки\n\nДо 10%.\n\nЗаголовок\n=========\n\nЕщё."
    sections = extract_file("a.md", md.encode("cp1251"), SETTINGS)
    assert [s.heading_path for s in sections] == [["a", "Прайс"], ["a", "Прайс", "Скидки"], ["a", "Заголовок"]]
    txt = extract_file("b.txt", "Строка один\nстрока два".encode("cp866"), SETTINGS)
    assert txt[0].text == "Строка один\nстрока два"


def test_xlsx_rows_with_headers_and_categories():
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Прайс-лист"])
    ws.append(["Артикул", "Наименование", "Цена"])
    ws.append(["ОБУВЬ", None, None])
    ws.append(["A-1", "Кроссовки", 4990])
    ws.append(["A-2", "Кеды", 2990.0])
    buf = io.BytesIO()
    wb.save(buf)
    rows = extract_file("prices.xlsx", buf.getvalue(), SETTINGS)
    assert [r.text for r in rows] == ["Артикул: A-1; Наименование: Кроссовки; Цена: 4990",
                                      "Артикул: A-2; Наименование: Кеды; Цена: 2990"]
    assert rows[0].heading_path == ["prices", "ОБУВЬ"] and rows[0].atomic
    csv_rows = extract_file("p.csv", "sku;name;price\n1;Мяч;100\n2;Сетка;50\n".encode("cp1251"), SETTINGS)
    assert csv_rows[1].text == "sku: 2; name: Сетка; price: 50"


def test_html_and_faq():
    html = ("<html><head><title>Магазин</title></head><body><nav>Меню Главная Каталог</nav><main>"
            "<h1>Доставка</h1><p>" + "Мы доставляем заказы по всей России за 2-5 дней. " * 5 + "</p>"
            "<h2>Самовывоз</h2><p>" + "Забрать заказ можно в пункте выдачи на Тверской улице. " * 4
            + "</p></main><footer>© 2026</footer></body></html>")
    sections = extract_html(html)
    assert any("доставляем" in s.text for s in sections)
    assert any(s.heading_path[-1:] == ["Самовывоз"] for s in sections)
    faq = extract_faq([{"question": "Есть рассрочка?", "answer": "Да, на 6 месяцев."}, {"question": "", "answer": "x"}])
    assert len(faq) == 1 and faq[0].text == "Есть рассрочка?\nДа, на 6 месяцев." and faq[0].atomic
    with pytest.raises(ExtractionError):
        extract_faq([])
