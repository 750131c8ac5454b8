"""``manage.py flowdock_worker`` run in-process: --once, --max-messages, --threads."""

from __future__ import annotations

import io
import logging
import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import connections

from django_flowdock.delivery.worker import Worker, WorkerBackend
from django_flowdock.models import Message
from django_flowdock.signals import message_sent
from tests.testapp.models import Ticket


def in_thread(worker: Worker) -> threading.Thread:
    def run():
        try:
            worker.run()
        finally:
            connections.close_all()

    return threading.Thread(target=run)


def make_messages(items: int, updates: int) -> list[Ticket]:
    tickets = [Ticket.objects.create(subject=f"T{n}") for n in range(items)]
    for n in range(updates):
        for ticket in tickets:
            ticket.subject = f"T{ticket.pk} v{n}"
            ticket.save()
    return tickets


def run_worker(*args: str) -> str:
    out = io.StringIO()
    call_command("flowdock_worker", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_once_sends_everything_due_and_exits(transactional_db, source, sandbox, worker_delivery):
    make_messages(2, 2)
    output = run_worker("--once")
    assert "6 sent, 0 to retry, 0 failed, 0 cancelled" in output
    assert len(sandbox.messages()) == 6
    assert not Message.objects.pending().exists()


def test_max_messages_stops_after_that_many(transactional_db, source, sandbox, worker_delivery):
    make_messages(3, 1)
    output = run_worker("--max-messages", "4")
    assert "4 sent" in output
    assert Message.objects.pending().count() == 2
    assert len(sandbox.messages()) == 4


def test_threads_deliver_everything_in_thread_order(
    transactional_db, source, sandbox, worker_delivery
):
    tickets = make_messages(4, 3)
    output = run_worker("--once", "--threads", "3")
    assert "16 sent" in output
    for ticket in tickets:
        received = sandbox.messages(external_thread_id=ticket.get_flowdock_thread_id())
        assert [m["title"] for m in received] == ["created ticket"] + ["updated ticket"] * 3
        # Each update says what it changed, in the order the saves were made.
        for n, message in enumerate(received[1:]):
            assert f"T{ticket.pk} v{n}</li>" in message["body"]
        # Every message shows the thread as it was when it was posted: the latest.
        assert received[-1]["thread"]["title"] == f"T{ticket.pk} v2"


def test_continuous_worker_polls_until_stopped_and_logs(
    transactional_db, source, sandbox, worker_delivery, caplog
):
    delivered = threading.Event()

    def on_sent(**kwargs):
        delivered.set()

    worker = Worker(idle_sleep=0.05)
    runner = in_thread(worker)
    message_sent.connect(on_sent)
    try:
        with caplog.at_level(logging.INFO, logger="django_flowdock"):
            runner.start()
            Ticket.objects.create(subject="Arrives while the worker idles")
            delivered.wait(timeout=5)
            worker.stop()
            runner.join(timeout=5)
    finally:
        message_sent.disconnect(on_sent)
    assert not runner.is_alive()
    assert worker.result.sent == 1
    assert "Delivered: 1 sent" in caplog.text


class FlakyBackend(WorkerBackend):
    """The worker backend whose first round fails as a restarting database would."""

    rounds = 0

    def transport(self):
        FlakyBackend.rounds += 1
        if FlakyBackend.rounds == 1:
            raise OSError("server closed the connection unexpectedly")
        return super().transport()


def test_worker_survives_a_failing_round(transactional_db, source, sandbox, settings, caplog):
    settings.FLOWDOCK = {**settings.FLOWDOCK, "DELIVERY": "tests.test_worker.FlakyBackend"}
    Ticket.objects.create(subject="Delivered on the second round")
    worker = Worker(idle_sleep=0.01, max_messages=1)
    with caplog.at_level(logging.ERROR, logger="django_flowdock"):
        worker.run()
    assert (worker.errors, worker.result.sent) == (1, 1)
    assert "server closed the connection unexpectedly" in caplog.text


def test_worker_stops_at_a_configuration_error_instead_of_retrying(
    transactional_db, source, settings
):
    settings.FLOWDOCK = {**settings.FLOWDOCK, "DELIVERY": "worker"}
    Ticket.objects.create(subject="Never sent by this worker")
    settings.FLOWDOCK = {**settings.FLOWDOCK, "DELIVERY": "carrier.Pigeon"}
    with pytest.raises(CommandError, match=r'configuration error: FLOWDOCK\["DELIVERY"\]'):
        run_worker()
    assert Message.objects.filter(state="sent").count() == 0


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--threads", "0"], "--threads must be at least 1"),
        (["--max-messages", "0"], "--max-messages must be at least 1"),
    ],
)
def test_bad_arguments_are_refused(db, args, error):
    with pytest.raises(CommandError, match=error):
        run_worker(*args)
