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


def plain_reason(exc: BaseException) -> str:
    """Why a connection failed, in words a user can act on (never an exception class name)."""
    name = type(exc).__name__.lower()
    text = str(exc).lower()
    if "dns" in name or "name or service not known" in text or "temporary failure in name resolution" in text \
            or "nodename nor servname" in text:
        return "its name does not resolve (no network, or a typo in the address?)"
    if "timeout" in name or isinstance(exc, TimeoutError):
        return "no answer in time (slow or unreachable network)"
    if "ssl" in name or "certificate" in text:
        return "the secure connection failed (certificate or TLS problem)"
    if "refused" in text or isinstance(exc, ConnectionRefusedError):
        return "the connection was refused (nothing listens there)"
    if isinstance(exc, (ConnectionError, OSError)) or "connect" in name or "disconnect" in name:
        return "the connection failed (no network?)"
    return "the request failed"
