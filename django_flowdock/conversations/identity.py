"""Thread identity: which Flowdock thread shows which object, learnt from what
Flowdock answers to a post and from the app's own messages coming back in the flow."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from django.db import IntegrityError, transaction

from django_flowdock.conversations.models import FlowCursor, ThreadLink
from django_flowdock.delivery.fanout import captured_thread, load
from django_flowdock.models import Change, Message, Source
from django_flowdock.threads.options import option

logger = logging.getLogger("django_flowdock.conversations")


def learns_thread_ids(source: Source) -> bool:
    """Sources the listener can read: active, with a user's OAuth token. Their posts
    ask Flowdock for the stored message (no query: the token is not loaded)."""
    return source.active and source.token_id is not None


def thread_object(message: Message) -> tuple[str, str] | None:
    """(model label, pk) of the object whose thread ``message`` was posted to."""
    change = message.change
    if change is None:
        return None
    if change.event != Change.Event.COMMENTED:
        return change.model, change.object_pk
    captured = captured_thread(json.loads(change.values or "{}"))
    if captured is not None:  # no row read: the comment or its thread may be gone
        model, pk = captured
        return (model._meta.concrete_model or model)._meta.label_lower, pk
    comment = load(change.model, change.object_pk, change)
    thread = None if comment is None else option(comment, "thread")
    if thread is None:
        return None
    return thread._meta.concrete_model._meta.label_lower, str(thread.pk)


def link_thread(message: Message, flowdock_thread_id: str, *, replace: bool = True) -> bool:
    """Keep ``flowdock_thread_id`` for the message's item; two processes may race.
    With ``replace=False`` a link already learnt is kept as it is. True if written."""
    shown = thread_object(message)
    if shown is None:
        return False
    values: dict[str, Any] = {
        "flowdock_thread_id": flowdock_thread_id,
        "model": shown[0],
        "object_pk": shown[1],
    }
    key: dict[str, Any] = {"source_id": message.source_id, "thread_key": message.thread_key}
    try:
        with transaction.atomic():
            if replace:
                ThreadLink.objects.update_or_create(**key, defaults=values)
                return True
            return ThreadLink.objects.get_or_create(**key, defaults=values)[1]
    except IntegrityError:
        if replace:
            ThreadLink.objects.filter(**key).update(**values)
        return replace


def remember_posted_thread(sender: Any, message: Message, response: Any, **kwargs: Any) -> None:
    """``message_sent`` receiver: keep the ``thread_id`` of a ``200`` answer, and start
    the flow's cursor here if the listener never ran, so replies made before it first
    starts are still read."""
    source = message.source
    if not learns_thread_ids(source) or getattr(response, "status_code", None) != 200:
        return
    try:
        data = response.json()
    except ValueError:
        return
    if not isinstance(data, dict) or not data.get("thread_id"):
        return
    link_thread(message, str(data["thread_id"]))
    flow_id = source.flow_id or str(data.get("flow") or "")
    if flow_id and str(data.get("id", "")).isdigit():
        FlowCursor.objects.get_or_create(
            flow_id=flow_id, defaults={"last_message_id": int(data["id"])}
        )


def _posted_as(posted: Message, data: dict[str, Any]) -> bool:
    """Whether the flow's message shows what ``posted`` sent: its event, title and
    author. Another integration reusing our ``uuid`` (unique in a flow only by
    convention) does not post our content."""
    payload = posted.payload or {}
    author, sent_author = data.get("author"), payload.get("author")
    author = author if isinstance(author, dict) else {}
    sent_author = sent_author if isinstance(sent_author, dict) else {}
    return (
        data.get("event") == posted.event
        and (data.get("title") or "") == (payload.get("title") or "")
        and (author.get("name") or "") == (sent_author.get("name") or "")
    )


def learn_from_own_message(source_ids: list[int], data: dict[str, Any]) -> bool:
    """An inbox message of the flow that one of our sources posted names its item's
    thread (a post answered ``202`` did not). It is ours when it carries the ``uuid``
    of one of our posts *and* that post's content; a link already learnt is never
    replaced from the flow (only our own post's answer does that). True if a link was
    written."""
    thread_id, given = data.get("thread_id"), data.get("uuid")
    if not thread_id or not given:
        return False
    try:
        wanted = uuid.UUID(str(given))
    except ValueError:
        return False
    posted = (
        Message.objects.filter(uuid=wanted, source_id__in=source_ids)
        .select_related("change")
        .first()
    )
    if posted is None:
        return False
    if not _posted_as(posted, data):
        logger.warning(
            "Flow message %s reuses the uuid of our message %s but not its content; "
            "its thread %s is not linked to %s.",
            data.get("id"),
            posted.pk,
            thread_id,
            posted.thread_key,
        )
        return False
    return link_thread(posted, str(thread_id), replace=False)
