"""Retries, Retry-After, timeouts, giving up, and the public signals, against real HTTP
servers."""

from __future__ import annotations

import email.utils
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from django_flowdock.api.client import parse_retry_after
from django_flowdock.delivery.engine import drain
from django_flowdock.models import Message, Source
from django_flowdock.signals import message_failed, message_sent
from tests.testapp.models import Ticket


def test_retry_after_from_a_503_postpones_the_retry_beyond_the_backoff(queued, local_api):
    local_api.answer(503, {"Retry-After": "30"})
    before = timezone.now()
    result = drain()
    queued.refresh_from_db()
    assert (result.retrying, queued.state, queued.status_code) == (1, "pending", 503)
    # BACKOFF_MAX is 0.05s in the test settings; the server asked for 30s.
    assert queued.next_attempt_at >= before + timedelta(seconds=29)
    assert drain().handled == 0  # not due yet


def test_retry_after_is_waited_for_and_then_the_message_is_sent(queued, local_api):
    local_api.answer(429, {"Retry-After": "1"})
    assert drain().retrying == 1
    assert drain().handled == 0
    time.sleep(1.05)  # the Retry-After second has to pass: that is what is proven
    assert drain().sent == 1
    queued.refresh_from_db()
    assert (queued.state, queued.attempts, queued.status_code) == ("sent", 2, 202)
    assert [r["status"] for r in local_api.requests] == [429, 202]
    assert {r["uuid"] for r in local_api.requests} == {str(queued.uuid)}


def test_read_timeout_is_retried_with_the_same_uuid(queued, local_api):
    local_api.answer(202, delay=0.6)  # longer than the 0.3s read timeout
    assert drain().retrying == 1
    queued.refresh_from_db()
    assert "Timed out" in queued.last_error
    time.sleep(0.1)  # the backoff (BACKOFF_MAX is 0.05s in the test settings) runs out
    assert drain().sent == 1
    assert [r["uuid"] for r in local_api.requests] == [str(queued.uuid)] * 2


def test_connection_refused_is_retried(queued, settings):
    settings.FLOWDOCK = {**settings.FLOWDOCK, "API_URL": "http://127.0.0.1:9"}
    assert drain().retrying == 1
    queued.refresh_from_db()
    assert queued.state == "pending" and "Could not connect" in queued.last_error


def test_gives_up_only_after_waiting_longer_than_max_age_and_signals_failure(
    queued, local_api, settings
):
    settings.FLOWDOCK = {**settings.FLOWDOCK, "MAX_AGE": 3600}
    Message.objects.filter(pk=queued.pk).update(created_at=timezone.now() - timedelta(hours=2))
    local_api.answer(500)
    failures = []

    def on_failed(sender, message, error, **kwargs):
        failures.append((message.pk, message.state, error.status_code))

    message_failed.connect(on_failed)
    try:
        assert drain().failed == 1
    finally:
        message_failed.disconnect(on_failed)
    queued.refresh_from_db()
    assert queued.state == "failed" and queued.attempts == 1
    assert queued.last_error == "Gave up after waiting 2.0 h (1 attempts): HTTP 500"
    assert failures == [(queued.pk, "failed", 500)]


def test_a_message_younger_than_max_age_is_never_given_up_however_many_attempts(
    queued, local_api, settings
):
    settings.FLOWDOCK = {**settings.FLOWDOCK, "BACKOFF_MAX": 0.0}
    Message.objects.filter(pk=queued.pk).update(created_at=timezone.now() - timedelta(hours=71))
    for _ in range(20):
        local_api.answer(500)
    outcomes = [drain() for _ in range(20)]
    assert sum(o.retrying for o in outcomes) == 20 and not any(o.failed for o in outcomes)
    assert drain().sent == 1
    queued.refresh_from_db()
    assert (queued.state, queued.attempts) == ("sent", 21)


def test_rejected_message_fails_at_once_without_retry(queued, local_api):
    local_api.answer(400)
    assert drain().failed == 1
    queued.refresh_from_db()
    assert (queued.state, queued.attempts, queued.status_code) == ("failed", 1, 400)
    assert drain().handled == 0


def test_message_sent_signal_carries_the_recorded_message_and_response(queued, local_api):
    seen = []

    def on_sent(sender, message, response, **kwargs):
        # Receivers run after the outcome is written.
        seen.append((Message.objects.get(pk=message.pk).state, response.status_code))

    message_sent.connect(on_sent)
    try:
        assert drain().sent == 1
    finally:
        message_sent.disconnect(on_sent)
    assert seen == [("sent", 202)]


def test_sandbox_500s_are_retried_until_accepted(db, source, sandbox, settings):
    settings.FLOWDOCK = {**settings.FLOWDOCK, "DELIVERY": "worker", "BACKOFF_MAX": 0.0}
    ticket = Ticket.objects.create(subject="Flaky")
    sandbox.inject_fault(status=500, count=2)
    outcomes = [drain() for _ in range(3)]
    assert [o.retrying for o in outcomes] == [1, 1, 0] and outcomes[2].sent == 1
    message = Message.objects.get()
    assert (message.state, message.attempts) == ("sent", 3)
    received = sandbox.messages(external_thread_id=ticket.get_flowdock_thread_id())
    assert [m["uuid"] for m in received] == [str(message.uuid)]


def test_sandbox_retry_after_is_honoured(db, source, sandbox, settings):
    settings.FLOWDOCK = {**settings.FLOWDOCK, "DELIVERY": "worker"}
    Ticket.objects.create(subject="Rate limited")
    sandbox.inject_fault(status=429, retry_after=20)
    started = timezone.now()
    assert drain().retrying == 1
    message = Message.objects.get()
    assert message.next_attempt_at >= started + timedelta(seconds=19)
    assert sandbox.messages() == []


@pytest.mark.django_db(transaction=True)
def test_unparsable_retry_after_is_a_plain_retry_not_a_crashed_drain(queued, local_api):
    local_api.answer(503, {"Retry-After": "soon"})
    result = drain()
    assert result.retrying == 1
    queued.refresh_from_db()
    assert (queued.state, queued.attempts, queued.claimed_until) == ("pending", 1, None)


@pytest.mark.django_db(transaction=True)
def test_infinite_retry_after_is_ignored_instead_of_crashing_the_drain(queued, local_api):
    local_api.answer(429, {"Retry-After": "1e400"})
    assert drain().retrying == 1
    queued.refresh_from_db()
    assert (queued.state, queued.attempts, queued.claimed_until) == ("pending", 1, None)


def test_retry_after_date_without_a_zone_is_read_as_utc(monkeypatch):
    # Far from UTC, so reading the date as local time would be hours off.
    monkeypatch.setenv("TZ", "Pacific/Kiritimati")
    time.tzset()
    try:
        in_a_minute = email.utils.formatdate(time.time() + 60, usegmt=True)
        assert 50 < parse_retry_after(in_a_minute.replace("GMT", "-0000")) <= 60
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.django_db(transaction=True)
def test_a_single_number_timeout_setting_is_used_for_connect_and_read(queued, local_api, settings):
    settings.FLOWDOCK = {**settings.FLOWDOCK, "TIMEOUT": 0.5}
    assert drain().sent == 1


@pytest.mark.django_db(transaction=True)
def test_response_cut_off_midway_is_retried_not_left_claimed(db, local_api):
    local_api.answer(202, cut_short=True)
    Source.objects.create(name="Local", flow_token="local-token")
    Ticket.objects.create(subject="Printer on fire")
    result = drain()
    message = Message.objects.get()
    assert result.retrying == 1
    assert (message.state, message.attempts, message.claimed_until) == ("pending", 1, None)
    assert "local-token" not in message.last_error


def test_a_request_timeout_answer_is_retried_not_refused(queued, local_api):
    local_api.answer(408)
    assert drain().retrying == 1
    queued.refresh_from_db()
    assert (queued.state, queued.status_code) == ("pending", 408)
