"""The backend for a project's own tests: what would be posted is collected in
``django_flowdock.outbox``, and Flowdock's failures can be planned with
:func:`fail_next` (``django_flowdock.testing.fail_next``)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import django_flowdock
from django_flowdock.delivery.base import BaseBackend
from django_flowdock.exceptions import (
    FlowdockError,
    FlowdockRejectedError,
    FlowdockSourceGoneError,
    FlowdockTransientError,
)


@dataclass
class LocmemResponse:
    """What the in-memory transport answers: Flowdock's ``202 Accepted`` with an empty
    body, or a planned failure (its ``status_code`` and ``Retry-After`` header)."""

    status_code: int = 202
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> dict[str, Any]:
        return {}


#: Failures the next posts answer, oldest first: (status, Retry-After seconds).
_planned: deque[tuple[int, float | None]] = deque()


def fail_next(status: int, *, retry_after: float | None = None, times: int = 1) -> None:
    """Make the next ``times`` posts of the locmem transport answer ``status``, raising
    what the HTTP client raises for that answer: 408, 429 and 5xx are retried (holding the
    source, after ``retry_after`` seconds at the earliest), 410 cancels the source,
    other 4xx fail the message."""
    if not 400 <= status <= 599:
        raise ValueError(f"{status} is not an HTTP error status (400 to 599).")
    _planned.extend([(status, retry_after)] * times)


def clear_failures() -> None:
    """Forget the failures :func:`fail_next` planned and no post used yet."""
    _planned.clear()


def _error(status: int, retry_after: float | None, payload: dict[str, Any]) -> FlowdockError:
    """What ``FlowdockClient.request`` raises when Flowdock answers ``status``."""
    headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
    details: dict[str, Any] = {
        "status_code": status,
        "response": LocmemResponse(status, headers),
        # As the client keeps it: never with the flow token.
        "payload": {k: v for k, v in payload.items() if k != "flow_token"},
    }
    text = f"HTTP {status} (planned with django_flowdock.testing.fail_next)"
    if status == 410:
        return FlowdockSourceGoneError(text, **details)
    if status in (408, 429) or status >= 500:
        return FlowdockTransientError(text, retry_after=retry_after, **details)
    return FlowdockRejectedError(text, **details)


class LocmemTransport:
    """Appends each payload to ``django_flowdock.outbox`` instead of posting it, unless
    a failure was planned for this post."""

    def post_message(self, payload: dict[str, Any]) -> LocmemResponse:
        if _planned:
            raise _error(*_planned.popleft(), payload)
        django_flowdock.outbox.append(payload)
        return LocmemResponse()


class LocmemBackend(BaseBackend):
    """For a project's own tests, like Django's locmem email backend: after commit,
    the real engine runs in this thread (fan-out, claims, rendering, outcomes, signals)
    and what would have been posted is collected in ``django_flowdock.outbox``."""

    def dispatch(self) -> None:
        # Imported here: the test kit imports this module before Django's apps are ready.
        from django_flowdock.delivery.engine import drain

        drain()

    def transport(self) -> LocmemTransport:
        return LocmemTransport()
