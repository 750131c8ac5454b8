"""The check under the heads: every line (source and thread) with pending messages has
exactly one head, and the delivery loops make sure of it every few minutes.

Fan-out and outcomes keep the ``head`` marker in the same transaction as what they
write, so a line should never lose it. Some things are outside their reach: a row
edited by hand (``Message.objects.update(state="pending")`` in a shell), or outcomes
written in a transaction under REPEATABLE READ, whose single snapshot can miss a message
fan-out added meanwhile. A line without a head is never claimed, so its messages would
wait for ever; with two, its messages could go out of order. The check finds such
lines in one query over the pending messages and gives each its first pending message
as head, and says so in the log.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from django.db import router
from django.db.models import Count, Q

from django_flowdock.models import Message

logger = logging.getLogger("django_flowdock.delivery")

#: How often a delivery loop checks the lines, per process.
CHECK_SECONDS = 300.0

_checked: dict[int, float] = {}
_checked_lock = threading.Lock()


def repair_lines() -> int:
    """Give each line of pending messages that has no head, or several, its first
    pending message as its only head; return the number of lines repaired."""
    using = router.db_for_write(Message)
    broken = list(
        Message.objects.using(using)
        .pending()
        .order_by()
        .values("source_id", "thread_key")
        .annotate(heads=Count("pk", filter=Q(head=True)))
        .exclude(heads=1)
        .values_list("source_id", "thread_key", "heads")
    )
    for source_id, thread_key, _heads in broken:
        Message.objects.using(using).filter(
            source_id=source_id, thread_key=thread_key
        ).refresh_heads()
    if broken:
        logger.warning(
            "%d Flowdock message lines had no message first in line, or several; each "
            "now has its first pending message as its head (a message row edited by "
            "hand, or outcomes written under REPEATABLE READ, can cause this): %s",
            len(broken),
            ", ".join(f"source {s} thread {t!r} ({h} heads)" for s, t, h in broken[:10]),
        )
    return len(broken)


def check_lines() -> int | None:
    """:func:`repair_lines` if this process has not checked for ``CHECK_SECONDS``
    (at once in a new process, or a forked child); ``None`` when not due."""
    now = time.monotonic()
    with _checked_lock:
        last = _checked.get(os.getpid())
        if last is not None and now - last < CHECK_SECONDS:
            return None
        _checked[os.getpid()] = now
    return repair_lines()
