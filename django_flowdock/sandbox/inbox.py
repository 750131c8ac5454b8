"""Posting a message: find or start its thread, keep the latest state, append to it."""

from typing import Any

from rest_framework.exceptions import ValidationError

from .models import Message, Source, Thread
from .representations import thread_state
from .serializers import BLANK
from .writes import write_transaction


def post_message(source: Source, data: dict[str, Any]) -> tuple[Message, bool]:
    """Store a validated message; return it and whether it is new.

    A ``uuid`` already seen in the flow returns the earlier message: a client that
    retries after a lost answer must not make a second copy.
    """
    with write_transaction():
        if data["uuid"]:
            earlier = Message.objects.filter(flow=source.flow, uuid=data["uuid"]).first()
            if earlier is not None:
                return earlier, False
        thread = _thread_for(source, data)
        message = Message.objects.create(
            flow=source.flow,
            source=source,
            thread=thread,
            event=data["event"],
            title=data["title"],
            body=data["body"],
            author=dict(data["author"]),
            tags=data["tags"],
            uuid=data["uuid"],
            thread_state=thread_state(thread),
        )
    return message, True


def _thread_for(source: Source, data: dict[str, Any]) -> Thread:
    state = data["thread"]
    if data["thread_id"]:
        thread = Thread.objects.filter(flow=source.flow, id=data["thread_id"]).first()
        if thread is None:
            raise ValidationError({"thread_id": ["is invalid"]})
    else:
        thread = Thread.objects.filter(
            source=source, external_thread_id=data["external_thread_id"]
        ).first()
        if thread is None and state is None:
            raise ValidationError({"thread": [BLANK]})
        if thread is None:
            thread = Thread(
                flow=source.flow, source=source, external_thread_id=data["external_thread_id"]
            )
    if state is not None:
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
