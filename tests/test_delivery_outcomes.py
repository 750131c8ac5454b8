"""Writing an outcome: fenced by its claim, and an ended message hands its line's head
on in the same transaction, whichever way the database writes it (one query on SQLite
and on psycopg binding on the client, a transaction of two statements elsewhere)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_flowdock.delivery import engine
from django_flowdock.delivery.fanout import fan_out
from django_flowdock.delivery.leases import Clock
from django_flowdock.models import Message, Source
from tests.testapp.models import Ticket

pytestmark = pytest.mark.django_db(transaction=True)

WAYS = ["as the connection allows", "in a transaction of two statements"]


@pytest.fixture(params=WAYS)
def way(request, monkeypatch, worker_delivery):
    if request.param == WAYS[1]:
        monkeypatch.setattr(engine, "_one_query", lambda connection: False)
    return request.param


def line_of_two() -> tuple[Message, Message]:
    """Two messages of one thread: the first claimed, the second waiting behind it."""
    Source.objects.create(name="Local", flow_token="local-token")
    ticket = Ticket.objects.create(subject="One")
    ticket.subject = "Two"
    ticket.save()
    fan_out()
    (first,) = engine.claim(10).messages
    second = Message.objects.exclude(pk=first.pk).get()
    return first, second


def sent(message: Message) -> engine.Attempt:
    message.state, message.status_code, message.sent_at = Message.State.SENT, 201, timezone.now()
    return engine.Attempt(message, Message.State.SENT)


def test_a_sent_message_hands_the_head_to_the_next_in_line(way):
    first, second = line_of_two()

    with CaptureQueriesContext(connection) as captured:
        assert engine.record_all([(sent(first), False)], Clock.of("default")) == [True]

    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.state, first.head, first.claim_token) == ("sent", False, "")
    assert second.head and second.state == "pending"
    writes = [q["sql"] for q in captured.captured_queries if "UPDATE" in q["sql"]]
    # SQLite writes both in one statement either way.
    one = connection.vendor == "sqlite" or (way == WAYS[0] and engine._one_query(connection))
    assert len(writes) == (1 if one else 2), writes


def test_an_outcome_whose_claim_was_taken_over_is_dropped_and_hands_nothing_on(way):
    first, second = line_of_two()
    # The lease ran out and another drain claimed the message meanwhile.
    Message.objects.filter(pk=first.pk).update(claim_token="newer")

    assert engine.record_all([(sent(first), False)], Clock.of("default")) == [False]

    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.state, first.head, first.claim_token) == ("pending", True, "newer")
    assert not second.head


def test_an_outcome_dropped_after_another_drain_sent_the_message_writes_nothing(way):
    first, _second = line_of_two()
    # Another drain sent it; its hand-over of the head is not written yet.
    Message.objects.filter(pk=first.pk).update(state="sent", head=False, claim_token="")

    assert engine.record_all([(sent(first), False)], Clock.of("default")) == [False]

    # The hand-over is the other drain's to write: a stale outcome, whose head handing
    # is read from an older view of the line, writes no head at all.
    assert list(Message.objects.order_by("pk").values_list("state", "head")) == [
        ("sent", False),
        ("pending", False),
    ]


def test_a_psycopg_connection_binding_on_the_server_writes_outcomes_in_a_transaction(
    worker_delivery,
):
    connection.ensure_connection()
    psycopg = pytest.importorskip("psycopg")
    if not isinstance(connection.connection, psycopg.Connection):
        pytest.skip("psycopg 3 cursors binding on the server (OPTIONS server_side_binding)")
    first, _second = line_of_two()
    raw = connection.connection
    default = raw.cursor_factory
    raw.cursor_factory = psycopg.Cursor  # what server_side_binding uses
    try:
        assert not engine._one_query(connection)
        assert engine.record_all([(sent(first), False)], Clock.of("default")) == [True]
    finally:
        raw.cursor_factory = default

    assert list(Message.objects.order_by("pk").values_list("state", "head")) == [
        ("sent", False),
        ("pending", True),
    ]
