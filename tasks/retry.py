"""Which failures are transient: the tasks retry these with backoff (see `CoreTask.retry_or_fail`)."""

from __future__ import annotations

from pymongo.errors import AutoReconnect, ConnectionFailure, NetworkTimeout, ServerSelectionTimeoutError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core.conversations.errors import ConversationBusy, RetryLater
from core.kommo.errors import TRANSIENT as KOMMO_TRANSIENT
from core.kommo.errors import ActionInProgress

# A database or broker blip: the same call will work once the server is back.
INFRA_ERRORS = (AutoReconnect, ConnectionFailure, NetworkTimeout, ServerSelectionTimeoutError,
                RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError)
# Kommo's transient errors can surface outside the engine's own handling (e.g. while handing
# off after a failure); every step is idempotent, so retrying them is always safe.
TRANSIENT = (RetryLater, ConversationBusy, ActionInProgress, *KOMMO_TRANSIENT, *INFRA_ERRORS)
