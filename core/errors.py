"""Domain exceptions. Core raises them; each adapter (bot, web, CLI, tasks) translates them.

Every error carries a stable `code` that adapters map to a translated, actionable message, and
`params` for that message. The English `str()` is for logs and the CLI.
"""

from __future__ import annotations

from typing import Any


class KommoAgentError(Exception):
    code = "error"

    def __init__(self, message: str, **params: Any) -> None:
        super().__init__(message)
        self.params = params


class NotFound(KommoAgentError):
    code = "not_found"


class AlreadyExists(KommoAgentError):
    code = "already_exists"


class InvalidInput(KommoAgentError):
    code = "invalid_input"


class PermissionDenied(KommoAgentError):
    code = "permission_denied"


class SecretError(KommoAgentError):
    """A secret could not be decrypted: wrong owner, unknown key id or tampered ciphertext."""

    code = "secret_error"


class ServiceUnavailable(KommoAgentError):
    """A backing service (Mongo, Redis, Qdrant, LLM, Kommo) cannot be reached right now."""

    code = "service_unavailable"


class ConfigurationError(KommoAgentError):
    code = "configuration_error"
