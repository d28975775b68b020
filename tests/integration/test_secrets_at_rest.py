"""Secrets at rest: nothing stored in plaintext, rotation re-encrypts every stored secret."""

import os

from bson import json_util

from core.ids import new_id
from core.models.kommo import AuthKind, KommoAccount
from core.security.keyring import Keyring
from core.security.rotation import reencrypt_all
from core.storage.repositories.kommo_accounts import hook_token_hash


async def _store_account(storage, ring, org_id, token):
    account = KommoAccount(
        _id=new_id("ka"), org_id=org_id, subdomain="acme", auth_kind=AuthKind.LONG_LIVED,
        secrets={"access_token": ring.encrypt(org_id, "access_token", token),
                 "hook_token": ring.encrypt(org_id, "hook_token", "hook-" + token)},
        hook_token_hash=hook_token_hash("hook-" + token),
    )
    return await storage.kommo_accounts.insert(org_id, account)


async def _dump(db) -> str:
    out = []
    for name in await db.list_collection_names():
        out.extend([json_util.dumps(d) async for d in db[name].find({})])
    return "\n".join(out)


async def test_database_dump_has_no_plaintext_token(storage):
    ring = Keyring(keys={"k1": os.urandom(32)}, primary="k1")
    org = await storage.orgs.create("A")
    token = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.plaintext-token-value"
    await _store_account(storage, ring, org.id, token)
    dump = await _dump(storage.db)
    assert "acme" in dump  # the dump really contains the account
    assert token not in dump and "plaintext-token-value" not in dump


async def test_rotation_reencrypts_every_secret(storage):
    old = Keyring(keys={"k1": os.urandom(32)}, primary="k1")
    orgs = [await storage.orgs.create(f"org{i}") for i in range(3)]
    for i, org in enumerate(orgs):
        await _store_account(storage, old, org.id, f"token-{i}")
    new, kid = old.with_new_primary()
    report = await reencrypt_all(storage.db, new)
    assert report.reencrypted == 6 and report.documents == 3
    only_new = Keyring(keys={kid: new.keys[kid]}, primary=kid)  # old key thrown away
    for i, org in enumerate(orgs):
        account = await storage.kommo_accounts.for_org(org.id)
        assert only_new.decrypt(org.id, "access_token", account.secrets["access_token"]) == f"token-{i}"
    again = await reencrypt_all(storage.db, new)
    assert again.reencrypted == 0 and again.already_current == 6
