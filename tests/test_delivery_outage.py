"""A Flowdock outage of minutes, with the default settings, against a real worker process.

While the stand-in answers 503, the worker may only probe: about one post per source
every ``BACKOFF_MAX`` (10) seconds, whatever the number of messages waiting. When it
answers again, everything waiting arrives within seconds, in thread order, and nothing
has failed. ``FLOWDOCK_OUTAGE_SECONDS`` sets the outage (180 by default; an hour with
3600).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from django_flowdock.conf import DEFAULTS
from django_flowdock.delivery.engine import drain
from django_flowdock.models import Message, Source
from tests.local_api import RecordingServer
from tests.test_default_backend_lifecycle import process_env
from tests.test_worker_processes import BOOT, ROOT, database_url
from tests.testapp.models import Ticket

OUTAGE = float(os.environ.get("FLOWDOCK_OUTAGE_SECONDS", 180))
# The delivery settings exactly as a project that sets none gets them (the test
# settings shorten the backoff for the other tests).
DEFAULT_DELIVERY = {
    name: DEFAULTS[name]
    for name in ("BACKOFF_BASE", "BACKOFF_MAX", "CLAIM_TIMEOUT", "TIMEOUT", "MAX_AGE", "BATCH_SIZE")
}


def start_worker(url: str, log) -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url(),
        "FLOWDOCK_OVERRIDES": json.dumps({**DEFAULT_DELIVERY, "API_URL": url}),
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.Popen(
        [sys.executable, "-c", BOOT], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )


@pytest.fixture
def flowdock(settings):
    server = RecordingServer()
    settings.FLOWDOCK = {**settings.FLOWDOCK, "API_URL": server.url, "DELIVERY": "worker"}
    yield server
    server.stop()


def save_history(tickets: list[Ticket], version: int) -> None:
    for ticket in tickets:
        ticket.subject = f"Ticket {ticket.pk} v{version}"
        ticket.save()


@pytest.mark.timeout(OUTAGE + 120)
def test_an_outage_of_minutes_loses_nothing_and_recovers_within_seconds_by_default(
    transactional_db, flowdock, tmp_path
):
    sources = [Source.objects.create(name=f"Flow {n}", flow_token=f"token-{n}") for n in range(2)]
    flowdock.status = 503
    tickets = [Ticket.objects.create(subject=f"Ticket {n}") for n in range(5)]
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log:
        worker = start_worker(flowdock.url, log)
        try:
            down_since = time.monotonic()
            # More history arrives while Flowdock is down.
            for version in range(1, 3):
                time.sleep(OUTAGE / 3)
                save_history(tickets, version)
            time.sleep(max(0.0, down_since + OUTAGE - time.monotonic()))
            down_for = time.monotonic() - down_since
            with flowdock.lock:
                probes = list(flowdock.requests)
                flowdock.status = 202
            up_since = time.monotonic()
            total = len(tickets) * 3 * len(sources)
            deadline = up_since + 60
            while Message.objects.filter(state="sent").count() < total:
                assert time.monotonic() < deadline, log_path.read_text()[-3000:]
                time.sleep(0.1)
            recovered_in = time.monotonic() - up_since
        finally:
            worker.terminate()
            worker.wait(timeout=20)

    per_source = defaultdict(int)
    for request in probes:
        per_source[request["flow_token"]] += 1
    summary = (
        f"outage of {down_for:.0f}s: posts while down per source {dict(per_source)}; "
        f"{total} messages all sent {recovered_in:.1f}s after Flowdock answered again"
    )
    print(f"\n{summary}")
    assert not Message.objects.exclude(state="sent").exists(), summary
    # About one probe per source per BACKOFF_MAX (10 s): the jitter keeps each between
    # 8 and 10 s once the backoff reached its cap.
    for source in sources:
        assert down_for / 12 <= per_source[source.flow_token] <= down_for / 8 + 4, summary
    # The next probe is at most BACKOFF_MAX away, then everything goes at once.
    assert recovered_in < 15, summary
    accepted = [r for r in flowdock.requests if r["status"] == 202]
    assert len({r["uuid"] for r in accepted}) == total, summary
    made = defaultdict(list)
    for uuid, key, source in Message.objects.order_by("pk").values_list(
        "uuid", "thread_key", "source__flow_token"
    ):
        made[key, source].append(str(uuid))
    arrived = defaultdict(list)
    for request in accepted:
        arrived[request["external_thread_id"], request["flow_token"]].append(request["uuid"])
    assert arrived == made, "a thread's messages arrived out of order"
    worker_log = log_path.read_text()
    # An operator sees the outage start, once per source, and its end.
    assert worker_log.count("Flowdock does not take messages for source") == 2, worker_log
    assert worker_log.count("again after") == 2, worker_log


@pytest.mark.skipif(
    connection.vendor != "sqlite",
    reason="the simulated clock is this host's; SQLite has no server clock to disagree",
)
def test_an_hour_long_outage_on_a_simulated_clock_fails_nothing_and_probes_every_10s(
    db, flowdock, settings, monkeypatch
):
    settings.FLOWDOCK = {**settings.FLOWDOCK, **DEFAULT_DELIVERY}
    sources = [Source.objects.create(name=f"Flow {n}", flow_token=f"token-{n}") for n in range(2)]
    tickets = [Ticket.objects.create(subject=f"Ticket {n}") for n in range(5)]
    save_history(tickets, 1)
    now = [timezone.now()]
    monkeypatch.setattr(timezone, "now", lambda: now[0])
    flowdock.status = 503
    end = now[0] + timedelta(hours=1)
    while now[0] < end:  # the clock jumps to whenever something is next due
        drain()
        now[0] = max(Message.objects.next_due(), now[0] + timedelta(milliseconds=100))
    probes = defaultdict(int)
    for request in flowdock.requests:
        probes[request["flow_token"]] += 1
    flowdock.status = 202
    for _ in range(6):  # the next probe is at most BACKOFF_MAX (10 s) away
        drain()
        now[0] += timedelta(seconds=2)
    print(f"\nposts per source during a simulated hour down: {dict(probes)}")
    assert not Message.objects.exclude(state="sent").exists()
    for source in sources:
        assert 3600 / 12 <= probes[source.flow_token] <= 3600 / 8 + 4, dict(probes)
    made = defaultdict(list)
    for uuid, key, token in Message.objects.order_by("pk").values_list(
        "uuid", "thread_key", "source__flow_token"
    ):
        made[key, token].append(str(uuid))
    arrived = defaultdict(list)
    for request in flowdock.requests:
        if request["status"] == 202:
            arrived[request["external_thread_id"], request["flow_token"]].append(request["uuid"])
    assert arrived == made


def test_a_refusal_is_reported_on_the_console_of_a_project_without_logging(
    transactional_db, flowdock
):
    Source.objects.create(name="Helpdesk", flow_token="token-0")
    flowdock.status = 400
    save = "from tests.testapp.models import Ticket; Ticket.objects.create(subject='Refused')"
    # The suite's settings configure no logging, as a new project's do not: Python's
    # last-resort handler prints warnings and errors on stderr.
    result = subprocess.run(
        [sys.executable, "-m", "django", "shell", "-c", save],
        cwd=ROOT,
        env=process_env({"API_URL": flowdock.url, "DELIVERY": "immediate"}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "to source 'Helpdesk') failed: HTTP 400" in result.stderr, result.stderr
    assert Message.objects.get().state == "failed"
