"""``manage.py flowdock_status``: what waits, what failed and each source's circuit, in
a constant number of queries; ``--max-age`` turns a late message into exit status 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_flowdock.models import Change, Message, Source
from tests.test_worker_processes import ROOT, database_url


def status(*args: str) -> str:
    out = StringIO()
    call_command("flowdock_status", *args, stdout=out)
    return out.getvalue()


def message(source: Source, state: str = Message.State.PENDING, age: float = 0) -> Message:
    return Message.objects.create(
        source=source,
        thread_key=f"testapp.ticket:{Message.objects.count() + 1}",
        event="activity",
        state=state,
        created_at=timezone.now() - timedelta(seconds=age),
    )


@pytest.fixture
def helpdesk(db) -> Source:
    return Source.objects.create(name="Helpdesk", flow_token="token-1", flow_name="Support")


def row(output: str, name: str) -> list[str]:
    """The cells of the table row that starts with ``name``, split on wide gaps."""
    [line] = [line for line in output.splitlines() if line.startswith(name)]
    return [cell.strip() for cell in line.split("  ") if cell.strip()]


def test_counts_waiting_and_failed_messages_per_source_with_the_oldest_age(helpdesk):
    message(helpdesk, age=2 * 3600 + 5 * 60)
    message(helpdesk, age=30)
    message(helpdesk, Message.State.FAILED)
    message(helpdesk, Message.State.SENT, age=10 * 86400)  # history, not waiting

    output = status()

    assert row(output, "Helpdesk") == ["Helpdesk → Support", "active", "closed", "2", "2h 5m", "1"]
    assert "Total: 2 waiting (oldest 2h 5m), 1 failed; 0 changes not fanned out" in output


def test_deactivated_source_shows_its_error(helpdesk):
    helpdesk.deactivate("Source removed in Flowdock (410 Gone).")

    output = status()

    assert row(output, "Helpdesk")[1:3] == ["deactivated", "closed"]
    assert "    error: Source removed in Flowdock (410 Gone)." in output


def test_open_circuit_shows_since_when_the_next_probe_and_the_last_failure(helpdesk, settings):
    settings.TIME_ZONE = "UTC"
    since = timezone.now() - timedelta(minutes=12)
    Source.objects.filter(pk=helpdesk.pk).update(
        failing_since=since,
        held_until=since + timedelta(minutes=15),
        failures=4,
        last_failure="503 Service Unavailable",
    )

    output = status()

    assert row(output, "Helpdesk")[2] == "open"
    assert (
        f"    failing since {since:%Y-%m-%d %H:%M:%S} UTC, 4 failed probes, next probe "
        f"{since + timedelta(minutes=15):%Y-%m-%d %H:%M:%S} UTC"
    ) in output
    assert "    last failure: 503 Service Unavailable" in output


def test_open_circuit_is_shown_in_a_project_without_time_zones(helpdesk, settings):
    settings.USE_TZ = False
    since = datetime.now() - timedelta(minutes=12)  # naive, as such a project stores them
    Source.objects.filter(pk=helpdesk.pk).update(
        failing_since=since, held_until=since + timedelta(minutes=15), failures=4
    )
    output = status()
    assert row(output, "Helpdesk")[2] == "open"
    assert f"failing since {since:%Y-%m-%d %H:%M:%S}, 4 failed probes" in output


def test_held_circuit_shows_until_when(helpdesk):
    Source.objects.filter(pk=helpdesk.pk).update(held_until=timezone.now() + timedelta(seconds=30))
    output = status()
    assert row(output, "Helpdesk")[2] == "held"
    assert "    held until " in output


def test_a_hold_that_has_passed_is_closed(helpdesk):
    Source.objects.filter(pk=helpdesk.pk).update(held_until=timezone.now() - timedelta(seconds=1))
    assert row(status(), "Helpdesk")[2] == "closed"


def test_changes_not_fanned_out_count_as_waiting(db):
    Change.objects.create(
        model="testapp.ticket",
        object_pk="1",
        event="created",
        created_at=timezone.now() - timedelta(minutes=3, seconds=4),
    )
    Change.objects.create(model="testapp.ticket", object_pk="2", event="created", fanned_out=True)

    output = status()

    assert "1 change not fanned out (oldest 3m 4s)" in output
    with pytest.raises(CommandError, match="1 change not fanned out waited longer than 60 s"):
        status("--max-age", "60")


def test_max_age_fails_when_a_message_waited_longer(helpdesk):
    message(helpdesk, age=7200)
    out = StringIO()
    with pytest.raises(CommandError, match="1 message to Helpdesk → Support waited longer"):
        call_command("flowdock_status", "--max-age", "3600", stdout=out)
    assert row(out.getvalue(), "Helpdesk")[3:5] == ["1", "2h 0m"]  # the report comes first


def test_max_age_passes_when_nothing_waited_that_long(helpdesk):
    message(helpdesk, age=60)
    message(helpdesk, Message.State.FAILED, age=7200)  # failed, not waiting
    status("--max-age", "3600")


def test_max_age_ignores_a_deactivated_sources_waiting_messages(helpdesk):
    message(helpdesk, age=7200)
    Source.objects.filter(pk=helpdesk.pk).update(active=False)
    status("--max-age", "3600")


def test_negative_max_age_is_refused(db):
    with pytest.raises(CommandError, match="--max-age must be"):
        status("--max-age", "-1")


def test_json_output_for_monitoring(helpdesk):
    since = timezone.now() - timedelta(minutes=5)
    Source.objects.filter(pk=helpdesk.pk).update(
        failing_since=since, failures=2, last_failure="timed out"
    )
    message(helpdesk, age=100)
    message(helpdesk, Message.State.FAILED)

    data = json.loads(status("--json", "--max-age", "3600"))

    [entry] = data["sources"]
    assert entry["name"] == "Helpdesk"
    assert (entry["waiting"], entry["failed"], entry["circuit"]) == (1, 1, "open")
    assert 100 <= entry["oldest_waiting_seconds"] < 110
    assert entry["failing_since"] == since.isoformat()
    assert (entry["failures"], entry["last_failure"]) == (2, "timed out")
    assert (data["waiting"], data["failed"], data["changes_waiting"]) == (1, 1, 0)
    assert (data["max_age"], data["late"]) == (3600, [])


@pytest.mark.parametrize("sources", [1, 10])
def test_queries_do_not_grow_with_the_number_of_sources(db, sources):
    for i in range(sources):
        source = Source.objects.create(name=f"Source {i}", flow_token=f"token-{i}")
        message(source, age=60)
        message(source, Message.State.FAILED)
    with CaptureQueriesContext(connection) as queries:
        output = status()
    assert output.count("Source ") == sources
    assert len(queries) == 3  # sources, messages grouped by source and state, changes


@pytest.mark.django_db(transaction=True)
def test_exit_status_of_the_real_command_for_cron(helpdesk):
    """Run as cron runs it: the report on stdout, the reason on stderr, status 1."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url(),
        "PYTHONPATH": str(ROOT),
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "django", "flowdock_status", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    message(helpdesk, age=60)
    fine = run("--max-age", "3600")
    assert fine.returncode == 0, fine.stderr
    assert "Total: 1 waiting" in fine.stdout

    message(helpdesk, age=7200)
    late = run("--max-age", "3600")
    assert late.returncode == 1
    assert "Total: 2 waiting (oldest 2h 0m)" in late.stdout
    assert "2 messages to Helpdesk → Support waited longer than 3600 s." in late.stderr
