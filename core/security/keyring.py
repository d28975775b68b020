"""AES-GCM keyring with key ids.

A ciphertext is bound to its owner: the associated data is `org_id|field`, so a token copied
into another organisation's document (or another field) fails to decrypt. Envelopes are
strings `v1.<key id>.<nonce>.<ciphertext>` (base64url), so the key that made one is known and
rotation can re-encrypt under the newest key while old keys still decrypt.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core.errors import ConfigurationError, SecretError

_VERSION = "v1"


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
    _ciphers: dict[str, AESGCM] = field(default_factory=dict, init=False)

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

    def encrypt(self, org_id: str, field_name: str, plaintext: str) -> str:
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
            fresh = self.reloader()
            for new_kid, key in fresh.keys.items():
                self.keys.setdefault(new_kid, key)
                self._ciphers.setdefault(new_kid, AESGCM(key))
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
    """A JSON key file created with 0600 permissions; rotation rewrites it atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load_or_create(self) -> Keyring:
        if self.path.exists():
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

    def save(self, ring: Keyring) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"primary": ring.primary, "keys": {k: _b64e(v) for k, v in ring.keys.items()}}, fh)
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)


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
    ring.reloader = kf.load
    return ring
