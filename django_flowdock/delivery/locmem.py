from __future__ import annotations

from typing import Any

import django_flowdock
from django_flowdock.delivery.base import BaseBackend
from django_flowdock.delivery.engine import drain


class LocmemResponse:
    """What the in-memory transport answers: Flowdock's 201 with an empty body."""

    status_code = 201

    def json(self) -> dict[str, Any]:
        return {}


class LocmemTransport:
    """Appends each payload to ``django_flowdock.outbox`` instead of posting it."""

    def post_message(self, payload: dict[str, Any]) -> LocmemResponse:
        django_flowdock.outbox.append(payload)
        return LocmemResponse()


class LocmemBackend(BaseBackend):
    """For a project's own tests, like Django's locmem email backend: after commit,
    the real engine runs in this thread (fan-out, claims, rendering, outcomes, signals)
    and what would have been posted is collected in ``django_flowdock.outbox``."""

    def dispatch(self) -> None:
        drain()

    def transport(self) -> LocmemTransport:
        return LocmemTransport()
