"""Index bootstrap: idempotent, run at every start by each process that writes.

Unique keys carry the business rules (one operator per Telegram user per org, one webhook event
per dedupe key, one message per Kommo message id, one journal entry per action key).
"""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

INDEXES: dict[str, list[IndexModel]] = {
    "organizations": [IndexModel([("created_at", ASCENDING)])],
    "operators": [
        IndexModel([("org_id", ASCENDING), ("telegram_user_id", ASCENDING)], unique=True),
        IndexModel([("telegram_user_id", ASCENDING)]),
    ],
    "invites": [
        IndexModel([("token", ASCENDING)], unique=True),
        IndexModel([("org_id", ASCENDING), ("created_at", DESCENDING)]),
    ],
    "agents": [IndexModel([("org_id", ASCENDING), ("name", ASCENDING)], unique=True)],
    "kommo_accounts": [
        IndexModel([("org_id", ASCENDING)], unique=True),
        IndexModel([("hook_token_hash", ASCENDING)], unique=True, name="hook_token_hash_unique"),
        IndexModel([("chats_scope_id", ASCENDING)], name="chats_scope_id"),
        IndexModel([("status", ASCENDING), ("expires_at", ASCENDING)]),
    ],
    "kommo_pipelines": [IndexModel([("org_id", ASCENDING), ("pipeline_id", ASCENDING)], unique=True)],
    "kommo_users": [IndexModel([("org_id", ASCENDING), ("user_id", ASCENDING)], unique=True)],
    "kommo_fields": [
        IndexModel([("org_id", ASCENDING), ("entity", ASCENDING), ("field_id", ASCENDING)], unique=True)
    ],
    "knowledge_sources": [
        IndexModel([("org_id", ASCENDING), ("agent_id", ASCENDING), ("created_at", DESCENDING)]),
    ],
    "conversations": [
        IndexModel([("org_id", ASCENDING), ("conversation_key", ASCENDING)], unique=True),
        IndexModel([("state", ASCENDING), ("last_customer_at", ASCENDING)]),
        IndexModel([("org_id", ASCENDING), ("lead_id", ASCENDING), ("last_customer_at", DESCENDING)]),
    ],
    "messages": [
        IndexModel(
            [("org_id", ASCENDING), ("kommo_message_id", ASCENDING)],
            unique=True,
            partialFilterExpression={"kommo_message_id": {"$type": "string"}},
        ),
        IndexModel([("org_id", ASCENDING), ("conversation_id", ASCENDING), ("created_at", ASCENDING)]),
    ],
    "webhook_events": [
        IndexModel([("org_id", ASCENDING), ("dedupe_key", ASCENDING)], unique=True),
        IndexModel([("status", ASCENDING), ("received_at", ASCENDING)]),
    ],
    "webhook_rejections": [IndexModel([("org_id", ASCENDING), ("last_at", DESCENDING)])],
    "agent_actions": [
        IndexModel([("org_id", ASCENDING), ("idempotency_key", ASCENDING)], unique=True),
        IndexModel([("org_id", ASCENDING), ("conversation_id", ASCENDING), ("created_at", ASCENDING)]),
        IndexModel([("org_id", ASCENDING), ("lead_id", ASCENDING), ("updated_at", DESCENDING)]),
    ],
    "lead_status_events": [
        IndexModel([("org_id", ASCENDING), ("day", ASCENDING)]),
        IndexModel([("org_id", ASCENDING), ("lead_id", ASCENDING), ("at", ASCENDING)]),
    ],
    "usage_events": [
        IndexModel([("org_id", ASCENDING), ("day", ASCENDING)]),
        IndexModel([("org_day", ASCENDING)]),
        IndexModel([("org_id", ASCENDING), ("idempotency_key", ASCENDING)], unique=True,
                   partialFilterExpression={"idempotency_key": {"$type": "string"}}),
    ],
    # Reports read one org's days by `org_day` ("org|day") and every org's by `day`.
    "usage_daily": [IndexModel([("org_day", ASCENDING)]), IndexModel([("day", ASCENDING)])],
    "usage_monthly": [IndexModel([("month", ASCENDING)])],
    "turns": [IndexModel([("org_id", ASCENDING), ("conversation_id", ASCENDING), ("created_at", ASCENDING)])],
    "notifications": [IndexModel([("status", ASCENDING), ("created_at", ASCENDING)])],
    "campaigns": [IndexModel([("org_id", ASCENDING), ("created_at", DESCENDING)]),
                  IndexModel([("status", ASCENDING)])],
    "campaign_targets": [
        IndexModel([("org_id", ASCENDING), ("campaign_id", ASCENDING), ("lead_id", ASCENDING)], unique=True),
        IndexModel([("org_id", ASCENDING), ("campaign_id", ASCENDING), ("state", ASCENDING)]),
    ],
}


# nx-27017 (the embedded server) answers a query through a single-field index only: a query on
# (org_id, conversation_id) with just the compound index above scans the whole collection, so a
# conversation's recent messages took 3 ms at 1k messages and 48 ms at 30k (the soak slowed from
# 25 to 8 replies/s as data grew). There, every hot lookup also gets an index on its selective
# field. A real MongoDB uses the compound indexes and does not get these.
EMBEDDED_LOOKUP_INDEXES: dict[str, list[str]] = {
    "messages": ["conversation_id", "turn_id", "kommo_message_id"],
    "conversations": ["conversation_key", "state", "pending_turn_id", "lead_id"],
    "agent_actions": ["idempotency_key", "conversation_id", "lead_id"],
    "lead_status_events": ["day", "lead_id"],
    "webhook_events": ["status"],  # dedupe lookups go through the unique index's constraint
    "turns": ["conversation_id"],
    "knowledge_sources": ["agent_id"],
    "usage_events": ["day"],
    "notifications": ["status"],
    "campaigns": ["status"],
    "campaign_targets": ["campaign_id"],
}


async def is_embedded_server(db: AsyncDatabase) -> bool:
    info = await db.client.admin.command("buildInfo")
    return info.get("process") == "nx_27017"


def useful_on_embedded(model: IndexModel) -> bool:
    """nx-27017 plans no query through a compound index (measured over 20k documents: the same
    ~25 ms scan with or without one), yet updates every index on every write: there a compound
    index earns its cost only when it is unique (it enforces the rule)."""
    doc = model.document
    return bool(doc.get("unique")) or len(doc["key"]) == 1


async def ensure_indexes(db: AsyncDatabase) -> None:
    embedded = await is_embedded_server(db)
    for collection, models in INDEXES.items():
        if not embedded:
            await db[collection].create_indexes(models)
            continue
        keep = [m for m in models if useful_on_embedded(m)]
        if keep:
            await db[collection].create_indexes(keep)
        # Made by an earlier version: dropped, so writes stop paying for them. nx-27017 names
        # indexes its own way (and ignores a drop by the MongoDB name), so match them by key.
        unused = {tuple(m.document["key"].items()) for m in models if m not in keep}
        if not unused:
            continue  # most collections: no extra round trip at start-up
        for index in await (await db[collection].list_indexes()).to_list():
            if tuple(index["key"].items()) in unused:
                await db[collection].drop_index(index["name"])
    if embedded:
        for collection, fields in EMBEDDED_LOOKUP_INDEXES.items():
            await db[collection].create_indexes([IndexModel([(f, ASCENDING)], name=f"lookup_{f}") for f in fields])
