"""Django Tasks backend: ``FLOWDOCK["DELIVERY"] = "tasks"``.

Uses ``django.tasks`` on Django 6 and the ``django-tasks`` backport before it, with
whichever task backend the project configured in ``TASKS`` (database, RQ, immediate).
Each committed transaction enqueues one ``drain_outbox`` task; a run that had to
reschedule messages enqueues a follow-up at the earliest retry when the task backend
can defer (``supports_defer``). Otherwise run ``manage.py flowdock_worker --once``
periodically so retries are not left waiting.
"""

from __future__ import annotations

from django.utils import timezone

from django_flowdock.conf import flowdock_settings
from django_flowdock.delivery.base import BaseBackend
from django_flowdock.delivery.engine import DrainResult, drain
from django_flowdock.delivery.follow_up import next_run
from django_flowdock.delivery.lines import check_lines

try:
    from django.tasks import task
except ImportError:  # before Django 6: the django-tasks backport
    from django_tasks import task  # type: ignore[no-redef]


@task()
def drain_outbox() -> dict[str, int]:
    """Deliver deliverable messages, handing over to a new task after
    ``TASK_DRAIN_LIMIT`` so one run does not hold a task worker for long."""
    limit = flowdock_settings.TASK_DRAIN_LIMIT
    check_lines()
    can_defer = drain_outbox.get_backend().supports_defer
    total = DrainResult()
    while True:
        result = drain(limit=limit)
        total.merge(result)
        when = next_run(result, limit)
        if when is None:
            break
        if can_defer:
            drain_outbox.using(run_after=when).enqueue()
            break
        if when > timezone.now():
            break  # a retry later on: left to a periodic ``flowdock_worker --once``
    return {"sent": total.sent, "retrying": total.retrying, "failed": total.failed}


class TasksBackend(BaseBackend):
    def dispatch(self) -> None:
        drain_outbox.enqueue()
