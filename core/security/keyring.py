"""AES-GCM keyring with key ids.

A ciphertext is bound to its owner: the associated data is `org_id|field`, so a token copied
into another organisation's document (or another field) fails to decrypt. Envelopes are
strings `v1.<key id>.<nonce>.<ciphertext>` (base64url), so the key that made one is known and
rotation can re-encrypt under the newest key while old keys still decrypt.

A key file is changed only under an exclusive lock on its `.lock` companion (so two rotations
cannot both add a key and lose one) and written atomically (temp file, fsync, rename, fsync of
the folder). Running processes notice a rotated file within `REFRESH_S` and encrypt with the new
primary from then on, without a restart.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import secrets
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core.errors import ConfigurationError, SecretError

_VERSION = "v1"
REFRESH_S = 1.0  # how stale a process's view of a key file may get


def _b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _owner(org_id: str, field_name: str) -> bytes:
    return f"{org_id}|{field_name}".encode()


@dataclass(repr=False)
class Keyring:
    """Master keys by id; `primary` encrypts, every key decrypts."""

    keys: dict[str, bytes]
    primary: str
    # Another process may rotate keys: on an unknown key id, re-read the key source once.
    reloader: Callable[[], Keyring] | None = None
    # What identifies the key source's current version (a key file's inode, size, mtime); when it
    # changes, the next encryption re-reads the source and takes its primary.
    stamp: Callable[[], object] | None = None
    refresh_s: float = REFRESH_S
    _ciphers: dict[str, AESGCM] = field(default_factory=dict, init=False)
    _seen: object = field(default=None, init=False)
    _checked_at: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        if self.primary not in self.keys:
            raise ConfigurationError(f"primary key id {self.primary!r} is not in the keyring")
        for kid, key in self.keys.items():
            if "." in kid or not kid:
                raise ConfigurationError(f"key id {kid!r} must be non-empty and contain no dots")
            if len(key) != 32:
                raise ConfigurationError(f"key {kid!r} must be 32 bytes (AES-256)")
            self._ciphers[kid] = AESGCM(key)

    def __repr__(self) -> str:  # never print key material
        return f"Keyring(primary={self.primary!r}, key_ids={sorted(self.keys)!r})"

    def _adopt(self, fresh: Keyring, primary: bool) -> None:
        for new_kid, key in fresh.keys.items():
            self.keys.setdefault(new_kid, key)
            self._ciphers.setdefault(new_kid, AESGCM(key))
        if primary:
            self.primary = fresh.primary

    def _refresh_if_rotated(self) -> None:
        if self.stamp is None or self.reloader is None:
            return
        now = time.monotonic()
        if now - self._checked_at < self.refresh_s:
            return
        self._checked_at = now
        current = self.stamp()
        if self._seen is None:
            self._seen = current
        elif current != self._seen:
            self._adopt(self.reloader(), primary=True)
            self._seen = current

    def encrypt(self, org_id: str, field_name: str, plaintext: str) -> str:
        self._refresh_if_rotated()
        nonce = os.urandom(12)
        ct = self._ciphers[self.primary].encrypt(nonce, plaintext.encode(), _owner(org_id, field_name))
        return ".".join((_VERSION, self.primary, _b64e(nonce), _b64e(ct)))

    def decrypt(self, org_id: str, field_name: str, envelope: str) -> str:
        try:
            version, kid, nonce, ct = envelope.split(".")
        except (AttributeError, ValueError):
            raise SecretError("not a secret envelope") from None
        if version != _VERSION:
            raise SecretError(f"unsupported envelope version {version!r}")
        cipher = self._ciphers.get(kid)
        if cipher is None and self.reloader is not None:
            self._adopt(self.reloader(), primary=False)
            cipher = self._ciphers.get(kid)
        if cipher is None:
            raise SecretError(f"secret was encrypted with unknown key id {kid!r}")
        try:
            return cipher.decrypt(_b64d(nonce), _b64d(ct), _owner(org_id, field_name)).decode()
        except (InvalidTag, ValueError):
            raise SecretError("secret does not belong to this owner or was tampered with") from None

    def key_id_of(self, envelope: str) -> str:
        return envelope.split(".")[1]

    def with_new_primary(self) -> tuple[Keyring, str]:
        kid = f"k{len(self.keys) + 1}-{secrets.token_hex(3)}"
        keys = {**self.keys, kid: AESGCM.generate_key(bit_length=256)}
        return Keyring(keys=keys, primary=kid), kid


def parse_keys(spec: str) -> Keyring:
    """`kid:base64key,kid2:base64key` — the first entry is the primary key."""
    keys: dict[str, bytes] = {}
    primary = None
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        kid, _, b64 = part.partition(":")
        if not b64:
            raise ConfigurationError("SECRETS_KEYS entries must look like key_id:base64key")
        keys[kid] = _b64d(b64.strip())
        primary = primary or kid
    if primary is None:
        raise ConfigurationError("SECRETS_KEYS is empty")
    return Keyring(keys=keys, primary=primary)


class KeyFile:
    """A JSON key file with 0600 permissions, changed under a lock and written atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def locked(self) -> Iterator[None]:
        """An exclusive lock across processes for a read-modify-write of the file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def stamp(self) -> object:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def load_or_create(self) -> Keyring:
        if self.path.exists():
            return self.load()
        with self.locked():
            if self.path.exists():  # another process created it while we waited
                return self.load()
            kid = f"k1-{secrets.token_hex(3)}"
            ring = Keyring(keys={kid: AESGCM.generate_key(bit_length=256)}, primary=kid)
            self.save(ring)
            return ring

    def load(self) -> Keyring:
        try:
            data = json.loads(self.path.read_text())
            return Keyring(keys={k: _b64d(v) for k, v in data["keys"].items()}, primary=data["primary"])
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigurationError(f"cannot read key file {self.path}: {exc}") from None

    def add_primary(self) -> tuple[Keyring, str]:
        """A new primary key added to the file's current keys (old ones kept for reading)."""
        with self.locked():
            ring, kid = self.load().with_new_primary()
            self.save(ring)
            return ring, kid

    def save(self, ring: Keyring) -> None:
        """Atomic: readers see the old file or the new one, never a part; durable once it returns.
        Callers that read-modify-write hold `locked()`."""
        folder = self.path.parent
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "w") as fh:
                os.fchmod(fh.fileno(), 0o600)
                json.dump({"primary": ring.primary, "keys": {k: _b64e(v) for k, v in ring.keys.items()}}, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself survives a crash
        finally:
            os.close(dir_fd)


def load_keyring(keys_spec: str | None, key_file: Path, create: bool = False) -> Keyring:
    """Keys from `SECRETS_KEYS` if set, else the key file (created on first run by `up`)."""
    if keys_spec:
        return parse_keys(keys_spec)
    kf = KeyFile(key_file)
    if create:
        ring = kf.load_or_create()
    elif not key_file.exists():
        raise ConfigurationError(
            f"no SECRETS_KEYS and no key file at {key_file}; run `kommo-agent up` once or set SECRETS_KEYS"
        )
    else:
        ring = kf.load()
    ring.reloader, ring.stamp = kf.load, kf.stamp
    return ring
