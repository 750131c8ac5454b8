"""Delivery reads in batches: its statements grow with the models and sources involved,
not with the number of changes or messages."""

import sqlite3

import pytest
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from django_flowdock.delivery.engine import drain
from django_flowdock.delivery.fanout import fan_out
from django_flowdock.models import Change, Message, Source
from tests.testapp.models import Card, Project, Tag, Ticket

pytestmark = pytest.mark.django_db(transaction=True)


def statements(captured: CaptureQueriesContext) -> str:
    return "\n".join(q["sql"][:160] for q in captured.captured_queries)


def tickets(count: int) -> list[Ticket]:
    """Tickets showing a foreign key (assignee) and a path through one (project.name),
    each in a project that a scoped source receives."""
    people = [User.objects.create(username=f"agent{n}", first_name=f"Agent {n}") for n in range(5)]
    projects = [Project.objects.create(name=f"Project {n}") for n in range(5)]
    return [
        Ticket.objects.create(
            subject=f"Ticket {n}", assignee=people[n % 5], project=projects[n % 5]
        )
        for n in range(count)
    ]


def cards(count: int) -> list[Card]:
    """Cards showing a many-to-many field, a foreign key and a reverse relation."""
    tags = [Tag.objects.create(name=f"tag{n}") for n in range(3)]
    made = []
    for n in range(count):
        with transaction.atomic():  # one thread, one activity
            card = Card.objects.create(title=f"Card {n}", estimate="1.50")
            card.tags.set(tags[: 1 + n % 3])
            card.subtasks.create(name=f"Step {n}")
        made.append(card)
    return made


def test_fanning_out_50_updates_of_50_threads_takes_15_queries_at_most(worker_delivery):
    made = tickets(50)
    Source.objects.create(name="Everything", flow_token="all-token")
    Source.objects.create(name="Project 0", flow_token="p0-token", scope=made[0].project)
    while fan_out():
        pass
    Message.objects.update(state=Message.State.SENT, head=False)
    for ticket in made:
        ticket.state = "pending"
        ticket.save()

    with CaptureQueriesContext(connection) as captured:
        taken = fan_out()

    assert taken == 50
    # Every update shown (the status changed) to the unscoped source, and the ten
    # tickets of project 0 to its source as well.
    assert Message.objects.pending().count() == 60
    assert len(captured) <= 15, statements(captured)
    print(f"\n{len(captured)} queries to fan out 50 updates")


def test_delivering_200_messages_takes_4_statements_each_at_most(local_api, settings):
    # Timeouts a loaded machine cannot hit: a retry would add its own statements.
    settings.FLOWDOCK = {**settings.FLOWDOCK, "TIMEOUT": (2.0, 5.0), "CLAIM_TIMEOUT": 15}
    Source.objects.create(name="Local", flow_token="local-token")
    tickets(100)
    cards(100)

    with CaptureQueriesContext(connection) as captured:
        result = drain()

    assert result.sent == 200 and len(local_api.requests) == 200
    assert len(captured) <= 4 * 200, statements(captured)
    print(f"\n{len(captured)} statements for 200 messages")


def test_a_line_hands_its_head_on_as_each_message_is_sent(local_api):
    Source.objects.create(name="Local", flow_token="local-token")
    ticket = Ticket.objects.create(subject="One")
    for n in range(3):
        ticket.subject = f"One v{n}"
        ticket.save()
    fan_out()
    heads = list(Message.objects.order_by("pk").values_list("head", flat=True))
    assert heads == [True, False, False, False]

    drain()

    assert [r["thread"]["title"] for r in local_api.requests] == ["One v2"] * 4
    assert not Message.objects.filter(head=True).exists()
    assert set(Message.objects.values_list("state", flat=True)) == {"sent"}


def test_a_failed_message_retried_goes_before_the_later_ones_of_its_thread(local_api):
    Source.objects.create(name="Local", flow_token="local-token")
    ticket = Ticket.objects.create(subject="One")
    ticket.subject = "Two"
    ticket.save()
    fan_out()
    first, second = Message.objects.order_by("pk")
    Message.objects.filter(pk=first.pk).update(state=Message.State.FAILED, head=False)
    Message.objects.filter(pk=second.pk).update(head=True)

    Message.objects.filter(pk=first.pk).retry()

    assert list(Message.objects.order_by("pk").values_list("head", flat=True)) == [True, False]


def most_in_flight(requests: list[dict]) -> int:
    """The most requests the server was answering at one moment."""
    moments = sorted([(r["started"], 1) for r in requests] + [(r["ended"], -1) for r in requests])
    level = most = 0
    for _at, step in moments:
        level += step
        most = max(most, level)
    return most


def test_a_claim_posts_its_threads_concurrency_at_a_time(local_api, settings):
    settings.FLOWDOCK = {
        **settings.FLOWDOCK,
        "CONCURRENCY": 3,
        "TIMEOUT": (2.0, 5.0),
        "CLAIM_TIMEOUT": 15,
    }
    Source.objects.create(name="Local", flow_token="local-token")
    for n in range(10):
        Ticket.objects.create(subject=f"Ticket {n}")
    local_api.delay = 0.2

    result = drain()

    assert result.sent == 10
    # The first post tests the source alone; then up to three at a time, never more
    # (a loaded machine may start one a little late).
    assert 2 <= most_in_flight(local_api.requests) <= 3
    assert set(Message.objects.values_list("state", flat=True)) == {"sent"}


def test_the_next_round_is_claimed_while_the_last_posts_of_a_round_are_in_flight(
    local_api, settings
):
    settings.FLOWDOCK = {
        **settings.FLOWDOCK,
        "BATCH_SIZE": 2,
        "CONCURRENCY": 4,
        "TIMEOUT": (2.0, 5.0),
        "CLAIM_TIMEOUT": 15,
    }
    Source.objects.create(name="Local", flow_token="local-token")
    for n in range(12):
        Ticket.objects.create(subject=f"Ticket {n}")
    local_api.delay = 0.3

    result = drain()

    assert result.sent == 12
    # Rounds of two: more than two posts at once are posts of two rounds (the window
    # would empty at the end of each round if claims waited for their last answers).
    assert most_in_flight(local_api.requests) > 2
    assert set(Message.objects.values_list("state", flat=True)) == {"sent"}


def test_a_batch_past_the_databases_parameter_limit_is_marked_done_with_what_changed(
    worker_delivery,
):
    made = [Ticket.objects.create(subject=f"Ticket {n}") for n in range(400)]
    Source.objects.create(name="Everything", flow_token="all-token")
    while fan_out():
        pass
    for ticket in made:
        ticket.subject = f"Renamed {ticket.pk}"
        ticket.save()

    limit = connection.features.max_query_params
    if connection.vendor == "sqlite":
        # Hold SQLite to the limit Django works with (999 before Django 6.0).
        connection.ensure_connection()
        raw = connection.connection
        compiled = raw.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, limit)

    # 400 updates need 1,201 parameters to mark done: past 999, so in chunks.
    try:
        with CaptureQueriesContext(connection) as captured:
            assert fan_out(limit=1000) == 400
    finally:
        if connection.vendor == "sqlite":
            raw.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, compiled)

    assert not Change.objects.filter(fanned_out=False).exists()
    updates = Change.objects.filter(event=Change.Event.UPDATED)
    described = dict(updates.values_list("object_pk", "described"))
    assert len(described) == 400
    for pk, text in described.items():
        assert f"Renamed {pk}" in text, (pk, text)
    marked = [
        q
        for q in captured.captured_queries
        if q["sql"].startswith("UPDATE") and "fanned_out" in q["sql"].split(" WHERE ")[0]
    ]
    assert len(marked) == (-(-400 // ((limit - 1) // 3)) if limit else 1), statements(captured)
