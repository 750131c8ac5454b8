"""Writing messages to the outbox in the transaction of the change that caused them."""

from __future__ import annotations

from typing import Any

from django.db import models, router

from .delivery import get_backend
from .models import Message, Source
from .payloads import option_value
from .signals import message_queued


def sources_for(instance: Any, event: str, action: str) -> list[int]:
    """Ids of the active sources that receive ``action`` (created/updated/deleted/
    commented) about ``instance``: unscoped ones plus those scoped to its scope object."""
    scope = option_value(instance, instance.flowdock_options(), "scope")
    scopes = [obj for obj in (scope if isinstance(scope, (list, tuple)) else [scope]) if obj]
    label = instance._meta.label_lower
    # values_list: no flow token is decrypted on the request path.
    rows = Source.objects.active().for_scopes(scopes).values_list("pk", "settings")
    return [pk for pk, settings in rows if Source(settings=settings).accepts(label, action)]


def queue(
    instance: models.Model, message: dict[str, Any], *, action: str, thread: Any = None
) -> list[Message]:
    """Write ``message`` once per receiving source (one bulk insert) and hand the rows
    to the delivery backend, which sends them after the transaction commits."""
    thread = thread if thread is not None else instance
    source_ids = sources_for(thread, message["event"], action)
    if not source_ids:
        return []
    thread_key = message["external_thread_id"]
    rows = [
        Message(source_id=pk, thread_key=thread_key, event=message["event"], payload=message)
        for pk in source_ids
    ]
    using = router.db_for_write(Message, instance=instance)
    messages = Message.objects.using(using).bulk_create(rows)
    message_queued.send(sender=Message, messages=messages, instance=instance)
    get_backend().queued(messages, using=using)
    return messages
