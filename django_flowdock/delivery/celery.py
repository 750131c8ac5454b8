"""Celery backend: ``FLOWDOCK["DELIVERY"] = "celery"``.

Each committed transaction enqueues one ``drain_outbox`` task; any worker that runs
it delivers whatever is deliverable (claims keep concurrent tasks apart). A run that
had to reschedule messages enqueues a follow-up for the earliest retry. Add the task
to Celery beat (every minute, say) so messages whose task was lost, for instance
while the broker was down, are still sent.
"""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from django_flowdock.conf import flowdock_settings
from django_flowdock.delivery.base import BaseBackend
from django_flowdock.delivery.engine import drain
from django_flowdock.delivery.follow_up import next_run
from django_flowdock.delivery.lines import check_lines


@shared_task(name="django_flowdock.delivery.celery.drain_outbox", ignore_result=True)
def drain_outbox() -> dict[str, int]:
    """Deliver deliverable messages, at most ``TASK_DRAIN_LIMIT`` per run."""
    limit = flowdock_settings.TASK_DRAIN_LIMIT
    check_lines()
    result = drain(limit=limit)
    when = next_run(result, limit)
    if when is not None:
        drain_outbox.apply_async(countdown=max(0.0, (when - timezone.now()).total_seconds()))
    return {"sent": result.sent, "retrying": result.retrying, "failed": result.failed}


class CeleryBackend(BaseBackend):
    def dispatch(self) -> None:
        drain_outbox.delay()
