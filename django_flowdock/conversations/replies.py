"""Chat replies become comments: one Flowdock message applied in one transaction.

A message is applied at most once per flow: the comment, the :class:`ReceivedMessage`
row (unique per flow and message id) and the flow's cursor are written together, so a
listener killed at any point either did all of it or nothing.
"""

from __future__ import annotations

import functools
import logging
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from django_flowdock.conf import flowdock_settings
from django_flowdock.context import acting_as, receiving_from_flowdock
from django_flowdock.conversations.identity import learn_from_own_message
from django_flowdock.conversations.models import FlowCursor, ReceivedMessage, ThreadLink
from django_flowdock.delivery.fanout import load
from django_flowdock.mixins import FlowdockComment
from django_flowdock.models import FlowdockUser

logger = logging.getLogger("django_flowdock.conversations")

#: What users write in a thread. ``activity`` and ``discussion`` come from
#: integrations (ours among them) and never become comments.
CHAT_EVENTS = frozenset({"message", "comment"})
INBOX_EVENTS = frozenset({"activity", "discussion"})
#: Characters of a reply passed to the hook (Flowdock's own cap on chat messages);
#: longer ones, which only another API client could write, are cut and logged.
MAX_LENGTH = 8096
#: Failed replies tried again per call of :func:`retry_due`.
PAGE = 100
#: A failed reply is tried again after 10 s, 20 s, 40 s… and then hourly: a hook that
#: stays broken is not run (and logged) every few seconds for months.
RETRY_FIRST = timedelta(seconds=10)
RETRY_MAX = timedelta(hours=1)


def retry_delay(attempts: int) -> timedelta:
    """How long after its ``attempts``-th failure a reply is tried again."""
    return min(RETRY_MAX, RETRY_FIRST * 2 ** min(attempts - 1, 16))


@dataclass(frozen=True)
class ChatMessage:
    """A chat message as the comment hook receives it. ``text`` is plain text as the
    user typed it: escape it when showing it, like any user input."""

    id: int
    flow_id: str
    thread_id: str
    text: str
    flowdock_user_id: str
    sent: datetime | None
    data: dict[str, Any]


def chat_message(flow_id: str, data: dict[str, Any]) -> ChatMessage:
    content = data.get("content")
    if isinstance(content, dict):  # a comment: {"title": parent's title, "text": ...}
        content = content.get("text")
    text = content if isinstance(content, str) else ""
    if len(text) > MAX_LENGTH:
        logger.warning(
            "Flowdock message %s in flow %s has %d characters; cut to %d.",
            data.get("id"),
            flow_id,
            len(text),
            MAX_LENGTH,
        )
        text = text[:MAX_LENGTH]
    sent = data.get("sent")
    return ChatMessage(
        id=int(data["id"]),
        flow_id=flow_id,
        thread_id=str(data.get("thread_id") or ""),
        # NUL is not storable in PostgreSQL text; nothing a user types contains it.
        text=text.replace("\x00", ""),
        flowdock_user_id=str(data.get("user") or ""),
        sent=datetime.fromtimestamp(sent / 1000, UTC) if isinstance(sent, (int, float)) else None,
        data=data,
    )


@functools.cache
def comment_model_for(thread_model: type[models.Model]) -> type[models.Model] | None:
    """The comment model with a ``from_flowdock`` hook whose ``thread`` option is a
    relation to ``thread_model``."""
    for model in apps.get_models():
        if not issubclass(model, FlowdockComment) or not callable(
            getattr(model, "from_flowdock", None)
        ):
            continue
        name = model.flowdock_options().get("thread")
        try:
            field = model._meta.get_field(str(name))
        except FieldDoesNotExist:
            continue
        related = getattr(field, "related_model", None)
        if related is not None and related._meta.concrete_model is thread_model:
            return model
    return None


def author_for(flowdock_user_id: str) -> Any:
    """The active local user linked to the Flowdock user, else ``CONVERSATION_AUTHOR``."""
    if flowdock_user_id:
        link = (
            # An inactive user is treated as unknown, as actions do.
            FlowdockUser.objects.filter(flowdock_user_id=flowdock_user_id, user__is_active=True)
            .select_related("user")
            .first()
        )
        if link is not None:
            return link.user
    fallback = flowdock_settings.CONVERSATION_AUTHOR
    if not fallback:
        return None
    return (
        get_user_model()
        ._default_manager.filter(**{get_user_model().USERNAME_FIELD: fallback})
        .first()
    )


def _advance(flow_id: str, message_id: int) -> None:
    FlowCursor.objects.filter(flow_id=flow_id, last_message_id__lt=message_id).update(
        last_message_id=message_id
    )


def receive(
    flow_id: str,
    source_ids: Iterable[int],
    data: dict[str, Any],
    discover: Callable[[str], bool] | None = None,
) -> str:
    """Apply one message of the flow; return what became of it: ``"comment"``,
    ``"linked"`` (one of our posts, naming its thread), ``"duplicate"`` (this Flowdock
    message was read before), ``"ignored"``, ``"refused"`` (by the comment model's
    ``can_comment_from_flowdock``: recorded, not retried) or ``"failed"`` (the hook
    raised: recorded with its traceback and tried again later, see :func:`retry_due`)."""
    source_ids = list(source_ids)
    message_id = int(data["id"])
    event = data.get("event")
    if event in INBOX_EVENTS:
        linked = learn_from_own_message(source_ids, data)
        _advance(flow_id, message_id)
        return "linked" if linked else "ignored"
    link = None
    if event in CHAT_EVENTS and data.get("thread_id") and not data.get("external_user_name"):
        thread_id = str(data["thread_id"])
        link = _link_of(source_ids, thread_id)
        if link is None and discover is not None and discover(thread_id):
            link = _link_of(source_ids, thread_id)
    if link is None:
        _advance(flow_id, message_id)
        return "ignored"
    with transaction.atomic():
        try:
            with transaction.atomic():
                record = ReceivedMessage.objects.create(
                    flow_id=flow_id,
                    message_id=message_id,
                    thread_link=link,
                    flowdock_user_id=str(data.get("user") or ""),
                )
        except IntegrityError:
            # Only the unique (flow, message id) row: read before, by this process
            # before a restart or by another listener.
            _advance(flow_id, message_id)
            return "duplicate"
        outcome = _apply(record, link, data)
        _advance(flow_id, message_id)
    return outcome


def _link_of(source_ids: list[int], thread_id: str) -> ThreadLink | None:
    return (
        ThreadLink.objects.filter(source_id__in=source_ids, flowdock_thread_id=thread_id)
        .order_by("pk")
        .first()
    )


def _apply(record: ReceivedMessage, link: ThreadLink, data: dict[str, Any]) -> str:
    """Run the hook in a savepoint of the caller's transaction and record the outcome
    on ``record``: the hook's own errors (its ``IntegrityError`` too) fail this reply
    only; the flow's later replies keep flowing."""
    try:
        with transaction.atomic():
            comment = _create_comment(link, chat_message(record.flow_id, data))
    except ReplyRefused as refused:
        record.state = ReceivedMessage.State.REFUSED
        record.last_error = str(refused)
        record.next_attempt_at = None
        record.data = data
        record.save(update_fields=["state", "attempts", "last_error", "next_attempt_at", "data"])
        logger.warning(
            "Flowdock message %s in flow %s was refused: %s",
            record.message_id,
            record.flow_id,
            refused,
        )
        return "refused"
    except Exception as exc:
        record.state = ReceivedMessage.State.FAILED
        record.last_error = traceback.format_exc()
        record.next_attempt_at = timezone.now() + retry_delay(record.attempts)
        record.data = data
        record.save(update_fields=["state", "attempts", "last_error", "next_attempt_at", "data"])
        logger.error(
            "Flowdock message %s in flow %s could not become a comment (attempt %d, "
            "again after %s): %s",
            record.message_id,
            record.flow_id,
            record.attempts,
            record.next_attempt_at.isoformat(timespec="seconds"),
            type(exc).__name__,
            exc_info=True,
        )
        return "failed"
    record.state = ReceivedMessage.State.APPLIED
    record.last_error = ""
    record.next_attempt_at = None
    record.data = {}
    if comment is not None:
        record.comment_model = comment._meta.label_lower
        record.comment_pk = str(comment.pk)
    record.save()
    return "comment" if comment is not None else "ignored"


def retry(record_id: int) -> str | None:
    """Apply one failed reply again; None if it is no longer failed (applied meanwhile
    by another process)."""
    with transaction.atomic():
        record = ReceivedMessage.objects.select_for_update().failed().filter(pk=record_id).first()
        if record is None:
            return None
        record.attempts += 1
        link = record.thread_link
        if link is None:  # the object's thread link was deleted: nothing to apply to
            record.state = ReceivedMessage.State.APPLIED
            record.save(update_fields=["state", "attempts"])
            return "ignored"
        return _apply(record, link, record.data)


def retry_due(flow_id: str | None = None) -> int:
    """Apply again the failed replies whose backoff has passed; return how many were
    tried. Each is first claimed by moving its next attempt on (a conditional update),
    so two listeners never apply one twice."""
    tried = 0
    due = ReceivedMessage.objects.due().order_by("flow_id", "message_id")
    if flow_id is not None:
        due = due.filter(flow_id=flow_id)
    for pk, attempts, when in due.values_list("pk", "attempts", "next_attempt_at")[:PAGE]:
        claimed = (
            ReceivedMessage.objects.due()
            .filter(pk=pk, next_attempt_at=when)
            .update(next_attempt_at=timezone.now() + retry_delay(attempts + 1))
        )
        if claimed and retry(pk) is not None:
            tried += 1
    return tried


class ReplyRefused(Exception):
    """The comment model's ``can_comment_from_flowdock`` refused the reply's author."""


def _create_comment(link: ThreadLink, message: ChatMessage) -> Any:
    thread = load(link.model, link.object_pk)
    if thread is None:
        return None
    comment_model = comment_model_for(type(thread)._meta.concrete_model)
    if comment_model is None:
        return None
    author = author_for(message.flowdock_user_id)
    allowed = getattr(comment_model, "can_comment_from_flowdock", None)
    if callable(allowed) and not allowed(author, thread):
        raise ReplyRefused(
            f"{comment_model._meta.label}.can_comment_from_flowdock refused "
            f"{author if author is not None else 'an unknown Flowdock user'} "
            f"(Flowdock user {message.flowdock_user_id or '?'})."
        )
    with receiving_from_flowdock(), acting_as(author):
        hook: Any = comment_model.from_flowdock  # type: ignore[attr-defined]  # checked above
        return hook(thread, message, author)
