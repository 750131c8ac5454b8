"""The admin at the size of a long-lived outbox: every changelist runs the same queries
for a page of 10 rows as for 100, and on PostgreSQL the delivery log's pages, filters
and searches read the message table through its indexes, never a sequential scan."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_flowdock.admin import CappedPaginator
from django_flowdock.models import (
    Change,
    FlowdockUser,
    Message,
    OAuthApplication,
    Source,
)
from tests.testapp.models import Card, Project

pytestmark = pytest.mark.django_db


def add_applications(count: int) -> None:
    for _ in range(count):
        application = OAuthApplication.objects.create(
            name="App", client_id=uuid.uuid4().hex, client_secret="s"
        )
        Source.objects.create(name="Flow", flow_token="t", application=application)


def add_sources(count: int) -> None:
    # Scoped to objects of two types (a generic foreign key each), with messages.
    card_type = ContentType.objects.get_for_model(Card)
    project_type = ContentType.objects.get_for_model(Project)
    for index in range(count):
        scope = Project.objects.create(name=f"P{index}") if index % 2 else None
        source = Source.objects.create(
            name=f"S{index}",
            flow_token="t",
            active=False,
            scope_content_type=project_type if scope else card_type,
            scope_object_id=str(scope.pk) if scope else str(Card.objects.create(title="c").pk),
        )
        Message.objects.create(source=source, thread_key="testapp.card:1", event="activity")


def add_messages(count: int) -> None:
    source = Source.objects.get_or_create(name="Log", flow_token="t", active=False)[0]
    other = Source.objects.get_or_create(name="Other", flow_token="t", active=False)[0]
    cards = [Card.objects.create(title=f"Card {index}") for index in range(count)]
    Message.objects.bulk_create(
        Message(
            source=source if index % 2 else other,
            thread_key=f"testapp.card:{card.pk}" if index % 3 else f"testapp.ticket:{index}",
            event="activity",
            state="failed" if index % 4 else "sent",
            last_error="boom",
        )
        for index, card in enumerate(cards)
    )


def add_changes(count: int) -> None:
    Change.objects.bulk_create(
        Change(model="testapp.card", object_pk=str(index), event="updated", error="e")
        for index in range(count)
    )


def add_flowdock_users(count: int) -> None:
    for _ in range(count):
        user = get_user_model().objects.create(username=uuid.uuid4().hex)
        FlowdockUser.objects.create(flowdock_user_id=uuid.uuid4().hex, user=user)


FILL: dict[type, Callable[[int], None]] = {
    OAuthApplication: add_applications,
    Source: add_sources,
    Message: add_messages,
    Change: add_changes,
    FlowdockUser: add_flowdock_users,
}


def test_every_registered_flowdock_model_is_measured():
    registered = {
        model
        for model in apps.get_app_config("django_flowdock").get_models()
        if admin.site.is_registered(model)
    }
    assert registered == set(FILL)


@pytest.mark.parametrize("model", list(FILL), ids=lambda model: model.__name__)
def test_changelist_runs_as_many_queries_for_100_rows_as_for_10(admin_client, model):
    url = f"/admin/django_flowdock/{model._meta.model_name}/"

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            response = admin_client.get(url)
        assert response.status_code == 200
        return len(captured)

    FILL[model](10)
    admin_client.get(url)  # the session and the content types, cached from now on
    ten = queries()
    FILL[model](90)
    assert model._default_manager.count() >= 100
    assert queries() == ten


def test_the_log_counts_no_further_than_its_paginators_limit(admin_client, monkeypatch):
    monkeypatch.setattr(CappedPaginator, "limit", 5)
    monkeypatch.setattr(admin.site.get_model_admin(Message), "list_per_page", 2)
    add_messages(8)
    page = admin_client.get("/admin/django_flowdock/message/").content.decode()
    assert page.count('class="action-select"') == 2
    assert "Counted up to 5 messages" in page
    assert "5 messages" in page and "8 messages" not in page
    page = admin_client.get("/admin/django_flowdock/message/", {"state": "sent"}).content.decode()
    assert "Counted up to" not in page
    assert "2 messages" in page


ROWS = 100_000


@dataclass
class BigLog:
    source: Source
    card: Card
    key: str


@pytest.fixture
def big_log(db) -> BigLog:
    """100,000 messages of two sources (mostly sent, as a long-lived log is), one card
    with a thread among them, the planner's statistics up to date."""
    if connection.vendor != "postgresql":
        pytest.skip("EXPLAIN's plans are PostgreSQL's; the other databases plan differently")
    log = Source.objects.create(name="Log", flow_token="t", active=False)
    other = Source.objects.create(name="Other", flow_token="t", active=False)
    card = Card.objects.create(title="Printer on fire")
    key = f"testapp.card:{card.pk}"
    table = connection.ops.quote_name(Message._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {table} (uuid, source_id, thread_key, event, payload, repairs, state,
                attempts, last_error, created_at, next_attempt_at, claim_token, sent_at, head)
            SELECT gen_random_uuid(), CASE WHEN i %% 2 = 0 THEN %s ELSE %s END,
                CASE WHEN i %% 1000 = 0 THEN %s ELSE 'testapp.ticket:' || i END,
                CASE WHEN i %% 10 = 0 THEN 'discussion' ELSE 'activity' END, '{{}}', '',
                CASE WHEN i %% 50 = 0 THEN 'failed' WHEN i %% 97 = 0 THEN 'pending'
                    ELSE 'sent' END,
                1, '', now() - (%s - i) * interval '1 minute', now(), '', now(), false
            FROM generate_series(1, %s) AS i
            """,
            [log.pk, other.pk, key, ROWS, ROWS],
        )
        cursor.execute(f"ANALYZE {table}")
    return BigLog(source=log, card=card, key=key)


def sequential_scans(url: str, client, params: dict[str, str]) -> list[str]:
    """The plans of the page's queries that read the message table sequentially."""
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, params)
    assert response.status_code == 200
    table = Message._meta.db_table
    scans = []
    with connection.cursor() as cursor:
        for query in captured.captured_queries:
            sql = query["sql"]
            if not sql.startswith("SELECT") or table not in sql:
                continue
            cursor.execute(f"EXPLAIN {sql}")
            plan = "\n".join(row[0] for row in cursor.fetchall())
            if f"Seq Scan on {table}" in plan:
                scans.append(f"{sql}\n{plan}")
    return scans


def test_the_delivery_log_sources_and_a_threads_panel_read_100k_messages_by_index(
    admin_client, big_log, monkeypatch
):
    # Ten rows a page: the plans are the same, the pages quicker to render.
    monkeypatch.setattr(admin.site.get_model_admin(Message), "list_per_page", 10)
    source, key, card = big_log.source, big_log.key, big_log.card
    message = Message.objects.filter(thread_key=key).first()
    assert message is not None
    log = "/admin/django_flowdock/message/"
    week_ago, day_ago = (str(timezone.now() - timedelta(days=days)) for days in (7, 1))
    for params in [
        {},
        {"p": "3"},
        {"state": "failed"},
        {"source__id__exact": str(source.pk)},
        {"model": "testapp.card"},
        {"event": "discussion"},
        {"created_at__gte": week_ago},
        {"created_at__gte": day_ago},
        {"q": str(message.uuid)},
        {"q": key},
        {"q": "testapp.card:"},
        {"q": str(card.pk)},
    ]:
        assert sequential_scans(log, admin_client, params) == [], params
    page = admin_client.get(log, {"q": key}).content.decode()
    assert "100 messages" in page  # ROWS // 1000 rows carry the card's key

    sources = "/admin/django_flowdock/source/"
    for params in [{}, {"o": "7"}, {"o": "-9"}]:  # sorted by waiting, by last delivery
        assert sequential_scans(sources, admin_client, params) == [], params

    panel = f"/admin/testapp/card/{card.pk}/change/"
    assert sequential_scans(panel, admin_client, {}) == []
    page = admin_client.get(panel).content.decode()
    assert page.count('class="flowdock-message"') == 20
