from __future__ import annotations

from .base import BaseBackend
from .engine import drain


class ImmediateBackend(BaseBackend):
    """Deliver in this process right after commit: no extra moving parts.

    A message that fails transiently stays pending; run ``manage.py flowdock_worker``
    (or ``--once`` from cron) to retry it.
    """

    def dispatch(self, message_ids: list[int]) -> None:
        drain(message_ids=message_ids)
