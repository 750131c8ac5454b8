"""The backend interface: the outbox hands over rows; the backend decides when to drain."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from django.db import transaction

from .transactions import current_transaction, on_commit_once

if TYPE_CHECKING:
    from ..models import Message


class BaseBackend:
    """Subclasses implement :meth:`dispatch`, called once the change has committed."""

    def queued(self, messages: Sequence[Message], *, using: str) -> None:
        """Called inside the transaction that wrote ``messages``. Nothing may leave the
        process before it commits: a rolled-back change must send nothing. A
        transaction's messages are dispatched together, once."""
        ids = [m.pk for m in messages]
        state = current_transaction(using)
        if state is not None:
            on_commit_once(using, state, self, ids, self.dispatch)
            return
        # robust: a delivery problem is logged, never raised into the committed request.
        transaction.on_commit(lambda: self.dispatch(ids), using=using, robust=True)

    def dispatch(self, message_ids: list[int]) -> None:
        raise NotImplementedError
