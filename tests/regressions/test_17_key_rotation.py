"""Issue 17: running processes kept encrypting with the old primary key after a rotation, two
concurrent rotations lost one key (secrets re-encrypted under it became unreadable), and the key
file was written without fsync. Rotation now locks, writes atomically, and running processes
switch to the new primary without a restart; old envelopes stay readable."""

from __future__ import annotations

import json
import multiprocessing
import stat
from pathlib import Path

from core.security.keyring import KeyFile, load_keyring


def _rotate_many(path: str, times: int) -> None:
    for _ in range(times):
        KeyFile(Path(path)).add_primary()


def _read_many(path: str, times: int, bad: multiprocessing.Value) -> None:
    for _ in range(times):
        try:
            data = json.loads(Path(path).read_text())
            assert data["primary"] in data["keys"]
        except (ValueError, KeyError, AssertionError, FileNotFoundError):
            with bad.get_lock():
                bad.value += 1


def test_a_running_process_switches_to_the_new_primary_and_still_reads_old_secrets(tmp_path):
    path = tmp_path / "secrets.keys"
    running = load_keyring(None, path, create=True)  # as `up` starts a worker
    running.refresh_s = 0.0  # the check is rate-limited to once a second in production
    old = running.encrypt("org1", "access_token", "tok-old")
    first = running.primary
    _, new_kid = KeyFile(path).add_primary()  # `kommo-agent keys rotate` in another process
    fresh = running.encrypt("org1", "access_token", "tok-new")
    assert running.primary == new_kid != first and running.key_id_of(fresh) == new_kid
    assert running.decrypt("org1", "access_token", old) == "tok-old"
    assert load_keyring(None, path).decrypt("org1", "access_token", fresh) == "tok-new"


def test_concurrent_rotations_keep_every_key_and_readers_never_see_a_torn_file(tmp_path):
    path = tmp_path / "secrets.keys"
    KeyFile(path).load_or_create()
    ctx = multiprocessing.get_context("fork")
    bad = ctx.Value("i", 0)
    procs = [ctx.Process(target=_rotate_many, args=(str(path), 6)) for _ in range(3)]
    procs.append(ctx.Process(target=_read_many, args=(str(path), 400, bad)))
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    data = json.loads(path.read_text())
    assert len(data["keys"]) == 1 + 3 * 6  # no rotation lost another's key
    assert bad.value == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not list(tmp_path.glob("*.tmp"))  # no temp file left behind
