from __future__ import annotations

from .base import BaseBackend


class WorkerBackend(BaseBackend):
    """Leave messages in the outbox for ``manage.py flowdock_worker`` to send."""

    def queued(self, messages, *, using):
        return None
