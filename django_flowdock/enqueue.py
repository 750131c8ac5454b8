"""Writing messages to the outbox in the transaction of the change that caused them.

Several saves of one item inside one transaction become one activity: the rows the
first save queued are rewritten with the final state and every change since the
transaction began, instead of queueing one message per save. A discussion or a
deletion in between ends the run, so the thread state shown never goes backwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import connections, models, router

from .delivery import get_backend
from .delivery.transactions import current_transaction
from .models import Message, Source
from .payloads import ThreadState, activity_message, option_value
from .signals import message_queued


def sources_for(instance: Any, action: str, using: str) -> list[int]:
    """Ids of the active sources that receive ``action`` (created/updated/deleted/
    commented) about ``instance``: unscoped ones plus those scoped to its scope object."""
    scope = option_value(instance, instance.flowdock_options(), "scope")
    scopes = [obj for obj in (scope if isinstance(scope, (list, tuple)) else [scope]) if obj]
    label = instance._meta.label_lower
    # Most sources take everything: skip building a Source for those.
    return [
        pk
        for pk, settings in _receiving_rows(scopes, using)
        if not settings or Source(settings=settings).accepts(label, action)
    ]


def _receiving_rows(scopes: list[models.Model], using: str) -> list[tuple[int, dict]]:
    """(id, settings) of active sources that are unscoped or scoped to one of ``scopes``.

    Plain SQL because this runs in every save, and composing the query through the ORM
    cost several times what running it does. Flow tokens are not read, so nothing is
    decrypted on the request path.
    """
    connection = connections[using]
    qn = connection.ops.quote_name
    scope_type, scope_id = qn("scope_content_type_id"), qn("scope_object_id")
    matches, params = [f"{scope_type} IS NULL"], [True]
    for obj in scopes:
        matches.append(f"({scope_type} = %s AND {scope_id} = %s)")
        params += [ContentType.objects.db_manager(using).get_for_model(obj).pk, str(obj.pk)]
    # Only quoted identifiers are interpolated; every value is a parameter.
    sql = (
        f"SELECT {qn('id')}, {qn('settings')} FROM {qn(Source._meta.db_table)} "  # noqa: S608
        f"WHERE {qn('active')} = %s AND ({' OR '.join(matches)})"
    )
    settings_field = Source._meta.get_field("settings")
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [
            (pk, settings_field.from_db_value(value, None, connection))
            for pk, value in cursor.fetchall()
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
    using = router.db_for_write(Message, instance=instance)
    source_ids = sources_for(thread, action, using)
    thread_key = message["external_thread_id"]
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
