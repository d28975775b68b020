"""Uploads are hostile: a small file may unpack to gigabytes or keep a parser busy for hours.

Before parsing, a zip-based file (DOCX, XLSX) is checked by its unpacked size, its compression
ratio and its number of entries; PDFs are checked by page count in their extractor. Then every
parser runs in a child process under a time limit and a memory cap (`GuardedExtractor`): a
parser stuck on a crafted file is killed, not waited for, and the worker's memory is never the
one that fills up. One child serves many files (starting Python per file would cost more than
most parses); a killed or crashed child is replaced on the next file. Each refusal names the
limit it hit and the setting that changes it.
"""

from __future__ import annotations

import asyncio
import io
import multiprocessing
import resource
import threading
import zipfile
from multiprocessing.connection import Connection
from typing import Any

from core.ai.errors import ExtractionError
from core.ai.ingest.extract.base import Section
from core.config import KnowledgeSettings

ZIP_BASED = (".docx", ".xlsx")


def check_archive(filename: str, data: bytes, settings: KnowledgeSettings) -> None:
    """Refuse a zip-based upload that would unpack beyond the limits, before any parser opens it."""
    if not filename.lower().endswith(ZIP_BASED):
        return
    try:
        entries = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, ValueError) as exc:
        raise ExtractionError(f"the file is damaged or not a {filename.rsplit('.', 1)[-1].upper()} file ({exc})") from None
    if len(entries) > settings.max_archive_entries:
        raise ExtractionError(f"the file holds {len(entries)} parts; the limit is {settings.max_archive_entries} "
                              "(KNOWLEDGE_MAX_ARCHIVE_ENTRIES)", limit="max_archive_entries")
    unpacked = sum(e.file_size for e in entries)
    packed = max(1, sum(e.compress_size for e in entries))
    if unpacked > settings.max_unpacked_bytes:
        raise ExtractionError(f"the file unpacks to {unpacked / 1e6:.0f} MB; the limit is "
                              f"{settings.max_unpacked_bytes / 1e6:.0f} MB (KNOWLEDGE_MAX_UNPACKED_BYTES)",
                              limit="max_unpacked_bytes")
    if unpacked / packed > settings.max_compression_ratio:
        raise ExtractionError(f"the file is compressed {unpacked / packed:.0f} to 1, which only a zip bomb does; "
                              f"the limit is {settings.max_compression_ratio:g} (KNOWLEDGE_MAX_COMPRESSION_RATIO)",
                              limit="max_compression_ratio")


def _serve(conn: Connection, memory_bytes: int) -> None:
    """The child: parse what arrives, answer sections or an error, until the pipe closes."""
    if memory_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    from core.ai.ingest.extract import extract_file  # noqa: PLC0415 - imported in the child, after the cap

    while True:
        try:
            filename, data, settings, title = conn.recv()
        except EOFError:
            return
        try:
            conn.send(("ok", extract_file(filename, data, settings, title)))
        except ExtractionError as exc:
            conn.send(("refused", str(exc)))
        except MemoryError:
            conn.send(("refused", f"the file needs more than {memory_bytes / 1e6:.0f} MB to read "
                                  "(KNOWLEDGE_PARSE_MEMORY_BYTES)"))
        except Exception:  # noqa: BLE001 - a parser's own bug: reported as this file's failure
            conn.send(("refused", "the file cannot be read (it is damaged or not the format its name says)"))


class GuardedExtractor:
    """`extract_file` in a child process with a time limit and a memory cap."""

    _shared: dict[tuple, GuardedExtractor] = {}
    _shared_lock = threading.Lock()

    @classmethod
    def shared(cls, settings: KnowledgeSettings) -> GuardedExtractor:
        """The process's extractor for these settings (one child process, not one per service)."""
        key = tuple(sorted(settings.model_dump().items(), key=lambda kv: kv[0]))
        with cls._shared_lock:
            if key not in cls._shared:
                cls._shared[key] = cls(settings)
            return cls._shared[key]

    def __init__(self, settings: KnowledgeSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._child: Any = None
        self._conn: Connection | None = None

    def _start(self) -> Connection:
        # spawn, not fork: the worker has threads (event loop, encoders) a fork would copy mid-state.
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        self._child = ctx.Process(target=_serve, args=(child, self.settings.parse_memory_bytes),
                                  name="kommo-agent-parser", daemon=True)
        self._child.start()
        child.close()
        self._conn = parent
        return parent

    def _stop(self) -> None:
        if self._child is not None:
            self._child.kill()
            self._child.join(5)
        if self._conn is not None:
            self._conn.close()
        self._child = self._conn = None

    def extract(self, filename: str, data: bytes, title: str = "") -> list[Section]:
        """Blocking: call it from a worker thread. One file at a time per extractor."""
        check_archive(filename, data, self.settings)
        timeout = self.settings.parse_timeout_s
        with self._lock:
            conn = self._conn if self._child is not None and self._child.is_alive() else None
            if conn is None:
                self._stop()
                conn = self._start()
            try:
                conn.send((filename, data, self.settings, title))
                ready = conn.poll(timeout)
                outcome = conn.recv() if ready else None
            except (EOFError, OSError, BrokenPipeError):
                outcome = ("refused", "the file made the reader crash")
                self._stop()
            if outcome is None:
                self._stop()  # stuck on this file: kill it; the next file gets a fresh child
                raise ExtractionError(f"reading the file took longer than {timeout:g} s (KNOWLEDGE_PARSE_TIMEOUT_S)",
                                      limit="parse_timeout_s")
        kind, value = outcome
        if kind != "ok":
            raise ExtractionError(value)
        return value

    async def aextract(self, filename: str, data: bytes, title: str = "") -> list[Section]:
        return await asyncio.to_thread(self.extract, filename, data, title)

    def close(self) -> None:
        with self._lock:
            self._stop()
