"""The Django Tasks backend (``django_tasks`` backport on Django 5.2)."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.utils import timezone

from django_flowdock.delivery.tasks import drain_outbox
from django_flowdock.models import Message
from tests.testapp.models import Ticket

IMMEDIATE = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
DUMMY = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}


@pytest.fixture
def tasks_delivery(settings):
    settings.FLOWDOCK = {**settings.FLOWDOCK, "DELIVERY": "tasks"}


def test_commit_enqueues_a_drain_task_that_delivers(
    transactional_db, source, sandbox, settings, tasks_delivery
):
    settings.TASKS = IMMEDIATE
    with transaction.atomic():
        ticket = Ticket.objects.create(subject="Through django-tasks")
        ticket.state = "pending"
        ticket.save()
        assert sandbox.messages() == []  # nothing leaves before the commit
    received = sandbox.messages()
    assert [m["thread"]["status"]["value"] for m in received] == ["pending"]
    assert Message.objects.get().state == "sent"


def test_one_task_per_transaction(transactional_db, source, sandbox, settings, tasks_delivery):
    settings.TASKS = DUMMY
    backend = drain_outbox.get_backend()
    backend.clear()
    with transaction.atomic():
        for n in range(3):
            Ticket.objects.create(subject=f"T{n}")
    assert len(backend.results) == 1
    assert backend.results[0].task.name == "drain_outbox"
    backend.clear()


def test_a_run_with_retries_schedules_a_follow_up_at_the_retry_time(
    transactional_db, source, sandbox, settings, tasks_delivery
):
    settings.TASKS = DUMMY
    Ticket.objects.create(subject="Flaky")
    backend = drain_outbox.get_backend()
    backend.clear()
    sandbox.inject_fault(status=503, retry_after=30)
    drain_outbox.call()
    (follow_up,) = backend.results
    message = Message.objects.get()
    source.refresh_from_db()
    # Due once both its own retry and its source's hold have passed.
    due = max(message.next_attempt_at, source.held_until)
    assert abs((follow_up.task.run_after - due).total_seconds()) < 1
    assert message.next_attempt_at > timezone.now()
    backend.clear()
