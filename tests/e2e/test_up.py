"""`kommo-agent up` from nothing: readiness, clean stop on SIGINT, data kept across restarts,
and clear messages when a port is taken or a child dies."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from core.storage.embedded import free_port

pytestmark = pytest.mark.timeout(240)


def _env(tmp: Path, ports: dict[str, int]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MONGO_", "REDIS_", "QDRANT_", "LLM_", "TELEGRAM_", "SECRETS_", "WEB_"))}
    env.update(KOMMO_AGENT_HOME=str(tmp), DATA_DIR=str(tmp / "var"), MONGO_EMBEDDED_PORT=str(ports["mongo"]),
               REDIS_EMBEDDED_PORT=str(ports["redis"]), WEB_PORT=str(ports["web"]), LOG_LEVEL="WARNING")
    return env


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "cli", *args]


def _start(tmp: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(_cli("up", "--ready-timeout", "90"), cwd=tmp, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _wait_line(proc: subprocess.Popen, needle: str, timeout: float = 100) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        lines.append(line.rstrip())
        if needle in line:
            return lines
    raise AssertionError(f"{needle!r} not seen; output:\n" + "\n".join(lines[-40:]))


def _wait_ready_sources(tmp: Path, env: dict[str, str], org: str, expected: int, timeout: float = 180) -> list[str]:
    """The demo agent's sources once the stack's worker has indexed all of them."""
    deadline = time.monotonic() + timeout
    while True:
        listed = subprocess.run(_cli("knowledge", "list", "--org", org, "--agent", "Anna"), cwd=tmp, env=env,
                                capture_output=True, text=True, timeout=60)
        assert listed.returncode == 0, listed.stderr
        rows = [line.split("\t") for line in listed.stdout.splitlines()]
        if len(rows) == expected and all(r[1] == "ready" for r in rows):
            return rows
        assert not any(r[1] == "failed" for r in rows), listed.stdout
        assert time.monotonic() < deadline, f"demo knowledge not ready: {listed.stdout}"
        time.sleep(2)


def _stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    return out


def _pids_alive(lines: list[str]) -> list[int]:
    pids = [int(line.split("(pid ")[1].rstrip(")")) for line in lines if "(pid " in line]
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
            alive.append(pid)
        except ProcessLookupError:
            pass
    return alive


@pytest.mark.timeout(480)  # the worker indexes the demo's knowledge meanwhile
def test_up_from_nothing_ready_stop_and_restart(tmp_path: Path):
    ports = {"mongo": free_port(), "redis": free_port(), "web": free_port()}
    env = _env(tmp_path, ports)
    proc = _start(tmp_path, env)
    try:
        lines = _wait_line(proc, "Press Ctrl-C to stop.")
        with urllib.request.urlopen(f"http://127.0.0.1:{ports['web']}/readyz", timeout=5) as resp:
            assert resp.status == 200 and json.load(resp)["status"] == "ready"
        assert any(f"mongodb://127.0.0.1:{ports['mongo']}/" in line for line in lines)
        assert any("TELEGRAM_BOT_TOKEN" in line for line in lines)
        # A fresh installation gets the demo shop, and is told what to do next.
        (demo,) = [line for line in lines if line.startswith("Demo created")]
        demo_org = re.search(r"\((org_\w+)\)", demo).group(1)
        assert any("kommo-agent chat" in line for line in lines)
        assert any("kommo delivery" in line for line in lines) and any("doctor" in line for line in lines)
        sources = _wait_ready_sources(tmp_path, env, demo_org, expected=8)
        assert len(sources) == 8
        created = subprocess.run(_cli("org", "create", "Acme"), cwd=tmp_path, env=env, capture_output=True,
                                 text=True, timeout=60)
        assert created.returncode == 0, created.stderr
        org_id = created.stdout.strip()
        assert org_id.startswith("org_")
    finally:
        out = _stop(proc)
    assert proc.returncode == 0, out
    assert "stopped." in out
    assert _pids_alive(lines) == []
    key_file = tmp_path / "var" / "secrets.keys"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"

    proc = _start(tmp_path, env)
    try:
        _wait_line(proc, "Press Ctrl-C to stop.")
        listed = subprocess.run(_cli("org", "list", "--json"), cwd=tmp_path, env=env, capture_output=True,
                                text=True, timeout=60)
        assert sorted(o["id"] for o in json.loads(listed.stdout)) == sorted([demo_org, org_id])
    finally:
        out = _stop(proc)
    assert "Demo created" not in out  # once per installation


def test_up_names_a_taken_port_and_a_dead_child(tmp_path: Path):
    ports = {"mongo": free_port(), "redis": free_port(), "web": free_port()}
    env = _env(tmp_path, ports)
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", ports["web"]))
    blocker.listen()
    try:
        taken = subprocess.run(_cli("up"), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    finally:
        blocker.close()
    assert taken.returncode == 1
    assert f"port {ports['web']} for the web app is already taken" in taken.stdout

    proc = _start(tmp_path, env)
    lines = _wait_line(proc, "Press Ctrl-C to stop.")
    worker_pid = next(int(line.split("(pid ")[1].rstrip(")")) for line in lines if line.strip().startswith("worker"))
    os.kill(worker_pid, signal.SIGKILL)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "worker exited with code -9" in out
    assert _pids_alive(lines) == []
