"""The backend interface: a backend decides *when* the outbox is drained, and names
the transport that decides *where* messages go."""

from __future__ import annotations

from typing import Any

from django_flowdock.api.client import FlowdockClient


class BaseBackend:
    """Subclasses implement :meth:`dispatch`."""

    def dispatch(self) -> None:
        """Called after a transaction that captured changes has committed (robustly:
        an error is logged, never raised into the committed code). Must not block on
        HTTP: it runs on the request thread."""
        raise NotImplementedError

    def transport(self) -> Any:
        """What messages are posted with: the HTTP client by default."""
        return FlowdockClient()
