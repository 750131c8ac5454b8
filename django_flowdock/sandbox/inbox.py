"""Storing what is posted: inbox messages into their threads, chat messages, files.

Every stored message wakes the streams (see :mod:`.streaming`) once its transaction
has committed.
"""

from dataclasses import dataclass
from typing import Any

from rest_framework.exceptions import ValidationError

from .images import image_size
from .models import Attachment, Flow, Message, Source, Thread, User
from .representations import thread_state
from .serializers import BLANK
from .streaming import broadcaster
from .tags import normalize_tags
from .writes import write_transaction


@dataclass
class Upload:
    """A file to store with a message; ``content_id`` is what ``cid:`` refers to."""

    file_name: str
    content_type: str
    data: bytes
    content_id: str = ""


def flow_users(flow: Flow) -> list[User]:
    # The sandbox has one organisation whose users are in every flow.
    return list(User.objects.order_by("id"))


def post_message(
    source: Source, data: dict[str, Any], uploads: list[Upload] | None = None
) -> Message:
    """Store a validated ``activity`` or ``discussion`` of ``source``.

    A ``uuid`` already used in the flow is stored again and marked ``repeated`` (the
    inbox shows it as "posted again"); it leaves the thread as it was, so a late
    retry of an old state cannot turn the thread back.
    """
    uploads = uploads or []
    with write_transaction():
        repeated = bool(data["uuid"]) and source.flow.messages.filter(uuid=data["uuid"]).exists()
        thread = _thread_for(source, data, apply_state=not repeated)
        message = Message.objects.create(
            flow=source.flow,
            source=source,
            thread=thread,
            event=data["event"],
            title=data["title"],
            body=data["body"],
            author=dict(data["author"]),
            tags=normalize_tags(
                data["tags"], users=flow_users(source.flow), has_files=bool(uploads)
            ),
            uuid=data["uuid"],
            repeated=repeated,
        )
        _store(message, uploads)
        _snapshot(message)
    broadcaster.publish()
    return message


def post_chat_message(
    flow: Flow,
    user: User,
    data: dict[str, Any],
    uploads: list[Upload] | None = None,
) -> Message:
    """Store a user's ``message``, ``comment``, ``status`` or ``file``.

    A ``message`` without ``thread_id`` starts a thread of its own, as every chat
    message does in Flowdock; a comment joins its parent's thread.
    """
    uploads = uploads or []
    event = data["event"]
    parent = None
    with write_transaction():
        thread = None
        if data.get("thread_id"):
            thread = flow.threads.filter(id=data["thread_id"]).first()
            if thread is None:
                raise ValidationError({"thread_id": ["is invalid"]})
        if event == "comment":
            if data.get("message") is None:
                raise ValidationError({"message": [BLANK]})
            parent = flow.messages.filter(pk=data["message"]).first()
            if parent is None or parent.event == "comment":
                raise ValidationError({"message": ["is invalid"]})
            thread = thread or parent.thread
        content: Any = None if event == "file" else data.get("content", "")
        if event == "message" and thread is None:
            thread = Thread.objects.create(flow=flow, title=content)
        elif thread is not None:
            thread.save(update_fields=["updated_at"])
        if event == "status":
            user.status = content
            user.save(update_fields=["status"])
        given = list(data.get("tags") or [])
        if parent is not None:
            given.append(f"influx:{parent.pk}")
        message = Message.objects.create(
            flow=flow,
            user=user,
            thread=thread,
            parent=parent,
            event=event,
            content=content,
            tags=normalize_tags(
                given,
                users=flow_users(flow),
                content=content if isinstance(content, str) else "",
                has_files=bool(uploads),
            ),
            uuid=data.get("uuid") or "",
            repeated=bool(data.get("uuid")) and flow.messages.filter(uuid=data["uuid"]).exists(),
            author={"name": data.get("external_user_name") or user.name, "avatar": user.avatar},
        )
        _store(message, uploads)
        _snapshot(message)
    broadcaster.publish()
    return message


def _snapshot(message: Message) -> None:
    """Keep the thread's state, counters included, as this message left it."""
    if message.thread is not None:
        message.thread_state = thread_state(message.thread)
        message.save(update_fields=["thread_state"])


def _store(message: Message, uploads: list[Upload]) -> list[Attachment]:
    stored = []
    for upload in uploads:
        size = image_size(upload.data) if upload.content_type.startswith("image/") else None
        width, height = size or (None, None)
        stored.append(
            Attachment.objects.create(
                message=message,
                content_id=upload.content_id,
                file_name=upload.file_name,
                content_type=upload.content_type,
                data=upload.data,
                size=len(upload.data),
                width=width,
                height=height,
            )
        )
    return stored


def _thread_for(source: Source, data: dict[str, Any], *, apply_state: bool) -> Thread:
    state = data["thread"]
    if data["thread_id"]:
        thread = Thread.objects.filter(flow=source.flow, id=data["thread_id"]).first()
        if thread is None:
            raise ValidationError({"thread_id": ["is invalid"]})
    else:
        thread = Thread.objects.filter(
            source=source, external_thread_id=data["external_thread_id"]
        ).first()
        if thread is None:
            thread = Thread(
                flow=source.flow, source=source, external_thread_id=data["external_thread_id"]
            )
            apply_state = True
    if apply_state:
        status = state["status"] or {}
        thread.title = state["title"]
        thread.body = state["body"]
        thread.external_url = state["external_url"]
        thread.status_value = status.get("value", "")
        thread.status_color = status.get("color", "")
        thread.fields = [dict(field) for field in state["fields"]]
        thread.actions = state["actions"]
    # Saving also moves the thread to the top of the inbox, as any new message does.
    thread.save()
    return thread
