import base64
import os
import stat

import pytest
from pydantic import SecretStr

from core.config import Settings
from core.errors import ConfigurationError, SecretError
from core.security.keyring import KeyFile, Keyring, load_keyring, parse_keys


def ring(kid="k1"):
    return Keyring(keys={kid: os.urandom(32)}, primary=kid)


def test_round_trip_and_owner_binding():
    r = ring()
    env = r.encrypt("org_a", "access_token", "secret-value")
    assert "secret-value" not in env
    assert r.decrypt("org_a", "access_token", env) == "secret-value"
    with pytest.raises(SecretError):
        r.decrypt("org_b", "access_token", env)  # moved to another org
    with pytest.raises(SecretError):
        r.decrypt("org_a", "refresh_token", env)  # moved to another field


def test_tampered_and_unknown_key():
    r = ring()
    env = r.encrypt("o", "f", "x")
    v, kid, nonce, ct = env.split(".")
    with pytest.raises(SecretError):
        r.decrypt("o", "f", ".".join((v, kid, nonce, ct[:-2] + ("A" if ct[-2] != "A" else "B") + ct[-1])))
    with pytest.raises(SecretError):
        ring("other").decrypt("o", "f", env)
    with pytest.raises(SecretError):
        r.decrypt("o", "f", "garbage")


def test_rotation_keeps_old_keys_readable():
    old = ring()
    env_old = old.encrypt("o", "f", "v1")
    new, kid = old.with_new_primary()
    assert new.primary == kid != old.primary
    assert new.decrypt("o", "f", env_old) == "v1"
    env_new = new.encrypt("o", "f", "v2")
    assert new.key_id_of(env_new) == kid


def test_repr_never_shows_key_material():
    r = ring()
    key = r.keys["k1"]
    assert key.hex() not in repr(r) and str(key) not in repr(r)
    s = Settings(_env_file=None)
    s.llm.api_key = None
    s.llm.api_key = SecretStr("sk-very-secret")
    assert "sk-very-secret" not in repr(s) and "sk-very-secret" not in str(s.model_dump())


def test_key_file_created_0600_and_reloaded(tmp_path):
    path = tmp_path / "keys" / "secrets.keys"
    r = load_keyring(None, path, create=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    env = r.encrypt("o", "f", "v")
    again = load_keyring(None, path)
    assert again.decrypt("o", "f", env) == "v"
    # Another process rotates: this keyring learns the new key on first sight of it.
    rotated, _ = again.with_new_primary()
    KeyFile(path).save(rotated)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert r.decrypt("o", "g", rotated.encrypt("o", "g", "fresh")) == "fresh"


def test_env_keys_and_missing_key_file(tmp_path):
    k = base64.urlsafe_b64encode(os.urandom(32)).decode()
    r = parse_keys(f"a:{k}, b:{k}")
    assert r.primary == "a" and set(r.keys) == {"a", "b"}
    with pytest.raises(ConfigurationError):
        parse_keys("nokey")
    with pytest.raises(ConfigurationError):
        load_keyring(None, tmp_path / "absent.keys")
