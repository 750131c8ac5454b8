"""The circuit per source: an outage holds the source's messages without spending them,
one probe at a time tests Flowdock, and its first answer lets everything go in thread
order. Leases are renewed while a batch is worked on, and timed by the database."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from django_flowdock.delivery.engine import backoff, claim, drain
from django_flowdock.delivery.fanout import fan_out
from django_flowdock.models import Message, Source
from tests.testapp.models import Ticket


@pytest.fixture
def slow_probes(settings):
    """Probes a few seconds apart, so a test sees the source held."""
    settings.FLOWDOCK = {**settings.FLOWDOCK, "BACKOFF_BASE": 5.0, "BACKOFF_MAX": 5.0}


def queue_threads(count: int, source: Source | None = None) -> list[Message]:
    source = source or Source.objects.create(name="Local", flow_token="local-token")
    for n in range(count):
        Ticket.objects.create(subject=f"Ticket {n}")
    fan_out()
    return list(Message.objects.filter(source=source).order_by("pk"))


def test_an_unanswered_post_holds_the_whole_source_and_spends_nothing_else(
    db, local_api, slow_probes
):
    queued = queue_threads(3)
    local_api.answer(500)
    result = drain()
    assert (result.retrying, result.sent, len(local_api.requests)) == (1, 0, 1)
    source = Source.objects.get()
    assert source.failing_since is not None and source.failures == 1
    assert source.last_failure == "HTTP 500"
    assert source.held_until > timezone.now() + timedelta(seconds=3)
    # The other threads' messages were not tried, so nothing of theirs was spent.
    assert [m.attempts for m in Message.objects.order_by("pk")] == [1, 0, 0]
    assert drain().handled == 0 and len(local_api.requests) == 1

    # The next probe and the first message's own retry are due.
    Source.objects.update(held_until=timezone.now())
    Message.objects.update(next_attempt_at=timezone.now())
    assert drain().sent == 3
    # The probe first; once it is answered, the other threads' messages go out at once.
    uuids = [r["uuid"] for r in local_api.requests[1:]]
    assert uuids[0] == str(queued[0].uuid)
    assert sorted(uuids[1:]) == sorted(str(m.uuid) for m in queued[1:])
    source.refresh_from_db()
    assert (source.failing_since, source.failures, source.held_until) == (None, 0, None)


def test_only_one_probe_of_an_open_circuit_is_claimed_at_a_time(db, local_api, slow_probes):
    queue_threads(3)
    Source.objects.update(failing_since=timezone.now(), failures=4)
    first = claim(50).messages
    assert len(first) == 1
    # A second drain finds the source held for the probe in flight.
    assert claim(50).messages == []
    assert Source.objects.get().held_until >= first[0].claimed_until - timedelta(seconds=1)


def test_a_429_holds_its_source_for_the_retry_after_and_no_other_source(db, local_api, settings):
    # One post at a time, so that the scripted 429 is the held source's.
    settings.FLOWDOCK = {**settings.FLOWDOCK, "CONCURRENCY": 1}
    held = Source.objects.create(name="Held", flow_token="held-token")
    other = Source.objects.create(name="Other", flow_token="other-token")
    Ticket.objects.create(subject="One")
    Ticket.objects.create(subject="Two")
    fan_out()
    first = Message.objects.order_by("pk").first()
    assert first.source == held
    local_api.answer(429, {"Retry-After": "30"})
    result = drain()
    assert (result.retrying, result.sent) == (1, 2)
    assert {r["flow_token"] for r in local_api.requests[1:]} == {"other-token"}
    held.refresh_from_db()
    assert held.held_until >= timezone.now() + timedelta(seconds=28)
    assert Message.objects.filter(source=held, state="pending").count() == 2
    assert not Message.objects.filter(source=other).exclude(state="sent").exists()


def test_recovery_and_the_start_of_an_outage_are_logged_as_warnings(db, local_api, caplog):
    queue_threads(2)
    local_api.answer(503)
    with caplog.at_level(logging.WARNING, logger="django_flowdock.delivery"):
        drain()
        Source.objects.update(held_until=timezone.now())
        drain()
    texts = [r.getMessage() for r in caplog.records]
    assert any("Flowdock does not take messages for source 'Local' (HTTP 503)" in t for t in texts)
    assert any("Flowdock answers source 'Local' again" in t for t in texts)


def test_messages_waiting_longer_than_max_age_fail_together_when_a_probe_fails(
    db, local_api, slow_probes, caplog
):
    queued = queue_threads(3)
    old = timezone.now() - timedelta(hours=73)
    Message.objects.filter(pk__in=[queued[0].pk, queued[2].pk]).update(created_at=old)
    local_api.answer(500)
    with caplog.at_level(logging.ERROR, logger="django_flowdock.delivery"):
        drain()
    states = list(Message.objects.order_by("pk").values_list("state", flat=True))
    assert states == ["failed", "pending", "failed"]
    assert Message.objects.get(pk=queued[0].pk).last_error.startswith(
        "Gave up after waiting 73.0 h (1 attempts): HTTP 500"
    )
    assert Message.objects.get(pk=queued[2].pk).last_error == (
        "Gave up: waited more than 72.0 h for Flowdock (HTTP 500)"
    )
    assert [r.levelname for r in caplog.records] == ["ERROR", "ERROR"]


@pytest.mark.django_db(transaction=True)
def test_a_batch_outlasting_its_lease_renews_it_so_no_other_drain_takes_it(local_api, settings):
    # 8 posts of 0.25 s outlast a 1.5 s lease; the drain renews it as it goes.
    settings.FLOWDOCK = {
        **settings.FLOWDOCK,
        "TIMEOUT": (0.5, 0.4),
        "CLAIM_TIMEOUT": 1.5,
        "CONCURRENCY": 1,
    }
    local_api.delay = 0.25
    queue_threads(8)

    def drain_and_disconnect():
        try:
            drain()
        finally:
            connections.close_all()

    drained = threading.Thread(target=drain_and_disconnect)
    drained.start()
    local_api.wait_for_answers(1)
    started = time.monotonic()
    taken = []
    while drained.is_alive():
        taken += claim(50).messages  # another worker, looking while the batch is worked on
        time.sleep(0.1)
    drained.join()
    assert time.monotonic() - started > 1.5  # the batch did outlast one lease
    assert taken == []
    uuids = [r["uuid"] for r in local_api.requests]
    assert len(uuids) == len(set(uuids)) == 8


@pytest.mark.skipif(connection.vendor == "sqlite", reason="SQLite has no server clock to share")
def test_a_host_whose_clock_runs_30s_ahead_does_not_take_a_live_claim(db, local_api, monkeypatch):
    queue_threads(1)
    held = claim(50)
    assert len(held.messages) == 1
    ahead = timezone.now() + timedelta(seconds=30)
    lease = held.messages[0].claimed_until
    # Written on the database's clock: about CLAIM_TIMEOUT from the server's now.
    assert abs((lease - timezone.now()).total_seconds() - 5) < 2
    real_now = timezone.now
    monkeypatch.setattr(timezone, "now", lambda: real_now() + timedelta(seconds=30))
    assert timezone.now() >= ahead
    assert claim(50).messages == []


def test_thousands_of_failed_probes_back_off_at_the_cap_without_overflowing(db, local_api):
    queue_threads(1)
    Source.objects.update(failing_since=timezone.now() - timedelta(days=2), failures=5000)
    Message.objects.update(attempts=5000)
    local_api.answer(503, {"Retry-After": "1e300"})
    assert drain().retrying == 1
    source = Source.objects.get()
    assert source.failures == 5001
    # A Retry-After beyond MAX_AGE is read as MAX_AGE.
    assert source.held_until <= timezone.now() + timedelta(hours=72, seconds=5)
    assert backoff(10_000) <= 10.0


def test_a_429_holds_a_healthy_source_without_opening_its_circuit(db, local_api):
    queue_threads(2)
    local_api.answer(429, {"Retry-After": "20"})
    assert drain().retrying == 1 and len(local_api.requests) == 1
    source = Source.objects.get()
    assert source.circuit_state() == "held" and source.failing_since is None
    assert source.held_until >= timezone.now() + timedelta(seconds=18)


def test_a_retry_failing_again_on_a_source_that_answers_does_not_hold_the_source(
    db, local_api, slow_probes
):
    queue_threads(2)
    Message.objects.filter(pk=Message.objects.order_by("pk")[0].pk).update(attempts=3)
    local_api.answer(500)
    result = drain()
    # The retried message backs off on its own; the rest of its batch waits for the next
    # round, which still finds the source open for business.
    assert (result.retrying, result.sent) == (1, 1)
    assert Source.objects.get().circuit_state() == "closed"


def test_a_source_removed_in_flowdock_is_posted_to_no_more_in_the_same_batch(db, local_api):
    queue_threads(3)
    local_api.answer(410)
    assert drain().cancelled == 1
    assert len(local_api.requests) == 1
    assert set(Message.objects.values_list("state", flat=True)) == {"cancelled"}


def test_renewing_a_probes_claim_keeps_its_source_held(db, local_api, slow_probes):
    queue_threads(2)
    Source.objects.update(failing_since=timezone.now(), failures=2)
    probe = claim(50)
    assert len(probe.messages) == 1
    first_hold = Source.objects.get().held_until
    time.sleep(0.01)
    assert probe.lease.renew()
    assert Source.objects.get().held_until > first_hold
    assert claim(50).messages == []  # no second probe while the first is claimed


@pytest.mark.skipif(connection.vendor != "postgresql", reason="kills a PostgreSQL backend")
@pytest.mark.django_db(transaction=True)
def test_a_drain_that_loses_its_database_gives_its_batch_back_at_once(local_api, settings):
    # Posts slower than the kill below, answered before their read timeout; one at a
    # time, so at most one is posted without its outcome written.
    settings.FLOWDOCK = {**settings.FLOWDOCK, "TIMEOUT": (0.5, 2.0), "CONCURRENCY": 1}
    local_api.delay = 0.5
    queue_threads(3)
    failed = []

    def drain_and_disconnect():
        try:
            drain()
        except Exception as exc:  # the connection killed under it
            failed.append(exc)
        finally:
            connections.close_all()

    drained = threading.Thread(target=drain_and_disconnect)
    drained.start()
    local_api.wait_for_answers(1)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    drained.join(timeout=10)
    assert failed, "the drain did not notice its lost connection"
    # Not claimed until the lease (CLAIM_TIMEOUT) runs out: free for the next round,
    # but for the one posted without its outcome written, which waits as after a crash.
    unsent = Message.objects.exclude(state="sent")
    assert unsent.filter(claimed_until__isnull=True).count() >= 1
    assert unsent.filter(claimed_until__isnull=False).count() <= 1
