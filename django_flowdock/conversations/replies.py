"""Chat replies become comments: one Flowdock message applied in one transaction.

A message is applied at most once per flow: the comment, the :class:`ReceivedMessage`
row (unique per flow and message id) and the flow's cursor are written together, so a
listener killed at any point either did all of it or nothing.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist
from django.db import DatabaseError, IntegrityError, models, transaction

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
    """The local user linked to the Flowdock user, else ``CONVERSATION_AUTHOR``."""
    if flowdock_user_id:
        link = (
            FlowdockUser.objects.filter(flowdock_user_id=flowdock_user_id)
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


def receive(flow_id: str, source_ids: Iterable[int], data: dict[str, Any]) -> str:
    """Apply one message of the flow; return what became of it: ``"comment"``,
    ``"linked"`` (one of our posts, naming its thread), ``"duplicate"``,
    ``"ignored"`` or ``"failed"`` (the hook raised; logged and skipped)."""
    source_ids = list(source_ids)
    message_id = int(data["id"])
    event = data.get("event")
    if event in INBOX_EVENTS:
        linked = learn_from_own_message(source_ids, data)
        _advance(flow_id, message_id)
        return "linked" if linked else "ignored"
    link = None
    if event in CHAT_EVENTS and data.get("thread_id") and not data.get("external_user_name"):
        link = (
            ThreadLink.objects.filter(
                source_id__in=source_ids, flowdock_thread_id=str(data["thread_id"])
            )
            .order_by("pk")
            .first()
        )
    if link is None:
        _advance(flow_id, message_id)
        return "ignored"
    message = chat_message(flow_id, data)
    try:
        with transaction.atomic():
            ReceivedMessage.objects.create(
                flow_id=flow_id,
                message_id=message_id,
                thread_link=link,
                flowdock_user_id=message.flowdock_user_id,
            )
            comment = _create_comment(link, message)
            if comment is not None:
                ReceivedMessage.objects.filter(flow_id=flow_id, message_id=message_id).update(
                    comment_model=comment._meta.label_lower, comment_pk=str(comment.pk)
                )
            _advance(flow_id, message_id)
    except IntegrityError:
        # Applied before, by this process before a restart or by another listener.
        _advance(flow_id, message_id)
        return "duplicate"
    except DatabaseError:
        raise  # the listener backs off and reads the message again
    except Exception:
        logger.exception(
            "Flowdock message %s in flow %s could not become a comment; skipped",
            message_id,
            flow_id,
        )
        _advance(flow_id, message_id)
        return "failed"
    return "comment" if comment is not None else "ignored"


def _create_comment(link: ThreadLink, message: ChatMessage) -> Any:
    thread = load(link.model, link.object_pk)
    if thread is None:
        return None
    comment_model = comment_model_for(type(thread)._meta.concrete_model)
    if comment_model is None:
        return None
    author = author_for(message.flowdock_user_id)
    with receiving_from_flowdock(), acting_as(author):
        hook: Any = comment_model.from_flowdock  # type: ignore[attr-defined]  # checked above
        return hook(thread, message, author)
