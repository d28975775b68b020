"""Who indexes a source now: lease owner ids, their heartbeat, and the sweep of orphaned sources.

A run claims the source's lease (`KnowledgeSourceRepository.claim`) and renews it every
`KNOWLEDGE_INGEST_HEARTBEAT_S`; a source in progress whose owner stopped renewing (its process
died, was SIGKILLed, or lost its database) is marked `failed: interrupted` by the sweep, so no
source looks busy while nothing works on it, and re-adding or re-indexing it works.
"""

from __future__ import annotations

import os
import socket
import uuid

from core.logging import get_logger
from core.models.knowledge import KnowledgeSource
from core.storage.repositories.knowledge import lease_is_stale

log = get_logger(__name__)
INTERRUPTED = "interrupted"


def new_owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_is_dead(owner: str) -> bool:
    """True only when certain: the owner ran on this host and its process is gone."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def orphaned(source: KnowledgeSource, stale_s: float) -> bool:
    if not source.in_progress:
        return False
    if not source.lease_owner:
        return lease_is_stale(source, stale_s)  # in progress with no lease: from before leases, or lost
    return owner_is_dead(source.lease_owner) or lease_is_stale(source, stale_s)


async def sweep_orphans(repo, stale_s: float) -> list[str]:
    """Mark every orphaned source failed: interrupted; the ids marked."""
    marked = []
    for source in await repo.in_progress_all_orgs():
        if orphaned(source, stale_s) and await repo.fail_if_unchanged(source, INTERRUPTED):
            log.warning("ingest_orphan_failed", org_id=source.org_id, source_id=source.id, owner=source.lease_owner)
            marked.append(source.id)
    return marked
