"""The relevance floor: answer from the retrieved knowledge, or say it is not there.

Retrieval always returns its nearest chunks, and e5 similarities bunch up (a fridge question
over a stationery price list scores like a real one), so the nearest row is not evidence that
the shop sells the thing. The floor judges with the question's kind and two signals:

- *kind* (`question_kind`): small talk (greetings, thanks), product (price, availability,
  buying), policy (delivery, returns, payment, warranty, hours), or off-topic (anything else);
- *coverage*: the share of the question's content word stems (intent words such as "how much"
  or "price" removed) found in the best chunks' text, names and numbers included;
- *dense*: the best whole-chunk cosine, comparable across queries (`RetrievalResult.best_dense`).

A product question must name something the best rows contain (coverage), a policy question
may be answered on dense similarity alone, an off-topic question needs both. Small talk is
never answered from knowledge. The bars were tuned on the tuning half of the answer evaluation
(tests/data/answers_eval.jsonl, `split: tune`) and are reported on the held-apart half
(`kommo-agent eval answers`, bench/answers.py).
"""

from __future__ import annotations

import re
import unicodedata

from core.ai.types import RetrievalResult, Verdict

PRODUCT, POLICY, SMALL_TALK, OFF_TOPIC = "product", "policy", "small_talk", "off_topic"
# Bars (tuned on the tuning half, see the module docstring).
PRODUCT_COVERAGE = 0.5  # share of the question's content stems found in one of the best rows
PRODUCT_DENSE_ALONE = 0.9  # a product question with no word in common is answered only above this
POLICY_DENSE = 0.8
POLICY_COVERAGE = 0.34
OFF_TOPIC_COVERAGE = 0.6
OFF_TOPIC_DENSE = 0.82
TOP_CHUNKS = 3

_WORD = re.compile(r"\w+", re.U)
_SMALL_TALK = re.compile(
    r"^\W*(привет\w*|здравствуй\w*|добр\w+ (утро|день|вечер)|доброго \w+|хай|hi|hello|hey|hola|buen[oa]s? \w+|"
    r"спасибо|благодарю|thanks?( you)?|thank you|gracias|ok|ок|окей|пока|до свидания|bye|goodbye|adiós|adios|"
    r"как дела|how are you|qué tal|que tal|кто ты|who are you|как тебя зовут|what is your name)"
    r"(\W+\w+){0,3}\W*$", re.I)
_PRODUCT = re.compile(
    r"сколько|стои|цен[аыуе]|прайс|почём|почем|купить|заказать|есть ли|есть в наличии|в наличии|наличи|продаете|"
    r"продаёте|how much|price|cost|buy|in stock|do you (have|sell)|available|cuánto|cuanto|cuesta|precio|vale|"
    r"comprar|tienen|venden|hay\b", re.I)
_POLICY = re.compile(
    r"доставк|доставля|достав|возврат|вернуть|обмен|гарант|оплат|рассрочк|кредит|самовывоз|сборк|подъ[её]м|"
    r"скидк|акци|график|часы работы|работаете|адрес|шоурум|магазин|delivery|deliver|shipping|ship|return|refund|"
    r"exchange|warranty|guarantee|payment|pay\b|instal|pick ?up|assembly|discount|open|showroom|address|hours|"
    r"envío|envio|entrega|devoluci|devolver|garantía|garantia|pago|pagar|cuotas|montaje|descuento|horario|abiert|"
    r"dirección|direccion|tienda", re.I)
# Words that carry the question's intent, not what it is about: removed before coverage.
_INTENT = {
    "сколько", "стоит", "стоят", "стоимость", "цена", "цену", "цены", "почем", "почём", "купить", "заказать",
    "есть", "ли", "у", "вас", "в", "на", "и", "а", "по", "для", "с", "со", "к", "о", "об", "от", "до", "за", "из",
    "наличии", "продаете", "продаёте", "какая", "какой", "какие", "какое", "как", "что", "где", "когда", "можно",
    "мне", "нужен", "нужна", "нужно", "хочу", "подскажите", "скажите", "пожалуйста", "это", "вы", "ваш", "ваша",
    "how", "much", "is", "the", "a", "an", "of", "for", "do", "does", "you", "have", "sell", "price", "cost",
    "costs", "what", "whats", "i", "want", "to", "buy", "can", "in", "stock", "your", "please", "tell", "me",
    "are", "there", "any", "available", "and", "on", "with", "it", "that", "this", "get", "need", "much?",
    "cuánto", "cuanto", "cuesta", "cuestan", "precio", "el", "la", "los", "las", "un", "una", "de", "del", "en",
    "y", "que", "qué", "tienen", "venden", "hay", "por", "favor", "quiero", "comprar", "es", "su", "sus",
    "vale", "para", "con", "al", "lo",
}


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.lower().replace("ё", "е").replace("й", "и"))
    return "".join(ch for ch in text if not unicodedata.combining(ch))


def _stem(word: str) -> str:
    return word if word.isdigit() else word[:5]


def _weighted_stems(question: str) -> dict[str, float]:
    """The question's content stems with weights: a name (a capitalised word past the first, a
    Latin word in a Cyrillic question, a code with digits) weighs double, being what tells one
    product from another; a number of one or two digits ("iPhone 15", "5 kg") is dropped, as
    such numbers turn up in every price list."""
    weights: dict[str, float] = {}
    cyrillic = bool(re.search(r"[а-яё]", question, re.I))
    for n, m in enumerate(_WORD.finditer(question)):
        word = m.group()
        if word.lower() in _INTENT or (word.isdigit() and len(word) < 3) or (len(word) < 3 and not word.isdigit()):
            continue
        name = (word[:1].isupper() and n > 0) or (cyrillic and re.fullmatch(r"[A-Za-z][\w-]*", word) is not None) \
            or (any(c.isdigit() for c in word) and any(c.isalpha() for c in word))
        stem = _stem(_fold(word))
        weights[stem] = max(weights.get(stem, 0.0), 2.0 if name else 1.0)
    return weights


def content_stems(question: str) -> set[str]:
    return set(_weighted_stems(question))


def _text_stems(text: str) -> set[str]:
    return {_stem(w) for w in _WORD.findall(_fold(text))}


def question_kind(question: str) -> str:
    text = question.strip()
    if not _WORD.search(text) or _SMALL_TALK.match(text):
        return SMALL_TALK
    if _POLICY.search(text) and not re.search(r"сколько стоит|how much is|cuánto cuesta|price of|цена на", text, re.I):
        return POLICY
    if _PRODUCT.search(text):
        return PRODUCT
    return OFF_TOPIC


def coverage(question: str, result: RetrievalResult, top: int = TOP_CHUNKS) -> float:
    """The best (weighted) share of the question's content stems found in one of the top chunks."""
    wanted = _weighted_stems(question)
    total = sum(wanted.values())
    if not total:
        return 0.0
    best = 0.0
    for chunk in result.chunks[:top]:
        have = _text_stems(f"{chunk.heading}\n{chunk.text}")
        best = max(best, sum(w for stem, w in wanted.items() if stem in have) / total)
    return best


def judge(question: str, result: RetrievalResult) -> Verdict:
    kind = question_kind(question)
    if kind == SMALL_TALK:
        return Verdict(False, kind, "small talk: not a question for the knowledge base")
    if result.nothing_relevant or not result.chunks:
        return Verdict(False, kind, "nothing relevant in the knowledge base")
    cov = coverage(question, result)
    dense = result.best_dense if result.best_dense is not None else 1.0  # unknown: coverage decides
    signals = {"coverage": round(cov, 3), "dense": round(dense, 4), "fused": round(result.chunks[0].score, 4)}
    if kind == PRODUCT:
        ok = cov >= PRODUCT_COVERAGE or (not content_stems(question) and dense >= POLICY_DENSE) \
            or dense >= PRODUCT_DENSE_ALONE
        reason = "the best rows name what was asked" if ok else "no row names what was asked"
    elif kind == POLICY:
        ok = dense >= POLICY_DENSE or cov >= POLICY_COVERAGE
        reason = "the knowledge covers the topic" if ok else "the topic is not in the knowledge base"
    else:
        ok = cov >= OFF_TOPIC_COVERAGE and dense >= OFF_TOPIC_DENSE
        reason = "the knowledge matches the question" if ok else "off-topic for the knowledge base"
    return Verdict(ok, kind, reason, signals)
