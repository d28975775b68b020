"""Kommo errors. Each one maps to a stable `code` the adapters translate.

The retry policy keys off the class: `KommoRateLimited`, `KommoServerError` and
`KommoUnavailable` are transient; everything else is final for the call that raised it.
"""

from __future__ import annotations

from core.errors import InvalidInput, KommoAgentError, NotFound


class KommoError(KommoAgentError):
    code = "kommo_error"

    def __init__(self, message: str, *, status: int | None = None, **params) -> None:
        super().__init__(message, **params)
        self.status = status


class KommoAuthError(KommoError):
    """401: the token is invalid or expired and no refresh could fix it."""

    code = "kommo_auth"


class KommoTokenRevoked(KommoAuthError):
    """The refresh token is dead (reused, revoked or 3 months unused): an admin must re-authorise."""

    code = "kommo_needs_reauth"


class KommoRateLimited(KommoError):
    code = "kommo_rate_limited"

    def __init__(self, message: str, *, retry_after: float | None = None, **kw) -> None:
        super().__init__(message, status=429, **kw)
        self.retry_after = retry_after


class KommoBlocked(KommoError):
    """403: Kommo blocked us (usually after rate-limit abuse). Calls stop until an operator checks."""

    code = "kommo_blocked"


class KommoForbidden(KommoError):
    """403 on an endpoint the caller marked rights-dependent (e.g. users list for a non-admin)."""

    code = "kommo_forbidden"


class KommoNotFound(KommoError):
    code = "kommo_not_found"


class KommoValidationError(KommoError):
    """400/422 (or 402 payment required): our request was refused; resending it will not help."""

    code = "kommo_validation"


class KommoServerError(KommoError):
    code = "kommo_server_error"


class KommoUnavailable(KommoError):
    """Timeout or connection failure before Kommo answered."""

    code = "kommo_unavailable"


class KommoNotConnected(KommoError):
    """The org has no usable Kommo connection (none, needs re-auth, or blocked)."""

    code = "kommo_not_connected"


class InvalidWebhook(InvalidInput):
    """A request to a webhook route that is not a Kommo webhook; `reason` is short and safe to echo."""

    code = "invalid_webhook"

    def __init__(self, reason: str) -> None:
        super().__init__(reason, reason=reason)
        self.reason = reason


class UnknownHook(NotFound):
    """A hook URL whose token names no connected account (rotated, disconnected or guessed)."""

    code = "unknown_hook"


class InvalidOAuthState(InvalidInput):
    code = "invalid_oauth_state"


class ActionInProgress(KommoError):
    """A journaled action is SENDING in another attempt and not stale yet: retry later."""

    code = "action_in_progress"


class MaybeSent(KommoError):
    """A customer-visible effect whose outcome is unknown (a timeout, a crash after Kommo's
    answer) where Kommo cannot be asked whether it landed: never resent, an operator checks."""

    code = "kommo_maybe_sent"


TRANSIENT = (KommoRateLimited, KommoServerError, KommoUnavailable)


class DeliverySetupBroken(KommoValidationError):
    """The delivery set-up no longer works in Kommo (the Salesbot deleted or switched off, the
    reply field deleted): one alert per set-up version, each turn handed off, nothing retried."""

    code = "delivery_setup_broken"
