"""`kommo-agent knowledge` without `up` (issue 23): the command starts this home's embedded
servers in their own session and opens the store itself. Ctrl-C during an ingestion ends it as
`failed: interrupted` (the embedded MongoDB, out of the terminal's reach, takes that last write),
re-adding it then completes, a file that cannot be parsed leaves no source, and unknown ids or
names are errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.storage.embedded import free_port

pytestmark = pytest.mark.timeout(600)
ROOT = Path(__file__).resolve().parents[2]
CLEARED = ("MONGO_", "REDIS_", "QDRANT_", "LLM_", "TELEGRAM_", "SECRETS_", "WEB_", "KOMMO_", "DATA_DIR", "KNOWLEDGE_")


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    folder = tmp_path_factory.mktemp("inline-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(CLEARED)}
    env.update(PYTHONPATH=str(ROOT), KOMMO_AGENT_HOME=str(folder), MONGO_EMBEDDED_PORT=str(free_port()),
               REDIS_EMBEDDED_PORT=str(free_port()), LLM_API_KEY="", KNOWLEDGE_CROSS_LINGUAL="false")
    return folder, env


def _run(env, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def _ok(env, *args: str) -> str:
    done = _run(env, *args)
    assert done.returncode == 0, f"{args}: {done.stderr}"
    assert "Traceback" not in done.stderr
    return done.stdout


def test_ctrl_c_ends_an_inline_ingestion_interrupted_and_bad_input_leaves_nothing(home, tmp_path: Path):
    folder, env = home
    org = _ok(env, "org", "create", "Inline shop").strip()
    agent = _ok(env, "agent", "create", "--org", org, "--name", "Ivan").strip()

    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4 this is not really a pdf")
    failed = _run(env, "knowledge", "add", "--org", "Inline shop", "--agent", "Ivan", str(broken))
    assert failed.returncode == 1 and "error: broken.pdf:" in failed.stderr
    assert "nothing was added" in failed.stderr and "Traceback" not in failed.stderr
    assert _ok(env, "knowledge", "list", "--org", org, "--agent", agent) == ""

    rows = ["sku,name,price"] + [f"B{i:05d},Kitchen table model {i},{200 + i}" for i in range(400)]
    table = tmp_path / "tables.csv"
    table.write_text("\n".join(rows) + "\n")
    adding = subprocess.Popen([sys.executable, "-m", "cli", "knowledge", "add", "--org", org, "--agent", agent,
                               str(table)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen = b""
    deadline = time.monotonic() + 240
    while b"indexing tables.csv" not in seen and time.monotonic() < deadline:
        seen += adding.stderr.read1(4096)
    adding.send_signal(signal.SIGINT)
    out, err = adding.communicate(timeout=60)
    err = (seen + err).decode(errors="replace")
    assert adding.returncode == 130, err
    assert "Traceback" not in err and err.rstrip().endswith("interrupted")
    listed = _ok(env, "knowledge", "list", "--org", org, "--agent", agent)
    [line] = listed.splitlines()
    assert line.split("\t")[1] == "failed" and line.endswith("\tinterrupted")

    again = _run(env, "knowledge", "add", "--org", org, "--agent", agent, str(table))
    assert again.returncode == 0, again.stderr
    listed = _ok(env, "knowledge", "list", "--org", org, "--agent", agent)
    [line] = listed.splitlines()
    assert line.split("\t")[:2] == [again.stdout.strip(), "ready"]
    same = _run(env, "knowledge", "add", "--org", org, "--agent", agent, str(table))
    assert same.returncode == 0 and "already added" in same.stderr


def test_unknown_ids_and_names_are_errors(home):
    _folder, env = home
    org = _ok(env, "org", "create", "Names shop").strip()
    for args, needle in (
            (("knowledge", "list", "--org", org, "--agent", "agt_nope"), "error: no agent agt_nope"),
            (("knowledge", "list", "--org", "org_nope", "--agent", "agt_nope"), "error: no organisation org_nope"),
            (("knowledge", "list", "--org", "No such shop", "--agent", "x"), "error: no organisation No such shop"),
            (("agent", "list", "--org", "Names shop", "--bogus"), "error: No such option '--bogus'"),
            (("knowledge", "remove", "--org", org, "src_nope"), "error: no source src_nope")):
        done = _run(env, *args)
        assert done.returncode != 0 and done.stderr.startswith(needle), (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert "Organisation: its id or its name" in _ok(env, "knowledge", "add", "--help")
    bad = subprocess.run([sys.executable, "-m", "cli", "org", "create", os.fsdecode(b"shop\xff")], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.startswith("error: argument 3 is not valid UTF-8")
    leaky = {**env, "MONGO_URL": "mongodb://admin:hunter2secret@127.0.0.1:1/",
             "MONGO_SERVER_SELECTION_TIMEOUT_MS": "300"}
    unreachable = _run(leaky, "org", "list")
    assert unreachable.returncode == 1 and unreachable.stderr.startswith("error: cannot reach MongoDB at ")
    assert "hunter2secret" not in unreachable.stderr and "admin:***@" in unreachable.stderr


def test_a_pdf_pypdf_complains_about_is_added_without_its_warnings_on_the_terminal(home, tmp_path: Path):
    from fpdf import FPDF  # noqa: PLC0415 - a test dependency, only here

    _folder, env = home
    org = _ok(env, "org", "create", "Pdf shop").strip()
    agent = _ok(env, "agent", "create", "--org", org, "--name", "Pia").strip()
    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    pdf.add_page()
    pdf.multi_cell(0, 8, "Delivery costs 5 euros and takes two days.")
    data = bytes(pdf.output())
    # A wrong startxref offset: pypdf recovers, and says so on stderr unless told otherwise.
    data = data[:data.rfind(b"startxref")] + b"startxref\n999999\n%%EOF\n"
    (tmp_path / "terms.pdf").write_bytes(data)
    done = _run(env, "knowledge", "add", "--org", org, "--agent", agent, str(tmp_path / "terms.pdf"))
    assert done.returncode == 0, done.stderr
    assert "startxref" not in done.stderr and "Object Streams" not in done.stderr
    assert "ready: 1 chunks" in done.stderr


def _processes_with(home: Path) -> list[int]:
    mark = f"KOMMO_AGENT_HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and mark in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc to find the servers")
def test_a_killed_command_takes_its_servers_along_and_its_source_is_swept(tmp_path: Path):
    home = tmp_path / "killed-home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(CLEARED)}
    env.update(PYTHONPATH=str(ROOT), KOMMO_AGENT_HOME=str(home), MONGO_EMBEDDED_PORT=str(free_port()),
               REDIS_EMBEDDED_PORT=str(free_port()), LLM_API_KEY="", KNOWLEDGE_CROSS_LINGUAL="false")
    org = _ok(env, "org", "create", "Killed shop").strip()
    agent = _ok(env, "agent", "create", "--org", org, "--name", "Kim").strip()
    table = tmp_path / "chairs.csv"
    table.write_text("sku,name\n" + "".join(f"C{i},Chair {i}\n" for i in range(400)))
    adding = subprocess.Popen([sys.executable, "-m", "cli", "knowledge", "add", "--org", org, "--agent", agent,
                               str(table)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen = b""
    deadline = time.monotonic() + 240
    while b"[" not in seen and time.monotonic() < deadline:  # the bar: embedding has begun
        seen += adding.stderr.read1(4096)
    adding.kill()  # no chance to clean up: only the kernel and the sweep are left
    adding.wait(10)
    deadline = time.monotonic() + 10
    while _processes_with(home) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_with(home) == []  # its nx-27017 and Redis died with it
    listed = _ok(env, "knowledge", "list", "--org", org, "--agent", agent)
    [line] = listed.splitlines()
    assert line.split("\t")[1] == "failed" and line.endswith("\tinterrupted")


def test_kommo_connect_without_up_starts_the_redis_it_needs(home, tmp_path: Path):
    _folder, env = home
    fake = subprocess.Popen([sys.executable, "-m", "tests.fakes.kommo", "--port", str(free_port()),
                             "--subdomain", "inline-shop"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        info = json.loads(fake.stdout.readline())
        org = _ok(env, "org", "create", "Connect shop").strip()
        (tmp_path / "token").write_text(info["token"])
        connected = _run({**env, "KOMMO_API_BASE_URL": info["base_url"]}, "kommo", "connect", "--org", org,
                         "--subdomain", "inline-shop", "--token-file", str(tmp_path / "token"))
        assert connected.returncode == 0, connected.stderr
        assert connected.stdout.startswith("connected: inline-shop")
        assert "Traceback" not in connected.stderr and "ConnectionError" not in connected.stderr
    finally:
        fake.terminate()
        fake.wait(10)
