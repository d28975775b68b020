"""A keyword signal that survives a change of language: names and numbers.

BM25 over stemmed words is useless when a Russian question meets English passages, but such a
question still carries numbers ("1995", "308") and names, written in Cyrillic ("Джареда Аллена")
where the passage has Latin ("Jared Allen"). Both sides are reduced to a rough phonetic skeleton
(transliterated, a few spelling equivalences folded, doubled letters squeezed) and names are
compared by character-trigram Dice, which also absorbs Russian case endings ("allena" ~ "allen").

`entity_overlap(question, passage)` is computed on the few candidates of one query (it needs
no index), and the retriever adds it to the fused score with a small weight.
"""

from __future__ import annotations

import re
from functools import lru_cache

_TRANSLIT = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh", "з": "z", "и": "i",
    "й": "i", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r", "с": "s", "т": "t",
    "у": "u", "ф": "f", "х": "h", "ц": "ts", "ч": "ch", "ш": "sh", "щ": "sh", "ъ": "", "ы": "y", "ь": "",
    "э": "e", "ю": "yu", "я": "ya",
}
_FOLD = (("dzh", "j"), ("zh", "j"), ("kh", "h"), ("ph", "f"), ("th", "t"), ("ck", "k"), ("sch", "sh"),
         ("tz", "ts"), ("c", "k"), ("q", "k"), ("w", "v"), ("x", "ks"), ("y", "i"), ("ee", "i"),
         ("oo", "u"), ("ou", "u"))
_TOKEN = re.compile(r"[0-9]+(?:[.,][0-9]+)?|[A-Za-zÀ-ÿ]+|[А-Яа-яЁё]+")
_DOUBLE = re.compile(r"(.)\1+")
MIN_NAME_SIMILARITY = 0.5


def skeleton(word: str) -> str:
    """Latin phonetic skeleton of a word in either script: 'Джаред' -> 'jared', 'Jared' -> 'jared'."""
    w = "".join(_TRANSLIT.get(c, c) for c in word.lower())
    for a, b in _FOLD:
        w = w.replace(a, b)
    return _DOUBLE.sub(r"\1", w)


def _trigrams(s: str) -> frozenset[str]:
    s = f"^{s}$"
    return frozenset(s[i:i + 3] for i in range(len(s) - 2))


@lru_cache(maxsize=4096)
def entities(text: str, skip_first: bool = False) -> tuple[frozenset[str], tuple[frozenset[str], ...]]:
    """(numbers, trigram sets of capitalised words) of `text`. `skip_first` drops the first word,
    which in a question is usually a capitalised question word rather than a name."""
    numbers: set[str] = set()
    names: dict[str, frozenset[str]] = {}
    for n, match in enumerate(_TOKEN.finditer(text)):
        token = match.group()
        if n == 0 and skip_first and not token[0].isdigit():
            continue
        if token[0].isdigit():
            numbers.add(token.replace(",", "."))
        elif token[0].isupper() and len(token) >= 3:
            sk = skeleton(token)
            names.setdefault(sk, _trigrams(sk))
    return frozenset(numbers), tuple(names.values())


def entity_overlap(question: str, passage: str) -> float:
    """How many of the question's numbers and names the passage contains (names count by their
    best trigram Dice with any capitalised word of the passage, if at least 0.5)."""
    q_numbers, q_names = entities(question, skip_first=True)
    if not q_numbers and not q_names:
        return 0.0
    p_numbers, p_names = entities(passage)
    score = float(len(q_numbers & p_numbers))
    for q in q_names:
        best = 0.0
        for p in p_names:
            dice = 2 * len(q & p) / (len(q) + len(p))
            best = max(best, dice)
        if best >= MIN_NAME_SIMILARITY:
            score += best
    return score
