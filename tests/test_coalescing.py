"""Several saves of one item inside one transaction become one activity."""

from __future__ import annotations

import pytest
from django.db import transaction

from django_flowdock.models import Message
from tests.testapp.models import Reply, Ticket


@pytest.fixture
def worker_delivery(db, source, settings):
    settings.FLOWDOCK = {**settings.FLOWDOCK, "DELIVERY": "worker"}


def changes(message: Message) -> str:
    return message.payload.get("body", "")


def test_create_then_updates_become_one_created_activity_with_the_final_state(
    worker_delivery,
):
    with transaction.atomic():
        ticket = Ticket.objects.create(subject="Draft")
        ticket.subject = "Printer on fire"
        ticket.save()
        ticket.state = "pending"
        ticket.save()
    message = Message.objects.get()
    assert message.payload["title"] == "created ticket"
    assert message.payload["thread"]["title"] == "Printer on fire"
    assert message.payload["thread"]["status"]["value"] == "pending"


def test_updates_become_one_activity_with_every_change_since_the_transaction_began(
    worker_delivery,
):
    ticket = Ticket.objects.create(subject="Printer")
    with transaction.atomic():
        ticket.state = "pending"
        ticket.save()
        ticket.priority = "high"
        ticket.save()
        ticket.state = "solved"
        ticket.save()
    _created, updated = Message.objects.order_by("pk")
    assert updated.payload["title"] == "updated ticket"
    assert updated.payload["thread"]["status"]["value"] == "solved"
    assert "Status: open → solved" in changes(updated)
    assert "priority: normal → high" in changes(updated).lower()
    assert "pending" not in changes(updated)


def test_changes_that_cancel_out_send_nothing(worker_delivery):
    ticket = Ticket.objects.create(subject="Printer")
    with transaction.atomic():
        ticket.state = "pending"
        ticket.save()
        ticket.state = "open"
        ticket.save()
    assert Message.objects.count() == 1  # only the creation


def test_a_rolled_back_savepoint_leaves_no_trace_in_the_merged_activity(worker_delivery):
    ticket = Ticket.objects.create(subject="Printer")
    with transaction.atomic():
        ticket.state = "pending"
        ticket.save()
        try:
            with transaction.atomic():
                ticket.priority = "urgent"
                ticket.save()
                raise RuntimeError("undo the priority")
        except RuntimeError:
            ticket.priority = "normal"
        ticket.subject = "Printer on fire"
        ticket.save()
    updates = Message.objects.filter(payload__title="updated ticket")
    assert updates.count() == 1
    body = changes(updates.get())
    assert "Status: open → pending" in body and "Title: Printer → Printer on fire" in body
    assert "urgent" not in body
    assert updates.get().payload["thread"]["fields"][0] == {"label": "Priority", "value": "normal"}


def test_a_comment_in_between_ends_the_merge_so_state_never_goes_back(worker_delivery):
    with transaction.atomic():
        ticket = Ticket.objects.create(subject="Printer")
        Reply.objects.create(ticket=ticket, text="Looking into it")
        ticket.state = "solved"
        ticket.save()
    events = [
        (m.event, m.payload["thread"]["status"]["value"]) for m in Message.objects.order_by("pk")
    ]
    assert events == [("activity", "open"), ("discussion", "open"), ("activity", "solved")]


def test_separate_transactions_are_not_merged(worker_delivery):
    ticket = Ticket.objects.create(subject="Printer")
    for state in ("pending", "solved"):
        with transaction.atomic():
            ticket.state = state
            ticket.save()
    assert Message.objects.filter(payload__title="updated ticket").count() == 2


def test_a_transaction_hands_its_messages_to_the_backend_once(
    db, source, locmem, django_capture_on_commit_callbacks
):
    def callbacks_for(saves: int) -> int:
        with (
            django_capture_on_commit_callbacks(execute=True) as callbacks,
            transaction.atomic(),
        ):
            for n in range(saves):
                Ticket.objects.create(subject=f"Ticket {n}")
        return len(callbacks)

    assert callbacks_for(1) == callbacks_for(5)
    assert [m["thread"]["title"] for m in locmem] == [f"Ticket {n}" for n in (0, 0, 1, 2, 3, 4)]


def test_merged_activity_is_accepted_by_flowdock(transactional_db, source, sandbox):
    with transaction.atomic():
        ticket = Ticket.objects.create(subject="Draft")
        ticket.subject = "Final"
        ticket.state = "solved"
        ticket.save()
    received = sandbox.messages(external_thread_id=ticket.get_flowdock_thread_id())
    assert len(received) == 1
    assert received[0]["thread"]["title"] == "Final"
