"""Worker processes: graceful SIGTERM, SIGKILL and restart, two workers at once.

The workers are real ``manage.py flowdock_worker`` processes on the test database
(run with DATABASE_URL=postgres://... to exercise SKIP LOCKED claims; on SQLite the
claims take the database's write lock).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
from django.db import connection

from django_flowdock.conf import DEFAULTS
from django_flowdock.delivery.fanout import fan_out
from django_flowdock.models import Message, Source
from tests.local_api import RecordingServer
from tests.testapp.models import Ticket

ROOT = Path(__file__).resolve().parent.parent

# Runs the command with FLOWDOCK settings adjusted for the test (read on access).
BOOT = """
import json, os, sys
import django
django.setup()
from django.conf import settings
settings.FLOWDOCK.update(json.loads(os.environ["FLOWDOCK_OVERRIDES"]))
from django.core.management import call_command
call_command("flowdock_worker", *sys.argv[1:])
"""


def database_url() -> str:
    """The URL of the test database, for processes outside the test."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    scheme, port = {"postgresql": ("postgres", 5432), "mysql": ("mysql", 3306)}[connection.vendor]
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"{scheme}://{db['USER']}{password}@{db['HOST']}:{db['PORT'] or port}/{db['NAME']}"


def spawn_worker(flowdock: dict, *args: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url(),
        "FLOWDOCK_OVERRIDES": json.dumps(flowdock),
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.Popen(
        [sys.executable, "-c", BOOT, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition, timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.fixture
def local_api(settings):
    server = RecordingServer()
    settings.FLOWDOCK = {**settings.FLOWDOCK, "API_URL": server.url, "DELIVERY": "worker"}
    yield server
    server.stop()


def make_tickets(count: int, updates: int = 0) -> list[Ticket]:
    tickets = [Ticket.objects.create(subject=f"T{n}") for n in range(count)]
    for n in range(updates):
        for ticket in tickets:
            ticket.subject = f"T{ticket.pk} v{n}"
            ticket.save()
    return tickets


def test_sigterm_finishes_the_message_in_hand_then_exits(transactional_db, local_api):
    Source.objects.create(name="Local", flow_token="t")
    make_tickets(5)
    local_api.delay = 0.8
    worker = spawn_worker({"API_URL": local_api.url, "TIMEOUT": [1, 2], "CLAIM_TIMEOUT": 30})
    wait_for(lambda: local_api.requests, what="the first post")
    worker.send_signal(signal.SIGTERM)
    out, err = worker.communicate(timeout=10)
    assert worker.returncode == 0, err
    assert "SIGTERM received: finishing the message in hand" in err
    assert "1 sent" in out
    in_hand = local_api.requests[0]["uuid"]
    assert Message.objects.get(uuid=in_hand).state == "sent"
    rest = Message.objects.exclude(uuid=in_hand)
    # The rest of the batch was handed back, not left leased to a dead worker.
    assert [(m.state, m.claimed_until, m.attempts) for m in rest] == [("pending", None, 0)] * 4
    assert len(local_api.requests) == 1


def test_sigkilled_worker_loses_nothing_and_repeats_only_by_uuid(
    transactional_db, sandbox, settings
):
    settings.FLOWDOCK = {**settings.FLOWDOCK, "DELIVERY": "worker"}
    Source.objects.create(name="Helpdesk", flow_token=sandbox.flow_token)
    tickets = make_tickets(4, updates=2)
    fan_out()
    made = list(Message.objects.order_by("pk"))
    sandbox.inject_fault(latency=0.15, ratio=1.0)
    flowdock = {"API_URL": sandbox.url, "TIMEOUT": [0.5, 1.0], "CLAIM_TIMEOUT": 2}
    worker = spawn_worker(flowdock, "--sleep", "0.05")
    wait_for(lambda: len(sandbox.messages()) >= 3, what="some messages to arrive")
    worker.send_signal(signal.SIGKILL)
    worker.communicate(timeout=5)
    assert Message.objects.pending().exists(), "killed too late to prove anything"
    time.sleep(2.1)  # the dead worker's leases run out

    restarted = spawn_worker(flowdock, "--once")
    _out, err = restarted.communicate(timeout=30)
    assert restarted.returncode == 0, err
    assert set(Message.objects.values_list("state", flat=True)) == {"sent"}
    received = sandbox.messages()
    assert sorted(m["uuid"] for m in received) == sorted(str(m.uuid) for m in made)
    posts = sum(f["matched"] for f in sandbox.faults())
    assert posts >= len(made)  # a repeat, if any, was recognised by its uuid
    for ticket in tickets:
        key = ticket.get_flowdock_thread_id()
        order = [m["uuid"] for m in sandbox.messages(external_thread_id=key)]
        assert order == [str(m.uuid) for m in made if m.thread_key == key]


def test_two_workers_never_send_one_message_twice(transactional_db, local_api):
    Source.objects.create(name="Local", flow_token="t")
    tickets = make_tickets(30, updates=1)
    fan_out()
    made = list(Message.objects.order_by("pk"))
    local_api.delay = 0.02
    # Until a source has answered, a worker posts to it one message at a time: so the
    # first answer waits for the other worker's first post, however late it started.
    local_api.hold_until = 2
    flowdock = {"API_URL": local_api.url, "BATCH_SIZE": 5, "TIMEOUT": [1, 10], "CLAIM_TIMEOUT": 30}
    workers = [spawn_worker(flowdock, "--once") for _ in range(2)]
    outputs = [w.communicate(timeout=60) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], [err for _, err in outputs]

    posted = defaultdict(int)
    for request in local_api.requests:
        posted[request["uuid"]] += 1
    assert posted == {str(m.uuid): 1 for m in made}
    sent_by = [int(out.split("stopped: ")[1].split(" sent")[0]) for out, _ in outputs]
    assert sum(sent_by) == len(made) and min(sent_by) > 0, sent_by  # both took part
    by_thread = defaultdict(list)
    for request in sorted(local_api.requests, key=lambda r: r["started"]):
        by_thread[request["external_thread_id"]].append(request["uuid"])
    for ticket in tickets:
        key = ticket.get_flowdock_thread_id()
        assert by_thread[key] == [str(m.uuid) for m in made if m.thread_key == key]


def test_a_sigkilled_workers_threads_move_on_within_the_default_lease(transactional_db, local_api):
    Source.objects.create(name="Local", flow_token="t")
    make_tickets(10)
    fan_out()
    local_api.delay = 0.5  # the worker holds its batch of 10 threads for seconds
    defaults = {"TIMEOUT": list(DEFAULTS["TIMEOUT"]), "CLAIM_TIMEOUT": DEFAULTS["CLAIM_TIMEOUT"]}
    flowdock = {**defaults, "API_URL": local_api.url}
    worker = spawn_worker(flowdock, "--sleep", "0.05")
    local_api.wait_for_answers(2)
    worker.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    worker.communicate(timeout=5)
    held = len(local_api.requests)
    assert Message.objects.pending().filter(claimed_until__isnull=False).count() >= 5

    restarted = spawn_worker(flowdock, "--sleep", "0.05")
    try:
        local_api.wait_for_answers(held + 1, timeout=30)
        moved_on = local_api.requests[held]["started"] - killed
        wait_for(lambda: not Message.objects.pending().exists(), timeout=30, what="delivery")
    finally:
        restarted.terminate()
        restarted.communicate(timeout=15)
    print(f"\nthe killed worker's threads moved on {moved_on:.1f}s after the SIGKILL")
    # At most one lease (CLAIM_TIMEOUT, 15 s) after the worker's last renewal.
    assert moved_on <= DEFAULTS["CLAIM_TIMEOUT"] + 1.5
