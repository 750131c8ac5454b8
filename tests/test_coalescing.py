"""Several saves of one item inside one transaction become one activity. Coalescing is
done at delivery from the captured changes, with public Django APIs only."""

from __future__ import annotations

import pytest
from django.db import transaction

from django_flowdock.models import Change
from tests.testapp.models import Reply, Ticket

pytestmark = pytest.mark.django_db(transaction=True)


def titles(outbox: list[dict]) -> list[str]:
    return [m["title"] for m in outbox]


def test_create_then_updates_become_one_created_activity_with_the_final_state(locmem, source):
    with transaction.atomic():
        ticket = Ticket.objects.create(subject="Draft")
        ticket.subject = "Printer on fire"
        ticket.save()
        ticket.state = "pending"
        ticket.save()
    [message] = locmem
    assert message["title"] == "created ticket"
    assert message["thread"]["title"] == "Printer on fire"
    assert message["thread"]["status"]["value"] == "pending"


def test_updates_become_one_activity_with_every_change_since_the_transaction_began(locmem, source):
    ticket = Ticket.objects.create(subject="Printer")
    with transaction.atomic():
        ticket.state = "pending"
        ticket.save()
        ticket.priority = "high"
        ticket.save()
        ticket.state = "solved"
        ticket.save()
    _created, updated = locmem
    assert updated["title"] == "updated ticket"
    assert updated["thread"]["status"]["value"] == "solved"
    assert "Status: open → solved" in updated["body"]
    assert "priority: normal → high" in updated["body"].lower()
    assert "pending" not in updated["body"]


def test_changes_that_cancel_out_send_nothing(locmem, source):
    ticket = Ticket.objects.create(subject="Printer")
    with transaction.atomic():
        ticket.state = "pending"
        ticket.save()
        ticket.state = "open"
        ticket.save()
    assert titles(locmem) == ["created ticket"]


def test_a_rolled_back_savepoint_leaves_no_trace_in_the_merged_activity(locmem, source):
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
    _created, updated = locmem
    assert "Status: open → pending" in updated["body"]
    assert "Title: Printer → Printer on fire" in updated["body"]
    assert "urgent" not in updated["body"]
    assert updated["thread"]["fields"][0] == {"label": "Priority", "value": "normal"}


def test_a_comment_in_between_ends_the_merge(locmem, source):
    with transaction.atomic():
        ticket = Ticket.objects.create(subject="Printer")
        Reply.objects.create(ticket=ticket, text="Looking into it")
        ticket.state = "solved"
        ticket.save()
    assert [(m["event"], m["title"]) for m in locmem] == [
        ("activity", "created ticket"),
        ("discussion", "commented"),
        ("activity", "updated ticket"),
    ]
    # Every message carries the latest state: the thread never goes back.
    assert {m["thread"]["status"]["value"] for m in locmem} == {"solved"}


def test_separate_transactions_are_not_merged(locmem, source):
    ticket = Ticket.objects.create(subject="Printer")
    for state in ("pending", "solved"):
        with transaction.atomic():
            ticket.state = state
            ticket.save()
    assert titles(locmem) == ["created ticket", "updated ticket", "updated ticket"]


def test_a_transaction_hands_over_once_however_many_changes_it_captured(
    settings, source, monkeypatch
):
    from django_flowdock.delivery import get_backend

    settings.FLOWDOCK = {**settings.FLOWDOCK, "DELIVERY": "worker"}
    handed_over = []
    monkeypatch.setattr(get_backend(), "dispatch", lambda: handed_over.append(1))
    with transaction.atomic():
        for n in range(5):
            Ticket.objects.create(subject=f"Ticket {n}")
    assert handed_over == [1]
    tokens = set(Change.objects.values_list("transaction", flat=True))
    assert len(tokens) == 1 and "" not in tokens


def test_merged_activity_is_accepted_by_flowdock(source, sandbox):
    with transaction.atomic():
        ticket = Ticket.objects.create(subject="Draft")
        ticket.subject = "Final"
        ticket.state = "solved"
        ticket.save()
    received = sandbox.messages(external_thread_id=ticket.get_flowdock_thread_id())
    assert len(received) == 1
    assert received[0]["thread"]["title"] == "Final"


def test_a_rolled_back_transaction_leaves_nothing_that_hides_a_later_update(locmem, source):
    ticket = Ticket.objects.create(subject="Printer")
    with pytest.raises(RuntimeError), transaction.atomic():
        ticket.state = "solved"
        ticket.save()
        raise RuntimeError("rolled back")
    Ticket.objects.filter(pk=ticket.pk).update(state="pending")  # another writer
    again = Ticket.objects.get(pk=ticket.pk)
    again.state = "open"
    again.save()
    _created, updated = locmem
    assert "Status: pending → open" in updated["body"]
