"""N items x M updates through a sandbox that fails a share of requests: 500s,
timeouts and dropped connections. Everything arrives, once, in per-thread order."""

from __future__ import annotations

import time
from collections import defaultdict

import pytest

from django_flowdock.delivery.engine import drain
from django_flowdock.delivery.fanout import fan_out
from django_flowdock.models import Message
from tests.testapp.models import Ticket

ITEMS = 6
UPDATES = 4


@pytest.fixture
def faulty_sandbox(sandbox, settings):
    settings.FLOWDOCK = {
        **settings.FLOWDOCK,
        "DELIVERY": "worker",
        "TIMEOUT": (0.5, 0.25),
        "CLAIM_TIMEOUT": 5,
    }
    sandbox.inject_fault(status=500, ratio=0.2)
    sandbox.inject_fault(latency=0.4, ratio=0.1)  # the client's read timeout is 0.25s
    sandbox.inject_fault(drop=True, ratio=0.1)
    yield sandbox
    sandbox.clear_faults()


def drain_until_done(deadline_seconds: float = 60.0) -> None:
    deadline = time.monotonic() + deadline_seconds
    while Message.objects.pending().exists():
        assert time.monotonic() < deadline, "outbox not drained in time"
        drain()
        time.sleep(0.02)


def test_every_message_arrives_once_in_thread_order_despite_faults(
    transactional_db, source, faulty_sandbox
):
    tickets = [Ticket.objects.create(subject=f"Item {n}") for n in range(ITEMS)]
    for update in range(UPDATES):
        for ticket in tickets:
            ticket.subject = f"Item {ticket.pk} v{update}"
            ticket.save()
    fan_out()
    made = list(Message.objects.order_by("pk"))
    assert len(made) == ITEMS * (UPDATES + 1)

    drain_until_done()

    assert set(Message.objects.values_list("state", flat=True)) == {"sent"}
    faults = faulty_sandbox.faults()
    assert all(f["fired"] > 0 for f in faults), faults
    assert sum(m.attempts for m in Message.objects.all()) > len(made)  # faults were retried

    received = faulty_sandbox.messages()
    uuids = [m["uuid"] for m in received]
    assert sorted(uuids) == sorted(str(m.uuid) for m in made)  # none lost, none twice
    arrived: dict[str, list[str]] = defaultdict(list)
    for message in received:
        arrived[message["external_thread_id"]].append(message["uuid"])
    expected: dict[str, list[str]] = defaultdict(list)
    for message in made:
        expected[message.thread_key].append(str(message.uuid))
    assert arrived == expected
    for ticket in tickets:
        thread = faulty_sandbox.messages(external_thread_id=ticket.get_flowdock_thread_id())[-1]
        assert thread["thread"]["title"] == f"Item {ticket.pk} v{UPDATES - 1}"
