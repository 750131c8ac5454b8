"""What a task-queue drain should schedule after it ran."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from django_flowdock.delivery.engine import DrainResult
from django_flowdock.models import Message


def next_run(result: DrainResult, limit: int) -> datetime | None:
    """When to drain again: at once if the run stopped at its ``limit`` (more may be
    waiting), at the earliest retry if this run rescheduled messages, else never
    (each commit enqueues its own drain)."""
    if result.handled >= limit:
        return timezone.now()
    if result.retrying:
        return Message.objects.next_due()
    return None
