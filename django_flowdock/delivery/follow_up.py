"""What a task-queue drain should schedule after it ran."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from django_flowdock.delivery.engine import DrainResult
from django_flowdock.models import Message


def next_run(result: DrainResult, limit: int) -> datetime | None:
    """When to drain again: at once if the run stopped at its ``limit`` (more may be
    waiting); when what it left pending is next due (a retry, a held source's next
    probe) if it handled anything; else never (each commit enqueues its own drain)."""
    if result.handled >= limit:
        return timezone.now()
    if result.handled:
        # A retry, or a held source's next probe: whatever this run left pending.
        due_in = Message.objects.seconds_until_due()
        if due_in is not None:
            return timezone.now() + timedelta(seconds=max(0.0, due_in))
    return None
