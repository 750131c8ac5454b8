"""A receiver of a public signal that raises is logged; it cannot roll back the user's
change, stop a drain, or skip the deactivation of a source Flowdock removed."""

import logging

import pytest
from django.db import transaction

from django_flowdock.delivery.engine import drain
from django_flowdock.models import Message, Source
from django_flowdock.signals import message_failed, message_queued, message_sent
from tests.testapp.models import Card

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def raising_receiver():
    """Connect a receiver that records its call and raises, for the test's duration."""
    connected = []
    calls = []

    def connect(signal):
        def receiver(sender, **kwargs):
            calls.append(kwargs)
            raise RuntimeError("receiver bug")

        signal.connect(receiver, weak=False)
        connected.append((signal, receiver))
        return calls

    yield connect
    for signal, receiver in connected:
        signal.disconnect(receiver)


def receiver_errors(caplog):
    return [
        r
        for r in caplog.records
        if r.name == "django_flowdock.signals" and r.levelno == logging.ERROR
    ]


def test_raising_message_queued_receiver_keeps_the_change_and_its_delivery(
    sandbox, source, raising_receiver, caplog
):
    calls = raising_receiver(message_queued)

    with transaction.atomic():
        card = Card.objects.create(title="Printer on fire")

    assert Card.objects.filter(pk=card.pk).exists()
    assert [m["thread"]["title"] for m in sandbox.messages()] == ["Printer on fire"]
    assert len(calls) == 1
    assert "receiver bug" in str(receiver_errors(caplog)[0].exc_info[1])


def test_raising_message_sent_receiver_does_not_stop_the_drain(
    worker_delivery, sandbox, source, raising_receiver, caplog
):
    calls = raising_receiver(message_sent)
    for title in ("One", "Two", "Three"):
        Card.objects.create(title=title)

    result = drain()

    assert (result.sent, result.failed) == (3, 0)
    # Three threads, posted at once: they may arrive in any order.
    assert sorted(m["thread"]["title"] for m in sandbox.messages()) == ["One", "Three", "Two"]
    assert len(calls) == 3
    assert len(receiver_errors(caplog)) == 3
    assert set(Message.objects.values_list("state", flat=True)) == {Message.State.SENT}


def test_raising_message_failed_receiver_does_not_skip_deactivating_a_removed_source(
    worker_delivery, sandbox, source, raising_receiver, caplog
):
    calls = raising_receiver(message_failed)
    other = Source.objects.create(
        name="Other flow", flow_token=sandbox.create_source("Other")["flow_token"]
    )
    sandbox.revoke_source(sandbox.credentials["source"]["id"])
    Card.objects.create(title="One")
    Card.objects.create(title="Two")

    result = drain()

    source.refresh_from_db()
    assert not source.active
    assert "410" in source.error_message
    assert set(source.messages.values_list("state", flat=True)) == {Message.State.CANCELLED}
    assert result.sent == 2  # the other source's messages still went out
    assert [m["thread"]["title"] for m in sandbox.messages()] == ["One", "Two"]
    assert set(other.messages.values_list("state", flat=True)) == {Message.State.SENT}
    assert len(calls) >= 1
    assert receiver_errors(caplog)
