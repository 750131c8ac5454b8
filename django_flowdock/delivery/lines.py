"""Lines (a source and a thread) and their heads: every line with pending messages has
exactly one head, its first pending message.

Fan-out and outcomes keep the ``head`` marker in the same transaction as what they
write, at READ COMMITTED (``read_committed``), so that each reads the line as the
other left it. Some things are outside their reach: a row edited by hand
(``Message.objects.filter(...).update(state="pending")`` in a shell), or a server
whose default isolation is stricter. A line without a head is never claimed, so its
messages would wait for ever; with two heads, or a later message as its head, they
could go out of order. So the delivery loops check every few minutes: one query over
the pending messages finds such lines, each one's mark is moved under the line's lock
(``refresh_heads``), and the lines moved are logged.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

from django.db import connections, router, transaction
from django.db.models import Count, F, Min, Q

from django_flowdock.models import Message

logger = logging.getLogger("django_flowdock.delivery")

#: How often a delivery loop checks the lines, per process.
CHECK_SECONDS = 300.0

_checked: dict[int, float] = {}
_checked_lock = threading.Lock()


@contextlib.contextmanager
def read_committed(using: str, *, savepoint: bool) -> Iterator[None]:
    """A transaction that writes heads, at READ COMMITTED whatever the project's
    ``isolation_level``: each must read the line as it is once it holds its rows, where
    REPEATABLE READ would read the transaction's first snapshot and miss what the other
    side wrote meanwhile (SERIALIZABLE would abort instead)."""
    connection = connections[using]
    # Inside a caller's transaction it is too late to switch: its level applies.
    outermost = not connection.in_atomic_block and connection.get_autocommit()
    with transaction.atomic(using=using, savepoint=savepoint):
        if outermost and _above_read_committed(connection):
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        yield


def _above_read_committed(connection: Any) -> bool:
    """Whether the project set a stricter ``isolation_level`` in ``OPTIONS``."""
    level = connection.settings_dict["OPTIONS"].get("isolation_level")
    if level is None:
        return False
    if connection.vendor == "postgresql":
        from django.db.backends.postgresql.psycopg_any import IsolationLevel

        return IsolationLevel(level) in (
            IsolationLevel.REPEATABLE_READ,
            IsolationLevel.SERIALIZABLE,
        )
    return connection.vendor == "mysql" and level in ("repeatable read", "serializable")


def repair_lines() -> int:
    """Give each line of pending messages whose head is missing, doubled or not its
    first pending message that message as its only head; return the number of lines
    repaired. A line whose head a worker holds is left to that message's outcome."""
    using = router.db_for_write(Message)
    head = Q(head=True)
    suspects = list(
        Message.objects.using(using)
        .pending()
        .order_by()
        .values("source_id", "thread_key")
        .annotate(
            heads=Count("pk", filter=head), first=Min("pk"), first_head=Min("pk", filter=head)
        )
        .filter(Q(heads=0) | Q(heads__gt=1) | ~Q(first=F("first_head")))
        .values_list("source_id", "thread_key", "heads")
    )
    repaired = [
        (source_id, thread_key, heads)
        for source_id, thread_key, heads in suspects
        # Moved under the line's lock: a line fixed meanwhile (a retry, an expiry
        # between its two writes) counts for nothing.
        if Message.objects.using(using)
        .filter(source_id=source_id, thread_key=thread_key)
        .refresh_heads()
    ]
    if repaired:
        logger.warning(
            "%d Flowdock message lines did not have their first pending message as their "
            "only head; now they do (a message row edited by hand, or a database whose "
            "default isolation is stricter than READ COMMITTED, can cause this): %s",
            len(repaired),
            ", ".join(f"source {s} thread {t!r} ({h} heads)" for s, t, h in repaired[:10]),
        )
    return len(repaired)


def check_lines() -> int | None:
    """:func:`repair_lines` if this process has not checked for ``CHECK_SECONDS``
    (at once in a new process, or a forked child); ``None`` when not due or when the
    check failed (logged: the drain that follows goes on, and the next check is
    ``CHECK_SECONDS`` later)."""
    now = time.monotonic()
    with _checked_lock:
        last = _checked.get(os.getpid())
        if last is not None and now - last < CHECK_SECONDS:
            return None
        _checked[os.getpid()] = now
    try:
        return repair_lines()
    except Exception:
        logger.exception("Checking the heads of the Flowdock message lines failed")
        return None
