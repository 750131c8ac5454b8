"""Writing messages to the outbox in the transaction of the change that caused them.

Several saves of one item inside one transaction become one activity: the rows the
first save queued are rewritten with the final state and every change since the
transaction began, instead of queueing one message per save. A discussion or a
deletion in between ends the run, so the thread state shown never goes backwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import models, router

from .delivery import get_backend
from .delivery.transactions import current_transaction
from .models import Message, Source
from .payloads import ThreadState, activity_message, option_value
from .signals import message_queued


def sources_for(instance: Any, event: str, action: str) -> list[int]:
    """Ids of the active sources that receive ``action`` (created/updated/deleted/
    commented) about ``instance``: unscoped ones plus those scoped to its scope object."""
    scope = option_value(instance, instance.flowdock_options(), "scope")
    scopes = [obj for obj in (scope if isinstance(scope, (list, tuple)) else [scope]) if obj]
    label = instance._meta.label_lower
    # values_list: no flow token is decrypted on the request path.
    rows = Source.objects.active().for_scopes(scopes).values_list("pk", "settings")
    # Most sources take everything: skip building a Source for those.
    return [
        pk
        for pk, settings in rows
        if not settings or Source(settings=settings).accepts(label, action)
    ]


@dataclass
class QueuedActivity:
    """The activity a transaction queued last for one thread, still open to merging."""

    action: str
    source_ids: list[int]
    pks: list[int]
    #: the thread as it was when the transaction began (for "updated" runs)
    before: ThreadState | None


def queue(
    instance: models.Model,
    message: dict[str, Any],
    *,
    action: str,
    thread: Any = None,
    state: ThreadState | None = None,
    before: ThreadState | None = None,
) -> list[Message]:
    """Write ``message`` once per receiving source (one bulk insert) and hand the rows
    to the delivery backend, which sends them after the transaction commits.

    For updates, ``state`` and ``before`` (the thread after and before this save) let a
    later save in the same transaction merge into this message. Returns the rows
    written; an update merged into earlier rows returns ``[]``.
    """
    thread = thread if thread is not None else instance
    source_ids = sources_for(thread, message["event"], action)
    thread_key = message["external_thread_id"]
    using = router.db_for_write(Message, instance=instance)
    transaction_state = current_transaction(using)
    queued = transaction_state.queued if transaction_state is not None else None
    if queued is not None and action == "updated" and state is not None:
        earlier = queued.get(thread_key)
        if earlier is not None and earlier.source_ids == source_ids:
            merged = _merge(instance, earlier, state, thread_key, using)
            if merged is not None:
                return merged
    messages = _insert(instance, message, source_ids, using)
    if queued is not None:
        if action == "created" or (action == "updated" and before is not None):
            queued[thread_key] = QueuedActivity(
                action, source_ids, [m.pk for m in messages], before
            )
        else:
            queued.pop(thread_key, None)
    return messages


def _insert(
    instance: models.Model, message: dict[str, Any], source_ids: list[int], using: str
) -> list[Message]:
    if not source_ids:
        return []
    thread_key = message["external_thread_id"]
    rows = [
        Message(source_id=pk, thread_key=thread_key, event=message["event"], payload=message)
        for pk in source_ids
    ]
    messages = Message.objects.using(using).bulk_create(rows)
    message_queued.send(sender=Message, messages=messages, instance=instance)
    get_backend().queued(messages, using=using)
    return messages


def _merge(
    instance: Any, earlier: QueuedActivity, state: ThreadState, thread_key: str, using: str
) -> list[Message] | None:
    """Rewrite the earlier rows with the final state; ``None`` if they are no longer
    open to changes (already handed to Flowdock), so a new message is needed."""
    if earlier.action == "created":
        message = activity_message(instance, "created", state=state)
    else:
        assert earlier.before is not None
        changes = state.changes_since(earlier.before)
        if not changes:
            # Back to where the transaction began: there is nothing to tell.
            _untouched(earlier.pks, thread_key, using).delete()
            earlier.pks = []
            return []
        message = activity_message(instance, "updated", state=state, changes=changes)
    if not earlier.pks:
        earlier.pks = [m.pk for m in _insert(instance, message, earlier.source_ids, using)]
        return []
    if _untouched(earlier.pks, thread_key, using).update(payload=message) != len(earlier.pks):
        return None
    return []


def _untouched(pks: list[int], thread_key: str, using: str) -> models.QuerySet[Message]:
    # thread_key too: rows of a rolled-back savepoint are gone, and SQLite may give
    # their ids to new rows.
    return Message.objects.using(using).filter(
        pk__in=pks,
        thread_key=thread_key,
        state=Message.State.PENDING,
        attempts=0,
        claimed_until=None,
    )
