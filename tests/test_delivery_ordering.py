"""Messages of one thread to one source arrive in the order they were made."""

from __future__ import annotations

from django.utils import timezone

from django_flowdock.delivery.engine import claim, drain
from django_flowdock.delivery.fanout import fan_out
from django_flowdock.models import Message, Source
from tests.testapp.models import Ticket


def test_one_claim_takes_only_the_oldest_message_of_each_thread(
    transactional_db, source, worker_delivery
):
    first = Ticket.objects.create(subject="First")
    second = Ticket.objects.create(subject="Second")
    for n in range(3):
        first.subject = f"First v{n}"
        first.save()
    fan_out()
    claimed = claim(50).messages
    assert [m.thread_key for m in claimed] == [
        first.get_flowdock_thread_id(),
        second.get_flowdock_thread_id(),
    ]
    oldest = Message.objects.filter(thread_key=first.get_flowdock_thread_id()).order_by("pk")[0]
    assert claimed[0].pk == oldest.pk
    # Claimed messages are leased: nobody else takes them, nor their successors.
    assert claim(50).messages == []


def test_a_message_waiting_for_its_retry_holds_back_only_its_own_thread_once_flowdock_answers(
    transactional_db, source, sandbox, worker_delivery
):
    stuck = Ticket.objects.create(subject="Stuck")
    stuck.state = "pending"
    stuck.save()
    free = Ticket.objects.create(subject="Free")
    free.state = "solved"
    free.save()
    sandbox.inject_fault(status=503, retry_after=30)  # hits the oldest message: Stuck's
    result = drain()
    # The 503 holds the whole source: nothing else is tried while it may be down.
    assert (result.sent, result.retrying) == (0, 1) and sandbox.messages() == []
    source.refresh_from_db()
    assert source.failing_since is not None and source.held_until > timezone.now()

    # The next probe is due, Stuck's own retry is not: Free's message probes, is taken,
    # and the rest of Free's thread follows.
    Source.objects.filter(pk=source.pk).update(held_until=timezone.now())
    result = drain()
    assert (result.sent, result.retrying) == (2, 0)
    received = [m["external_thread_id"] for m in sandbox.messages()]
    assert received == [free.get_flowdock_thread_id()] * 2
    stuck_messages = Message.objects.filter(thread_key=stuck.get_flowdock_thread_id())
    assert set(stuck_messages.values_list("state", flat=True)) == {"pending"}

    stuck_messages.update(next_attempt_at=timezone.now())  # the Retry-After has passed
    assert drain().sent == 2
    stuck_received = sandbox.messages(external_thread_id=stuck.get_flowdock_thread_id())
    assert [m["title"] for m in stuck_received] == ["created ticket", "updated ticket"]
    assert "open → pending" in stuck_received[1]["body"]


def test_next_due_is_the_retry_of_the_first_in_line_not_the_messages_behind_it(
    transactional_db, source, worker_delivery
):
    from datetime import timedelta

    ticket = Ticket.objects.create(subject="Stuck")
    ticket.state = "pending"
    ticket.save()
    fan_out()
    first, behind = Message.objects.order_by("pk")
    retry_at = timezone.now() + timedelta(seconds=60)
    Message.objects.filter(pk=first.pk).update(next_attempt_at=retry_at)
    # The message behind is "due" by its own time, but waits for the first: a delivery
    # thread that slept until then would spin.
    assert behind.next_attempt_at < timezone.now()
    assert Message.objects.next_due() == retry_at

    lease_end = timezone.now() + timedelta(seconds=30)
    Message.objects.filter(pk=first.pk).update(
        next_attempt_at=timezone.now(), claimed_until=lease_end
    )
    assert Message.objects.next_due() == lease_end
