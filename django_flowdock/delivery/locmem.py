from __future__ import annotations

from django.utils import timezone

import django_flowdock

from ..models import Message
from .base import BaseBackend


class LocmemBackend(BaseBackend):
    """Collect messages in ``django_flowdock.outbox`` instead of posting them.

    For a project's own tests, like Django's locmem email backend. Messages still go
    through the outbox, so a rolled-back change adds nothing to ``outbox``.
    """

    def dispatch(self, message_ids: list[int]) -> None:
        messages = Message.objects.filter(pk__in=message_ids).select_related("source")
        for message in messages.order_by("pk"):
            django_flowdock.outbox.append(message.api_payload())
        Message.objects.filter(pk__in=message_ids).update(
            state=Message.State.SENT, sent_at=timezone.now()
        )
