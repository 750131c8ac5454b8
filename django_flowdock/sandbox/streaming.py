"""The Streaming API: a flow's new messages over one long-lived response.

The threaded server gives each stream its own thread, so a stream that waits blocks
no other request. Streams wait on a process-wide :class:`Broadcaster` that every
stored message wakes, then read the new messages from the database: a stream that
reconnects with ``Last-Event-ID`` gets what it missed from the same query.
"""

import json
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django.db import close_old_connections

from .models import Flow, Message

#: Seconds between keep-alives: they tell clients and NAT firewalls that the
#: connection is alive, and let the server notice a client that went away.
KEEPALIVE_SECONDS = 10.0
BATCH = 100


class Broadcaster:
    """Wakes every waiting stream when a message is stored."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._version = 0

    @property
    def version(self) -> int:
        with self._changed:
            return self._version

    def publish(self) -> None:
        with self._changed:
            self._version += 1
            self._changed.notify_all()

    def wait(self, seen: int, timeout: float) -> bool:
        """Wait until something was published after version ``seen``; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self._version > seen, timeout=timeout)


broadcaster = Broadcaster()


def latest_message_id() -> int:
    return Message.objects.order_by("-id").values_list("id", flat=True).first() or 0


def messages_after(
    flows: Iterable[Flow],
    after: int,
    render: Callable[[Message], dict[str, Any]],
    *,
    keepalive: float = KEEPALIVE_SECONDS,
) -> Iterator[dict[str, Any] | None]:
    """Yield each new message of ``flows`` (rendered), and None when a keep-alive is due."""
    flow_ids = [flow.id for flow in flows]
    try:
        while True:
            seen = broadcaster.version
            batch = list(
                Message.objects.filter(flow_id__in=flow_ids, id__gt=after)
                .select_related("thread__source__application", "user", "parent")
                .prefetch_related("attachments")
                .order_by("id")[:BATCH]
            )
            for message in batch:
                after = message.pk
                yield render(message)
            if len(batch) == BATCH:
                continue
            if not broadcaster.wait(seen, keepalive):
                yield None
    finally:
        close_old_connections()


def json_stream(items: Iterator[dict[str, Any] | None]) -> Iterator[bytes]:
    """``application/json``: one message per line, ended by ``\\r\\n``; ``\\n`` keeps alive.

    The docs delimit messages with ``\\r`` and let parsers skip extra newlines;
    Flowdock's own clients split at ``\\r\\n``, which satisfies both.
    """
    yield b"\n"
    for item in items:
        if item is None:
            yield b"\n"
        else:
            yield json.dumps(item).encode() + b"\r\n"


def event_stream(items: Iterator[dict[str, Any] | None]) -> Iterator[bytes]:
    """``text/event-stream``: each message an event whose id is the message id."""
    yield b":\n\n"
    for item in items:
        if item is None:
            yield b":\n\n"
        else:
            yield f"id: {item['id']}\ndata: {json.dumps(item)}\n\n".encode()
