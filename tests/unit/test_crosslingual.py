"""The cross-lingual encoder (bundled USE multilingual v3) and its word-vector cache."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from core.ai.encoders.crosslingual import DIM, CrossLingualEncoder, WordVectors, question_words, words


@pytest.fixture(scope="module")
def encoder() -> CrossLingualEncoder:
    return CrossLingualEncoder()


def test_words_are_distinct_lowercased_letters_only():
    assert words("Шкала Saffir-Simpson, шкала 1-5 и ИВК!") == ["шкала", "saffir", "simpson", "ивк"]
    assert question_words("Что измеряет шкала ИВК?") == ["измеряет", "шкала"]


def test_sentence_vectors_match_across_languages(encoder):
    ru, en, other = encoder.encode(["Ураган разрушил дома на побережье.", "The hurricane destroyed houses on the coast.",
                                    "The Panthers scored 24 points in the final game."])
    assert ru.shape == (DIM,) and np.linalg.norm(ru) == pytest.approx(1.0, abs=1e-4)
    assert float(ru @ en) > float(ru @ other) + 0.2


async def test_word_alignment_finds_the_passage_that_shares_meaning_not_script(encoder):
    passages = ["Jacksonville has suffered less damage from hurricanes than most other east coast cities; "
                "their strength is measured on the Saffir-Simpson scale.",
                "The Panthers defense gave up just 308 points, ranking sixth in the league.",
                ""]
    scores = await encoder.align("Как называется шкала, которую используют для измерения силы урагана?", passages)
    assert scores[0] > scores[1] + 0.05
    assert scores[2] == 0.0  # a passage without words
    assert await encoder.align("Что это?", passages) == [0.0, 0.0, 0.0]  # no content words in the question


def _fake_encode(calls: list[list[str]]):
    def encode(batch):
        calls.append(list(batch))
        out = np.stack([np.random.default_rng(zlib.crc32(w.encode())).normal(size=DIM) for w in batch])
        return out / np.linalg.norm(out, axis=1, keepdims=True)
    return encode


def test_word_cache_encodes_each_word_once_and_stays_bounded():
    calls: list[list[str]] = []
    cache = WordVectors(_fake_encode(calls), capacity=4)
    first = cache.vectors(["a", "b", "a"])
    assert first.shape == (3, DIM) and np.allclose(first[0], first[2], atol=1e-3)
    assert cache.vectors(["b", "c"]).shape == (2, DIM)
    assert calls == [["a", "b"], ["c"]]  # "b" came from the cache
    again = cache.vectors(["d", "e"])  # 3 held + 2 new > 4: the cache starts over with the batch
    assert calls[-1] == ["d", "e"] and len(cache) == 2
    assert np.allclose(again[0], _fake_encode([])(["d"])[0], atol=1e-3)  # float16 rows, close enough
    wide = cache.vectors(["v", "w", "x", "y", "z", "v"])  # more than the cache holds: encoded, not kept
    assert wide.shape == (6, DIM) and np.allclose(wide[0], wide[5]) and len(cache) == 2
