"""The delivery loops' check of the lines: a line of pending messages that lost its
head (or has two) is given its first pending message as head, logged, and delivered,
rather than waiting for ever."""

import logging
import os
import threading

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from django_flowdock.delivery import engine, lines
from django_flowdock.delivery.engine import drain
from django_flowdock.delivery.fanout import fan_out
from django_flowdock.delivery.worker import Worker
from django_flowdock.models import Message
from tests.testapp.models import Ticket

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def due(monkeypatch):
    """The check is due in this process, as in a worker that just started."""
    monkeypatch.delitem(lines._checked, os.getpid())


def three_updates(subject: str = "Printer on fire") -> Ticket:
    ticket = Ticket.objects.create(subject=subject)
    for state in ("pending", "solved"):
        ticket.state = state
        ticket.save()
    fan_out()
    return ticket


def test_a_line_edited_by_hand_without_a_head_is_repaired_and_delivered_in_order(
    source, worker_delivery, sandbox, due, caplog
):
    three_updates()
    # An operator re-queues the line in a shell, without refresh_heads().
    Message.objects.update(state="pending", head=False)
    assert drain().handled == 0  # nothing is first in line: nothing can be claimed

    with caplog.at_level(logging.WARNING, logger="django_flowdock.delivery"):
        result = Worker(once=True).run()

    assert result.sent == 3
    queued = [str(u) for u in Message.objects.order_by("pk").values_list("uuid", flat=True)]
    assert [m["uuid"] for m in sandbox.messages()] == queued
    (warning,) = [r for r in caplog.records if "first in line" in r.getMessage()]
    assert "1 Flowdock message lines" in warning.getMessage()
    assert "(0 heads)" in warning.getMessage()


def test_a_line_with_two_heads_keeps_only_its_first(hand_source, worker_delivery):
    three_updates()
    Message.objects.update(head=True)

    assert lines.repair_lines() == 1

    assert list(Message.objects.order_by("pk").values_list("head", flat=True)) == [
        True,
        False,
        False,
    ]
    assert lines.repair_lines() == 0


def test_the_check_runs_at_once_in_a_process_then_every_few_minutes(
    hand_source, worker_delivery, due, monkeypatch
):
    three_updates()
    Message.objects.update(head=False)

    assert lines.check_lines() == 1
    Message.objects.update(head=False)
    assert lines.check_lines() is None  # checked less than CHECK_SECONDS ago
    monkeypatch.setattr(lines, "CHECK_SECONDS", 0.0)
    assert lines.check_lines() == 1


def test_under_repeatable_read_a_head_lost_to_a_concurrent_fan_out_is_repaired(
    source, worker_delivery, sandbox
):
    if connection.vendor != "postgresql":
        pytest.skip("the lost head is PostgreSQL's REPEATABLE READ snapshot (DATABASE_URL)")
    Ticket.objects.create(subject="One")
    second = Ticket.objects.create(subject="Two")
    fan_out()
    claimed = sorted(engine.claim(10).messages, key=lambda m: m.pk)
    assert len(claimed) == 2

    def fan_out_an_update_of_the_second_thread() -> None:
        try:
            second.subject = "Two, updated"
            second.save()
            fan_out()
        finally:
            connections.close_all()

    # Two outcomes written in one transaction (as record_all does for posts answered
    # together) under REPEATABLE READ; between them, another drain fans out an update
    # of the second thread. Its head is in flight, so the update is not a head; the
    # second outcome's hand-over reads the transaction's snapshot, taken before it.
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        for message in claimed:
            message.state, message.status_code = Message.State.SENT, 202
            message.sent_at = timezone.now()
            attempt = engine.Attempt(message, Message.State.SENT)
            assert engine._write_outcome(message, engine._outcome_fields(attempt), ended=True)
            if message is claimed[0]:
                other = threading.Thread(target=fan_out_an_update_of_the_second_thread)
                other.start()
                other.join()

    waiting = Message.objects.get(state="pending")
    assert not waiting.head  # the race happened: the line has no head
    assert drain().handled == 0

    assert lines.repair_lines() == 1
    assert drain().sent == 1
    assert sandbox.messages()[-1]["uuid"] == str(waiting.uuid)
