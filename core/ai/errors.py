"""Errors of the agent runtime. The runtime turns them into a handoff, never into silence."""

from __future__ import annotations

from core.errors import InvalidInput, KommoAgentError, ServiceUnavailable


class LLMError(KommoAgentError):
    code = "llm_error"


class LLMUnavailable(LLMError, ServiceUnavailable):
    """The provider kept failing (timeouts, 429, 5xx, connection) after every retry."""

    code = "llm_unavailable"


class LLMRejected(LLMError):
    """The provider refused the request for a reason a retry cannot fix (400, 401, 403, 404)."""

    code = "llm_rejected"


class ExtractionError(InvalidInput):
    """The content cannot be turned into text; the message says why, for the manager."""

    code = "extraction_failed"


class IngestInterrupted(KommoAgentError):
    """Indexing was stopped (Ctrl-C, a cancel request, its process died) before it finished."""

    code = "interrupted"


class SourceBusy(KommoAgentError):
    """Another live run indexes this source now (its lease is fresh)."""

    code = "source_busy"


class AlreadyAdded(KommoAgentError):
    """The same content is already a source of this agent."""

    code = "already_added"
