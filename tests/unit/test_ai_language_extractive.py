"""Language detection and the no-LLM extractive phrasing."""

from __future__ import annotations

import pytest

from core.ai.answer.extractive import excerpt, extractive_answer
from core.ai.answer.memory import roll_summary
from core.ai.encoders.sparse import SparseEncoder
from core.ai.language import detect_language, normalise_code, reply_language
from core.ai.types import RetrievalResult, RetrievedChunk
from core.models.agent import Agent, LanguagePolicy
from core.models.conversation import Message


@pytest.mark.parametrize("text,lang", [
    ("Сколько стоит доставка в Казань?", "ru"),
    ("How much does delivery cost?", "en"),
    ("¿Cuánto cuesta el envío a Madrid?", "es"),
    ("Quanto custa a entrega? Obrigado", "pt"),
    ("Hola, quiero saber el precio", "es"),
    ("Olá, gostaria de saber o preço", "pt"),
    ("Привет", "ru"),
])
def test_detect_language(text, lang):
    assert detect_language(text) == lang


def test_interface_locales_map_to_the_same_codes():
    assert normalise_code("es-419") == "es" and normalise_code("pt_BR") == "pt" and normalise_code("EN") == "en"
    assert normalise_code(None) == "ru" and normalise_code("de", default="en") == "en"
    assert normalise_code("pt-BR", supported=("ru", "en", "es"), default="en") == "en"


def test_keyword_index_uses_the_same_detector_and_codes():
    """The stemmer follows the one detector: a Spanish and an English form of one sentence are
    stemmed by their own language, and a pinned language is given as a code."""
    auto, pinned = SparseEncoder(), SparseEncoder("es")
    text = "¿Cuánto cuestan los envíos a Madrid?"
    assert auto.encode_query(text) == pinned.encode_query(text)
    assert auto.encode_query("How much does shipping cost?") == SparseEncoder("en").encode_query(
        "How much does shipping cost?")
    with pytest.raises(ValueError):
        SparseEncoder("spanish")


def test_reply_language_policy():
    agent = Agent(_id="a", org_id="o", name="A", language="es")
    assert reply_language(agent, "Сколько стоит?") == "ru"
    assert reply_language(agent, "👍") == "es"  # nothing to detect: the agent's language
    agent.language_policy = LanguagePolicy.FIXED
    assert reply_language(agent, "How much?") == "es"


DELIVERY = RetrievedChunk(
    "s1", "Условия доставки", 0, "Доставка",
    "Мы работаем с 2010 года и любим своих клиентов. " * 6 +
    "Доставка по Москве занимает 1-2 дня и стоит 500 рублей. Доставка по России — от 3 до 7 дней. "
    + "Наш шоурум открыт ежедневно. " * 10, 0.8)
PRICES = RetrievedChunk(
    "s2", "Прайс-лист", 3, "",
    "Наименование: Диван Осло; Цена: 45000 руб.; Артикул: D-100\n"
    "Наименование: Кресло Берген; Цена: 15000 руб.; Артикул: K-200\n"
    "Наименование: Стол Рига; Цена: 9000 руб.; Артикул: T-300", 0.7)


def test_extractive_picks_relevant_sentences_within_limit():
    answer = extractive_answer("Сколько стоит доставка по Москве?", RetrievalResult([DELIVERY], False), "ru")
    assert not answer.handoff and answer.used == [DELIVERY]
    assert answer.text.startswith("Вот что я нашёл в наших материалах")
    assert "Доставка по Москве занимает 1-2 дня и стоит 500 рублей." in answer.text
    assert "Источник: Условия доставки — Доставка." in answer.text
    assert len(answer.text) < 1000


def test_extractive_renders_price_rows():
    answer = extractive_answer("How much is the Berger armchair? Кресло Берген", RetrievalResult([PRICES], False), "en")
    assert answer.text.startswith("Here is what I found in our materials")
    assert answer.text.splitlines()[2] == "• Кресло Берген — 15000 руб."  # no internal code unless asked
    assert "Source: Прайс-лист." in answer.text


@pytest.mark.parametrize("lang,start", [("ru", "Спасибо"), ("en", "Thank you"), ("es", "¡Gracias"), ("pt", "Obrigado")])
def test_extractive_hands_off_when_nothing_relevant(lang, start):
    answer = extractive_answer("?", RetrievalResult([PRICES], nothing_relevant=True), lang)
    assert answer.handoff and answer.text.startswith(start) and not answer.used


def test_excerpt_cuts_at_sentence_boundary():
    text = excerpt("шоурум", DELIVERY, limit=120)
    assert len(text) <= 125 and text.rstrip(" …").endswith(".")


def test_roll_summary_keeps_newest_lines():
    msgs = [Message(_id=f"m{i}", org_id="o", conversation_id="c", role="customer", text=f"question {i} " * 30)
            for i in range(30)]
    summary = roll_summary("", msgs, max_tokens=200)
    assert "question 29" in summary and "question 0 " not in summary


def test_roll_summary_is_idempotent():
    msgs = [Message(_id=f"m{i}", org_id="o", conversation_id="c", role="agent", text=f"answer {i}") for i in range(3)]
    once = roll_summary("", msgs)
    assert roll_summary(once, msgs) == once
