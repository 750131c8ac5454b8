"""The delivery loops' check of the lines: a line of pending messages that lost its
head, has two, or has a later message as its head is given its first pending message
as head, logged, and delivered in order, rather than waiting for ever."""

import logging
import os
import threading

import pytest
from django.db import OperationalError, connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_flowdock.delivery import engine, get_backend, lines
from django_flowdock.delivery.engine import drain
from django_flowdock.delivery.fanout import fan_out
from django_flowdock.delivery.worker import Worker
from django_flowdock.models import Message
from django_flowdock.testing import wait_for_delivery
from tests.test_delivery_outcomes import sent
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
    (warning,) = [r for r in caplog.records if "first pending" in r.getMessage()]
    assert "1 Flowdock message lines" in warning.getMessage()
    assert "(0 heads)" in warning.getMessage()


def test_an_earlier_message_re_queued_by_hand_behind_a_later_head_goes_out_first(
    source, worker_delivery, sandbox
):
    three_updates()
    first, second, third = Message.objects.order_by("pk")
    Message.objects.filter(pk=first.pk).update(state="sent", head=False)
    Message.objects.filter(pk=second.pk).update(head=True)
    # Re-queued in a shell, without Message.objects.retry(): the line still has one
    # head, but not its first pending message.
    Message.objects.filter(pk=first.pk).update(state="pending")

    assert lines.repair_lines() == 1
    assert drain().sent == 3

    assert [m["uuid"] for m in sandbox.messages()] == [str(m.uuid) for m in (first, second, third)]


def behind_a_message_in_flight(earlier: str) -> tuple[Message, Message]:
    """A line of three whose first message ended ``earlier`` and whose second is the
    head, claimed; the first and the claimed second."""
    three_updates()
    first, second, _third = Message.objects.order_by("pk")
    Message.objects.filter(pk=first.pk).update(state=earlier, head=False)
    Message.objects.filter(pk=second.pk).update(head=True)
    (in_flight,) = engine.claim(10).messages
    assert in_flight.pk == second.pk
    return first, in_flight


def heads() -> list[int]:
    return list(Message.objects.filter(head=True).values_list("pk", flat=True))


def record(attempt: engine.Attempt) -> list[bool]:
    return engine.record_all([(attempt, False)], engine.Clock.of("default"))


def test_a_line_whose_head_is_in_flight_is_left_to_its_outcome(hand_source, worker_delivery):
    first, in_flight = behind_a_message_in_flight("sent")
    Message.objects.filter(pk=first.pk).update(state="pending")

    # Marking the first would let a second message of the thread go out meanwhile.
    assert lines.repair_lines() == 0
    assert heads() == [in_flight.pk]

    record(sent(in_flight))
    # Its outcome hands the head to the first pending message.
    assert heads() == [first.pk]


def test_a_retry_while_its_thread_has_a_message_in_flight_waits_for_that_outcome(
    hand_source, worker_delivery
):
    first, in_flight = behind_a_message_in_flight("failed")

    Message.objects.filter(pk=first.pk).retry()

    # Not claimable beside the message in flight: one message of a thread at a time.
    assert heads() == [in_flight.pk]
    assert engine.claim(10).messages == []
    record(sent(in_flight))
    assert [m.pk for m in engine.claim(10).messages] == [first.pk]


def test_a_retry_outcome_hands_the_head_back_to_a_message_retried_meanwhile(
    hand_source, worker_delivery
):
    first, in_flight = behind_a_message_in_flight("failed")
    Message.objects.filter(pk=first.pk).retry()

    # Flowdock did not answer the one in flight: it will be retried, after the first.
    in_flight.next_attempt_at = timezone.now()
    assert record(engine.Attempt(in_flight, engine.RETRYING)) == [True]

    assert heads() == [first.pk]


@pytest.mark.parametrize("loop", ["worker", "immediate", "tasks", "celery"])
def test_every_delivery_loop_repairs_the_lines_before_it_drains(
    loop, source, worker_delivery, sandbox, due, settings
):
    three_updates()
    Message.objects.update(head=False)
    settings.FLOWDOCK = {**settings.FLOWDOCK, "DELIVERY": loop}

    if loop == "worker":
        Worker(once=True).run()
    elif loop == "immediate":
        get_backend().dispatch()
        wait_for_delivery()
    elif loop == "tasks":
        from django_flowdock.delivery.tasks import drain_outbox

        settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}
        drain_outbox.call()
    else:
        from django_flowdock.delivery.celery import drain_outbox

        drain_outbox()

    assert Message.objects.filter(state="sent").count() == 3


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


def test_a_check_that_fails_is_logged_and_the_worker_still_delivers(
    source, worker_delivery, sandbox, due, monkeypatch, caplog
):
    Ticket.objects.create(subject="Printer on fire")

    def database_away():
        raise OperationalError("the database went away")

    monkeypatch.setattr(lines, "repair_lines", database_away)
    with caplog.at_level(logging.ERROR, logger="django_flowdock.delivery"):
        assert Worker(once=True).run().sent == 1

    assert "Checking the heads of the Flowdock message lines failed" in caplog.text


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


def two_lines_in_flight() -> tuple[list[Message], Ticket]:
    """Two threads' messages claimed; the second thread's ticket."""
    Ticket.objects.create(subject="One")
    second = Ticket.objects.create(subject="Two")
    fan_out()
    claimed = sorted(engine.claim(10).messages, key=lambda m: m.pk)
    assert len(claimed) == 2
    return claimed, second


def fan_out_an_update_elsewhere(ticket: Ticket) -> None:
    """Another drain, on a connection of its own, fans out an update of ``ticket``."""

    def update() -> None:
        try:
            ticket.subject += ", updated"
            ticket.save()
            fan_out()
        finally:
            connections.close_all()

    other = threading.Thread(target=update)
    other.start()
    other.join()


def test_under_repeatable_read_a_head_lost_to_a_concurrent_fan_out_is_repaired(
    source, worker_delivery, sandbox
):
    if connection.vendor != "postgresql":
        pytest.skip("the lost head is PostgreSQL's REPEATABLE READ snapshot (DATABASE_URL)")
    claimed, second = two_lines_in_flight()

    # Two outcomes written in one transaction of the caller's under REPEATABLE READ;
    # between them, another drain fans out an update of the second thread. Its head is
    # in flight, so the update is not a head; the second outcome's hand-over reads the
    # transaction's snapshot, taken before it.
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        for message in claimed:
            attempt = sent(message)
            assert engine._write_outcome(message, engine._outcome_fields(attempt), ended=True)
            if message is claimed[0]:
                fan_out_an_update_elsewhere(second)

    waiting = Message.objects.get(state="pending")
    assert not waiting.head  # the race happened: the line has no head
    assert drain().handled == 0

    assert lines.repair_lines() == 1
    assert drain().sent == 1
    assert sandbox.messages()[-1]["uuid"] == str(waiting.uuid)


@pytest.fixture
def repeatable_read():
    """The project's ``OPTIONS["isolation_level"]``: REPEATABLE READ."""
    if connection.vendor == "postgresql":
        from django.db.backends.postgresql.psycopg_any import IsolationLevel

        level = IsolationLevel.REPEATABLE_READ
    elif connection.vendor == "mysql":
        level = "repeatable read"
    else:
        pytest.skip("SQLite has no isolation level to set (DATABASE_URL or MARIADB_URL)")
    options = connection.settings_dict["OPTIONS"]
    options["isolation_level"] = level
    connection.close()
    yield
    del options["isolation_level"]
    connection.close()


@pytest.mark.parametrize(
    "one_query", [True, False], ids=["as the connection allows", "in a transaction"]
)
def test_under_repeatable_read_fan_out_and_outcomes_write_at_read_committed(
    one_query, repeatable_read, source, worker_delivery, sandbox, monkeypatch
):
    if not one_query:
        monkeypatch.setattr(engine, "_one_query", lambda connection: False)
    ticket = Ticket.objects.create(subject="Printer on fire")
    ticket.state = "pending"
    ticket.save()

    with CaptureQueriesContext(connection) as captured:
        assert drain().sent == 2  # fanned out by the drain

    switched = [q for q in captured.captured_queries if "READ COMMITTED" in q["sql"]]
    # Fan-out's transaction; and each outcome's, where it is one (one at a time here).
    alone = one_query and engine._one_query(connection)
    assert len(switched) == (1 if alone else 3), switched
    queued = [str(u) for u in Message.objects.order_by("pk").values_list("uuid", flat=True)]
    assert [m["uuid"] for m in sandbox.messages()] == queued


def test_outcomes_written_together_under_repeatable_read_hand_on_what_fan_out_added(
    repeatable_read, hand_source, worker_delivery, monkeypatch
):
    if connection.vendor == "mysql":
        pytest.skip("on MariaDB the other drain's fan-out waits for the outcomes' row locks")
    claimed, second = two_lines_in_flight()
    write = engine._write_outcome

    def then_a_fan_out_elsewhere(message, fields, *, ended):
        written = write(message, fields, ended=ended)
        if message is claimed[0]:
            fan_out_an_update_elsewhere(second)
        return written

    monkeypatch.setattr(engine, "_write_outcome", then_a_fan_out_elsewhere)
    answered = [(sent(message), False) for message in claimed]

    assert engine.record_all(answered, engine.Clock.of("default")) == [True, True]

    # The outcomes' transaction reads at READ COMMITTED: the update is its line's head.
    assert Message.objects.get(state="pending").head
