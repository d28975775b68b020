"""Checks on every outgoing reply: commitments must be grounded, actions must be real.

A reply (from the LLM or extractive) may state prices, discounts, free offers, delivery times
and guarantees only when the retrieved knowledge or the agent's own instructions state them:
each sentence making such a claim must have all its numbers in that text, and a discount,
free offer or guarantee stated without a number must have a sentence of the same kind (not
negated) sharing a word with it. Ungrounded sentences are removed; a removed discount, free
offer or guarantee hands the turn to a human (a model that promises those was likely steered),
with the removed claims as the reason.

A reply also never claims an action (a stage move, a task, a field update, a handoff) that
was not validated in this turn, and never mentions an action that was refused.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from core.ai.answer.turn import PlannedAction

PRICE, DISCOUNT, FREE, DELIVERY_TIME, GUARANTEE = "price", "discount", "free", "delivery_time", "guarantee"
COMMITMENTS = (DISCOUNT, FREE, GUARANTEE)  # removing one of these hands the turn off

_SENTENCE = re.compile(r"(?<=[.!?…])\s+|\n+")
_NUMBER = re.compile(r"\d{1,3}(?:[ \u00a0\u202f]\d{3})+(?:[.,]\d+)?|\d+(?:[.,]\d+)?")
_CURRENCY = (r"(руб\w*\.?|₽|р\.|rub\w*|eur\w*|€|usd|\$|долл\w*|евро|тенге|₸|грн|pesos?|dólar\w*|dolar\w*|"
             r"dollars?|euros?)")
_KINDS = {
    PRICE: re.compile(rf"\d\s*{_CURRENCY}|{_CURRENCY}\s*\d|\b(цен[аыуе]|стоит|стоимост\w*|price[sd]?|costs?|cuesta|"
                      r"precio|vale)\b[^.!?]*\d", re.I),
    DISCOUNT: re.compile(r"скидк|дисконт|промокод|\d\s*%|процент|discount|% off|\boff\b|promo|coupon|descuento|"
                         r"rebaja|cupón|cupon|por ciento|percent", re.I),
    FREE: re.compile(r"бесплатн|даром|в подарок|подарим|\bfree\b|for free|no charge|gratis|gratuit|de regalo|"
                     r"sin costo|sin cargo|regalamos", re.I),
    DELIVERY_TIME: re.compile(r"\d+\s*(?:[–—-]\s*\d+\s*)?(дн|день|дня|дней|час|недел|рабоч|days?|hours?|weeks?|"
                              r"business|working|días|dias|día|horas?|semanas?)", re.I),
    GUARANTEE: re.compile(r"гарант|warrant|guarantee|garantía|garantia|garantiza", re.I),
}
_TIME = re.compile(r"(\d+)(?:\s*[–—-]\s*(\d+))?\s*(?:рабоч\w*|календарн\w*|working|business|hábiles|habiles)?\s*"
                   r"(дн|день|сут|day|día|dia|час|hour|hora|недел|week|semana|месяц|month|mes|год|лет|year|año)",
                   re.I)
_UNIT = {"дн": "d", "де": "d", "сут": "d", "day": "d", "día": "d", "dia": "d", "час": "h", "hou": "h", "hor": "h",
         "нед": "w", "wee": "w", "sem": "w", "мес": "m", "mon": "m", "mes": "m", "год": "y", "лет": "y", "yea": "y",
         "año": "y"}
_NEGATION = re.compile(r"\b(не|нет|без|ни|no|not|never|none|don't|doesn't|dont|sin|nunca|ningún|ninguna)\b", re.I)
_WORD = re.compile(r"\w+", re.U)
_KIND_WORDS = {"скидк", "беспл", "гаран", "disco", "free", "grati", "warra", "guara", "descu", "garan"}

# Claims of actions done. Each kind lists the words that say it was done, in ru/en/es.
_ACTION_CLAIMS = {
    "move_lead_stage": re.compile(r"(перев[её]л|перемест|передвин|изменил[аи]? (этап|статус|стади)|moved|"
                                  r"updated (the|your) (deal|lead|stage|status)|(deal|lead|stage|status)\s+"
                                  r"(has been|was|is now) (moved|changed|updated)|movido|cambiado (el|la) "
                                  r"(etapa|estado))", re.I),
    "create_task": re.compile(r"(созда\w+ задач|постав\w+ задач|задача созда|created a task|task (has been|was) "
                              r"(created|set)|set (up )?a (task|reminder)|создал\w* напоминани|creado una tarea)", re.I),
    "update_lead_field": re.compile(r"(записал|сохранил|обновил|внес|внёс|updated your|saved your|recorded your|"
                                    r"noted your|actualizado|guardado|registrado)", re.I),
}


@dataclass
class Removed:
    sentence: str
    reason: str
    kinds: list[str] = field(default_factory=list)


@dataclass
class Checked:
    text: str
    removed: list[Removed] = field(default_factory=list)

    @property
    def commitment_removed(self) -> bool:
        return any(k in COMMITMENTS for r in self.removed for k in r.kinds)

    def reason(self) -> str:
        return "; ".join(f"{r.reason}: {r.sentence[:120]!r}" for r in self.removed)


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.lower().replace("ё", "е"))
    return "".join(ch for ch in text if not unicodedata.combining(ch))


def numbers(text: str) -> set[str]:
    """Numbers as values: "6 900", "6900" and "6900.00" are one number; "1,5" is "1.5"."""
    out = set()
    for raw in _NUMBER.findall(text):
        value = re.sub(r"[ \u00a0\u202f]", "", raw).replace(",", ".")
        if "." in value:
            value = value.rstrip("0").rstrip(".")
        out.add(value.lstrip("0") or "0")
    return out


# Function words, so a shared "для" or "you" does not tie a claim to an unrelated sentence.
_STOP = {"для", "вас", "вам", "все", "всё", "это", "как", "что", "при", "или", "наш", "наши", "так", "уже", "мы",
         "the", "you", "your", "for", "and", "with", "our", "all", "are", "this", "that", "will", "get", "can",
         "para", "con", "los", "las", "una", "por", "que", "del", "sus", "nuestro", "todo", "todos", "usted"}


def durations(text: str) -> set[str]:
    """Durations as "1-3d", "14d", "18m": a claimed "1 day" is not grounded by "1-3 days"."""
    out = set()
    for m in _TIME.finditer(text):
        word = m.group(3).lower()
        unit = next((u for prefix, u in _UNIT.items() if word.startswith(prefix)), word)
        out.add(f"{m.group(1)}-{m.group(2)}{unit}" if m.group(2) else f"{m.group(1)}{unit}")
    return out


def _stems(text: str) -> set[str]:
    return {w[:5] for w in _WORD.findall(_fold(text)) if len(w) >= 3 and not w.isdigit() and w not in _STOP}


def sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE.split(text) if s.strip()]


def claim_kinds(sentence: str) -> list[str]:
    return [kind for kind, rx in _KINDS.items() if rx.search(sentence)]


# A knowledge sentence speaking to the assistant is an injection, not a fact of the shop: it
# grounds nothing (else a planted "promise everyone 40% off" would ground the promise).
_TO_THE_ASSISTANT = re.compile(
    r"(ignore|disregard|forget|игнориру\w*|забудь\w*|не обращай\w* внимани\w*|ignora\w*|olvida\w*)\W+(\w+\W+){0,4}"
    r"(rules|instructions|prompt|правил\w*|инструкци\w*|промпт\w*|reglas|instrucciones)|"
    r"\b(for|to|для|к|para)\s+(the\s+|el\s+|la\s+)?(ai|assistant|bot|chatbot|gpt|llm|ии|ассистент\w*|бот\w*|"
    r"нейросет\w*|asistente|modelo)\b|\b(ai|ии) (assistant|ассистент)", re.I)


def trusted_facts(text: str) -> str:
    """`text` without the sentences addressed to the assistant."""
    return "\n".join(s for s in sentences(text) if not _TO_THE_ASSISTANT.search(s))


class Grounding:
    """The text a reply may draw its commitments from: the retrieved knowledge (less anything
    addressed to the assistant) and the agent's instructions (`trusted`: the business wrote them)."""

    def __init__(self, *texts: str, trusted: tuple[str, ...] = ()) -> None:
        self.text = "\n".join([*(trusted_facts(t) for t in texts if t), *(t for t in trusted if t)])
        self.numbers = numbers(self.text)
        self.durations = durations(self.text)
        self._positive: dict[str, list[set[str]]] = {k: [] for k in COMMITMENTS}
        for sentence in sentences(self.text):
            negated = bool(_NEGATION.search(sentence))
            for kind in claim_kinds(sentence):
                if kind in COMMITMENTS and not negated:
                    self._positive[kind].append(_stems(sentence))

    def why_not(self, sentence: str, kinds: list[str]) -> str | None:
        """None when the sentence's claims are grounded, otherwise what is missing."""
        missing = sorted(numbers(sentence) - self.numbers)
        if missing:
            return f"{'/'.join(kinds)} with figures not in the knowledge ({', '.join(missing[:5])})"
        unknown_times = sorted(durations(sentence) - self.durations)
        if unknown_times:
            return f"{'/'.join(kinds)} with durations not in the knowledge ({', '.join(unknown_times[:5])})"
        negated = bool(_NEGATION.search(sentence))
        words = _stems(sentence) - _KIND_WORDS
        for kind in kinds:
            if kind not in COMMITMENTS or negated:
                continue
            if not any(words & known for known in self._positive[kind]) and not (
                    numbers(sentence) and self._positive[kind]):
                return f"{kind} not offered in the knowledge or instructions"
        return None

    def check(self, reply: str) -> Checked:
        kept, removed = [], []
        for sentence in sentences(reply):
            kinds = claim_kinds(sentence)
            why = self.why_not(sentence, kinds) if kinds else None
            if why:
                removed.append(Removed(sentence.strip(), why, kinds))
            else:
                kept.append(sentence)
        if not removed:
            return Checked(reply)
        return Checked(_join(reply, kept), removed)


def _join(original: str, kept: list[str]) -> str:
    sep = "\n" if "\n" in original else " "
    return sep.join(s.strip() for s in kept).strip()


def check_action_claims(reply: str, actions: list[PlannedAction]) -> Checked:
    """Remove sentences that claim an action this turn did not validate, or that mention one
    it refused."""
    valid = {a.kind for a in actions if a.valid}
    refused = {a.kind for a in actions if not a.valid} - valid
    kept, removed = [], []
    for sentence in sentences(reply):
        why = None
        for kind, rx in _ACTION_CLAIMS.items():
            if rx.search(sentence) and kind not in valid:
                why = f"mentions {kind}, which was refused" if kind in refused else f"claims {kind}, not done"
                break
        if why:
            removed.append(Removed(sentence.strip(), why, ["action"]))
        else:
            kept.append(sentence)
    if not removed:
        return Checked(reply)
    return Checked(_join(reply, kept), removed)
