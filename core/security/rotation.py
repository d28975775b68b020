"""Key rotation: re-encrypt every stored secret under the keyring's primary key.

Secrets live as envelopes in a `secrets` map on documents of `SECRET_COLLECTIONS`; the owner
(associated data) is the document's org id plus the field name, so rotation needs no knowledge
of what each secret is.
"""

from __future__ import annotations

from dataclasses import dataclass

from pymongo.asynchronous.database import AsyncDatabase

from core.security.keyring import Keyring

SECRET_COLLECTIONS = ("kommo_accounts", "organizations", "agents")


@dataclass
class RotationReport:
    documents: int = 0
    reencrypted: int = 0
    already_current: int = 0


async def reencrypt_all(db: AsyncDatabase, ring: Keyring) -> RotationReport:
    report = RotationReport()
    for name in SECRET_COLLECTIONS:
        col = db[name]
        async for doc in col.find({"secrets": {"$exists": True}}, {"secrets": 1, "org_id": 1}):
            owner = doc.get("org_id") or doc["_id"]
            changes = {}
            for field_name, envelope in (doc.get("secrets") or {}).items():
                if ring.key_id_of(envelope) == ring.primary:
                    report.already_current += 1
                    continue
                plaintext = ring.decrypt(owner, field_name, envelope)
                changes[f"secrets.{field_name}"] = ring.encrypt(owner, field_name, plaintext)
            if changes:
                # Only replace an envelope if it is still the one we decrypted (a concurrent
                # token refresh wins; its new envelope is already under the primary key).
                guard = {"_id": doc["_id"], **{f"secrets.{k}": v for k, v in doc["secrets"].items()
                                               if f"secrets.{k}" in changes}}
                res = await col.update_one(guard, {"$set": changes})
                report.reencrypted += len(changes) if res.modified_count else 0
            report.documents += 1
    return report
