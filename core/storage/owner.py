"""One owner per embedded single-process store: an exclusive `flock` on a file in the data folder.

Qdrant Edge lets one process open a shard; a second opener gets a raw WAL error. So the process
that serves the store (the worker of `kommo-agent up`, or a CLI command without `up`) takes the
owner lock first and keeps it for as long as it holds the store; everyone else reads who holds
it and goes through that process instead. The lock is the kernel's, so it is released however
the owner ends (even SIGKILL); the file's text (pid, role) only says who it was.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from core.storage.errors import StoreBusy

LOCK_NAME = "owner.lock"


@dataclass(frozen=True)
class OwnerInfo:
    pid: int
    role: str

    def describe(self) -> str:
        return f"{self.role} (pid {self.pid})"


def lock_path(store_dir: Path) -> Path:
    return Path(store_dir) / LOCK_NAME


def _read(fd: int) -> OwnerInfo | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = json.loads(os.read(fd, 4096).decode() or "{}")
        return OwnerInfo(int(data["pid"]), str(data.get("role", "a process")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


class OwnerLock:
    """The held lock; `release()` (or process exit) frees it. Taken again in the same process
    (the worker holds it from start-up, its vector store takes it when it opens) it is shared:
    two flocks of one file from one process would block each other."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd
        self._users = 1

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        with _guard:
            self._users -= 1
            if self._users > 0 or self._fd is None:
                return
            _held.pop(self.path, None)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


_guard = threading.Lock()
_held: dict[Path, OwnerLock] = {}


def acquire(store_dir: Path, role: str) -> OwnerLock:
    """Take the store's owner lock or raise `StoreBusy` naming who holds it."""
    path = lock_path(store_dir).resolve()
    with _guard:
        mine = _held.get(path)
        if mine is not None:
            mine._users += 1
            return mine
        lock = _take(path, store_dir, role)
        _held[path] = lock
        return lock


def _take(path: Path, store_dir: Path, role: str) -> OwnerLock:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read(fd)
        os.close(fd)
        raise StoreBusy(f"the knowledge store in {store_dir} is in use by "
                        f"{holder.describe() if holder else 'another process'}",
                        pid=holder.pid if holder else None) from None
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, json.dumps({"pid": os.getpid(), "role": role}).encode())
    os.fsync(fd)
    return OwnerLock(path, fd)


def current_owner(store_dir: Path) -> OwnerInfo | None:
    """Who holds the store now (None: nobody). Only looks: never takes the lock for long."""
    path = lock_path(store_dir).resolve()
    if path in _held:
        return OwnerInfo(os.getpid(), "this process")
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read(fd) or OwnerInfo(0, "another process")
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
