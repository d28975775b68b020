"""The one language detector: ru, en, es or pt, cheap and offline, for customer messages (which
language to answer in), knowledge passages (which stemmer to index with, whether a question is
asked across languages) and people's interface language.

Cyrillic letters decide Russian. Among Latin-script languages, distinctive letters (ñ, ¿, ã, õ,
ç) and short function words score Spanish and Portuguese against English. Short or ambiguous
text falls back to the given default, which is the right guess for a greeting.
"""

from __future__ import annotations

import re

from core.models.agent import Agent, LanguagePolicy

SUPPORTED = ("ru", "en", "es", "pt")
NAMES = {"ru": "Russian", "en": "English", "es": "Spanish", "pt": "Portuguese"}
_WORD = re.compile(r"[a-záéíóúüñçãõâêôàè]+", re.I)
_STOP = {
    "en": {"the", "is", "are", "and", "you", "what", "how", "much", "do", "does", "i", "to", "of", "can",
           "it", "for", "my", "your", "have", "want", "price", "please", "hello", "hi", "thanks", "with", "in"},
    "es": {"el", "la", "los", "las", "es", "y", "que", "qué", "cómo", "como", "cuánto", "cuanto", "por",
           "para", "quiero", "hola", "gracias", "tiene", "tienen", "precio", "usted", "una", "del", "con",
           "está", "puedo", "necesito", "pero", "muy"},
    "pt": {"o", "os", "as", "é", "e", "que", "quanto", "custa", "para", "por", "quero", "olá", "ola",
           "obrigado", "obrigada", "tem", "vocês", "você", "uma", "do", "da", "dos", "com", "não", "preço",
           "posso", "preciso", "mas", "muito", "gostaria", "bom", "dia", "como", "está"},
}
_MARKS = {"es": set("ñ¿¡"), "pt": set("ãõç")}


def detect_language(text: str, default: str = "en") -> str:
    """`text`'s language among SUPPORTED; `default` when nothing decides (or on a tie it is in)."""
    default = default if default in SUPPORTED else "en"
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return default
    cyr = sum(1 for c in letters if "\u0400" <= c <= "\u04ff")
    if cyr / len(letters) > 0.3:
        return "ru"
    lowered = text.lower()
    words = _WORD.findall(lowered)
    scores = {lang: sum(1 for w in words if w in stop) for lang, stop in _STOP.items()}
    for lang, marks in _MARKS.items():
        scores[lang] += 2 * sum(1 for c in lowered if c in marks)
    best = max(scores, key=lambda k: scores[k])
    if scores[best] == 0:
        return default
    ties = [k for k, v in scores.items() if v == scores[best]]
    return default if len(ties) > 1 and default in ties else best


def normalise_code(code: str | None, default: str = "ru", supported: tuple[str, ...] = SUPPORTED) -> str:
    """A locale such as Telegram's `language_code` ("es-419", "pt-BR", None) as one of `supported`."""
    short = (code or "").split("-")[0].split("_")[0].lower()
    return short if short in supported else default


def reply_language(agent: Agent, customer_text: str) -> str:
    """The language to answer in under the agent's policy."""
    fixed = agent.language if agent.language in SUPPORTED else "en"
    if agent.language_policy == LanguagePolicy.FIXED:
        return fixed
    return detect_language(customer_text, default=fixed)
