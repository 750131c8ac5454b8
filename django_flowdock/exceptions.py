"""One exception hierarchy for everything django-flowdock raises."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured


class FlowdockError(Exception):
    """Base class for errors talking to Flowdock.

    ``status_code`` and ``response`` are set when the API answered; ``payload`` is the
    message that was being sent, so a handler can log or keep it.
    """

    def __init__(
        self,
        message: str = "",
        *,
        status_code: int | None = None,
        response: Any = None,
        payload: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.response = response
        self.payload = payload


class FlowdockTransientError(FlowdockError):
    """Worth retrying later: connection errors, timeouts, 429 and 5xx answers."""

    def __init__(self, message: str = "", *, retry_after: float | None = None, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class FlowdockRejectedError(FlowdockError):
    """The API refused the request (400, 401, 403, 404); retrying will not help."""


class FlowdockSourceGoneError(FlowdockRejectedError):
    """410 Gone: the source was removed in Flowdock; stop posting with its token."""


class FlowdockRenderError(FlowdockError):
    """A captured change could not be turned into a valid message (a ``get_flowdock_*``
    method raised, or what it returned cannot be repaired). That message fails alone;
    the error and traceback are kept on it."""


class FlowdockOAuthError(FlowdockError):
    """The OAuth flow failed: denied consent, bad state, an unusable code."""


class FlowdockConfigurationError(ImproperlyConfigured):
    """The project's configuration is wrong. Kept apart from FlowdockError so a
    handler catching delivery errors never swallows it."""
