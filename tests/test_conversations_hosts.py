"""One runtime, several hosts: listeners in separate processes read each flow once,
through a lease per flow in the database, and a SIGKILLed holder's flow is taken over
within a lease with no reply lost or doubled; ``flowdock_worker --listen`` delivers and
listens in one process. Against the strict local Flowdock (tests/conversations_api.py)."""

from __future__ import annotations

import signal
import subprocess
import threading
from datetime import timedelta

import pytest
from django.utils import timezone

from django_flowdock.conversations.leases import FlowLeases
from django_flowdock.conversations.models import FlowLease, ReceivedMessage
from tests.conversations_api import FlowdockStandIn, connect
from tests.test_conversations_processes import spawn_command, spawn_listener
from tests.test_conversations_runtime import replies, thread_of
from tests.testapp.models import Reply, Ticket
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

FLOWS = ("acme/main", "acme/other")


@pytest.fixture
def stand_in(settings):
    server = FlowdockStandIn()
    settings.FLOWDOCK = {**settings.FLOWDOCK, "API_URL": server.url}
    yield server
    server.stop()


@pytest.fixture
def processes():
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            process.communicate(timeout=60)


def holders() -> dict[str, str]:
    return dict(FlowLease.objects.values_list("flow_id", "holder"))


def pid_of(holder: str) -> int:
    return int(holder.split(":")[-2])


def test_two_listeners_read_each_flow_once_and_a_killed_holders_flow_is_taken_over(
    stand_in, processes
):
    sources = {path: connect(stand_in, path) for path in FLOWS}
    ticket = Ticket.objects.create(subject="Polish the flux capacitor")
    threads = {path: thread_of(ticket, source) for path, source in sources.items()}
    processes.extend([spawn_listener(stand_in.url), spawn_listener(stand_in.url)])
    leased = wait_for(lambda: len(holders()) == 2 and holders(), what="both flows leased")
    wait_for(lambda: all(stand_in.streams[path] == 1 for path in FLOWS), what="both streams")
    first_until = FlowLease.objects.order_by("pk").values_list("held_until", flat=True)[0]
    wait_for(
        lambda: (
            FlowLease.objects.order_by("pk").values_list("held_until", flat=True)[0] > first_until
        ),
        what="a lease renewal",
    )
    assert [stand_in.streams[path] for path in FLOWS] == [1, 1]  # never read twice
    assert holders() == leased

    main_id = sources["acme/main"].flow_id
    victim = next(p for p in processes if p.pid == pid_of(leased[main_id]))
    posted: list[str] = []

    def burst() -> None:
        for n in range(40):
            text = f"reply {n}"
            stand_in.chat("acme/main", threads["acme/main"], text)
            posted.append(text)
            if n == 10:
                victim.send_signal(signal.SIGKILL)

    sender = threading.Thread(target=burst)
    sender.start()
    sender.join(timeout=30)
    victim.communicate(timeout=10)

    taken = wait_for(
        lambda: holders().get(main_id, leased[main_id]) != leased[main_id],
        timeout=30,
        what="the killed holder's flow to be taken over",
    )
    assert taken
    wait_for(lambda: len(replies()) == 40, timeout=30, what="every reply")
    assert replies() == sorted(posted)  # none lost, none twice
    assert ReceivedMessage.objects.count() == 40
    stand_in.chat("acme/other", threads["acme/other"], "the other flow still flows")
    wait_for(lambda: len(replies()) == 41, what="the other flow's reply")


def test_flowdock_worker_listen_delivers_and_applies_replies_in_one_process(
    stand_in, processes, settings
):
    settings.FLOWDOCK = {**settings.FLOWDOCK, "DELIVERY": "worker"}
    source = connect(stand_in, "acme/main")
    processes.append(spawn_command(stand_in.url, "flowdock_worker", "--listen"))
    ticket = Ticket.objects.create(subject="Polish the flux capacitor")  # the worker posts it
    thread_id = thread_of(ticket, source)
    wait_for(lambda: stand_in.streams["acme/main"] == 1, what="the worker's listener")

    stand_in.chat("acme/main", thread_id, "Polished")

    comment = wait_for(lambda: Reply.objects.first(), what="the reply")
    assert (comment.ticket, comment.text) == (ticket, "Polished")
    worker = processes[0]
    worker.send_signal(signal.SIGTERM)
    out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    assert "Flowdock worker stopped: 1 sent" in out
    assert not FlowLease.objects.exists()  # released on a clean stop


def test_a_flow_lease_is_held_by_one_listener_until_it_expires_or_is_released(
    client, django_user_model
):
    first, second = FlowLeases("host-a:1:x"), FlowLeases("host-b:2:y")
    assert first.hold(["flow-1", "flow-2"]) == {"flow-1", "flow-2"}
    assert second.hold(["flow-1", "flow-2"]) == set()
    assert first.hold(["flow-1", "flow-2"]) == {"flow-1", "flow-2"}  # renewed

    FlowLease.objects.filter(flow_id="flow-1").update(
        held_until=timezone.now() - timedelta(seconds=1)  # its holder stopped renewing
    )
    assert second.hold(["flow-1", "flow-2"]) == {"flow-1"}
    assert first.hold(["flow-1", "flow-2"]) == {"flow-2"}

    client.force_login(django_user_model.objects.create_superuser("ada", "a@example.com", "pw"))
    page = client.get("/admin/flowdock_conversations/flowlease/").content.decode()
    assert "host-a:1:x" in page and "host-b:2:y" in page

    first.release()
    assert second.hold(["flow-1", "flow-2"]) == {"flow-1", "flow-2"}
