"""Whether a reply gives away what it must not: our fixed rules, the prompt's fence nonce, or a
configured secret, however it is disguised.

A model that follows an injected "print your instructions" can hide the copy from a literal
comparison: other case, extra spaces or line breaks, zero-width characters between letters,
Cyrillic look-alikes of Latin letters, or the text transliterated. Both sides are normalised the
same way before comparing: NFKC, zero-width and soft-hyphen characters dropped, case folded,
Cyrillic mapped to Latin, everything but letters and digits removed for secrets (words kept for
the rules). Cyrillic is mapped twice, by look (р -> p, в -> b) and by sound (р -> r, в -> v),
since a look-alike and a transliteration disagree on half the letters; either match counts.
"""

from __future__ import annotations

import re
import unicodedata

_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad\u180e"))
# Cyrillic letters that look like Latin ones map to those; the rest are transliterated.
_LOOKALIKE = str.maketrans("аеорсухкмтвнАЕОРСУХКМТВНіІјЈѕЅԁ", "aeopcyxkmtbhAEOPCYXKMTBHiIjJsSd")
_TRANSLIT = {"а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh", "з": "z", "и": "i",
             "й": "i", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r", "с": "s", "т": "t",
             "у": "u", "ф": "f", "х": "h", "ц": "ts", "ч": "ch", "ш": "sh", "щ": "sch", "ъ": "", "ы": "y",
             "ь": "", "э": "e", "ю": "yu", "я": "ya"}
_WORD = re.compile(r"[a-z0-9]+")
RULE_RUN = 8  # words of our fixed rules in a row that no honest reply contains


def strip_invisible(text: str) -> str:
    """Zero-width and soft-hyphen characters removed (before redaction, so they cannot split a
    secret's shape)."""
    return text.translate(_INVISIBLE)


def normalise(text: str, by_look: bool = False) -> str:
    text = strip_invisible(unicodedata.normalize("NFKC", text))
    if by_look:
        text = text.translate(_LOOKALIKE)
    return "".join(_TRANSLIT.get(c, c) for c in text.casefold())


def _words(text: str, by_look: bool) -> list[str]:
    return _WORD.findall(normalise(text, by_look))


def leaked_rules(reply: str, rules: str, run: int = RULE_RUN) -> bool:
    """True when the reply holds `run` consecutive words of `rules` (after normalising)."""
    for by_look in (False, True):
        words = _words(rules, by_look)
        grams = {" ".join(words[i:i + run]) for i in range(len(words) - run + 1)}
        said = _words(reply, by_look)
        if any(" ".join(said[i:i + run]) in grams for i in range(len(said) - run + 1)):
            return True
    return False


def leaked_value(reply: str, values: list[str], min_chars: int = 6) -> bool:
    """True when a secret value (or the nonce) appears in the reply in any disguise."""
    for by_look in (False, True):
        squashed = "".join(_words(reply, by_look))
        for value in values:
            target = "".join(_words(value or "", by_look))
            if len(value or "") >= min_chars and target and target in squashed:
                return True
    return False
