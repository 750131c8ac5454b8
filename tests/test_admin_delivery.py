"""The Source admin shows what waits, what failed and each source's circuit, in the same
number of queries for any page size; the circuit is read-only and never saved by it."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models.signals import pre_save
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_flowdock.admin import SourceAdmin
from django_flowdock.models import Change, Message, Source

SOURCE_URL = "/admin/django_flowdock/source/"


def message(source: Source, state: str = Message.State.PENDING, age: float = 0) -> Message:
    return Message.objects.create(
        source=source,
        thread_key="testapp.ticket:1",
        event="activity",
        state=state,
        created_at=timezone.now() - timedelta(seconds=age),
    )


def cell(page: str, field: str) -> str:
    """The text of the first changelist cell of ``field``, tags removed, spaces (no-break
    ones too) collapsed."""
    match = re.search(rf'<td class="field-{field}">(.*?)</td>', page, re.S)
    assert match, f"no {field} column"
    return " ".join(re.sub(r"<[^>]+>", " ", match.group(1)).split())


@pytest.fixture
def helpdesk(db) -> Source:
    return Source.objects.create(name="Helpdesk", flow_token="token-1", flow_name="Support")


def test_list_shows_waiting_with_the_oldest_age_and_failed_counts(admin_client, helpdesk):
    message(helpdesk, age=2 * 3600 + 60)
    message(helpdesk, age=5)
    message(helpdesk, Message.State.FAILED)
    message(helpdesk, Message.State.SENT)

    page = admin_client.get(SOURCE_URL).content.decode()

    assert cell(page, "waiting") == "2 oldest 2 hours, 1 minute"
    assert cell(page, "failed") == "1"
    assert cell(page, "circuit") == "closed"
    log = "/admin/django_flowdock/message/"
    assert f'href="{log}?source__id__exact={helpdesk.pk}&amp;state=pending"' in page
    assert f'href="{log}?source__id__exact={helpdesk.pk}&amp;state=failed"' in page


def test_list_links_the_counts_to_the_delivery_log_filtered_by_source_and_state(
    admin_client, helpdesk
):
    other = Source.objects.create(name="Other", flow_token="token-2")
    message(helpdesk, Message.State.FAILED)
    message(other, Message.State.FAILED)
    page = admin_client.get(SOURCE_URL).content.decode()
    [url] = re.findall(rf'href="([^"]*source__id__exact={helpdesk.pk}[^"]*)"', page)

    log = admin_client.get(url.replace("&amp;", "&")).content.decode()

    assert "1 result" in log  # the helpdesk's failed message only


def test_list_shows_an_open_circuit_with_its_next_probe_and_last_failure(admin_client, helpdesk):
    now = timezone.now()
    Source.objects.filter(pk=helpdesk.pk).update(
        failing_since=now - timedelta(minutes=12),
        held_until=now + timedelta(minutes=3, seconds=30),
        failures=4,
        last_failure="503 Service Unavailable",
    )

    page = admin_client.get(SOURCE_URL).content.decode()

    assert cell(page, "circuit") == ("open for 12 minutes, 4 failed probes next probe in 3 minutes")
    assert 'title="503 Service Unavailable"' in page


def test_list_shows_a_held_circuit(admin_client, helpdesk):
    Source.objects.filter(pk=helpdesk.pk).update(held_until=timezone.now() + timedelta(minutes=2))
    page = admin_client.get(SOURCE_URL).content.decode()
    assert cell(page, "circuit").startswith("held for 1 minute")


def test_list_can_be_sorted_by_waiting_messages(admin_client, helpdesk):
    busy = Source.objects.create(name="Busy", flow_token="token-2")
    message(busy)
    message(busy)
    message(helpdesk)
    # Column numbers count the action checkbox first.
    column = SourceAdmin.list_display.index("waiting") + 1
    page = admin_client.get(f"{SOURCE_URL}?o=-{column}").content.decode()
    assert page.index(">Busy<") < page.index(">Helpdesk<")


def page_queries(admin_client) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert admin_client.get(SOURCE_URL).status_code == 200
    return len(queries)


def test_list_queries_do_not_grow_with_the_page(admin_client, db):
    def add_sources(count: int) -> None:
        for i in range(count):
            source = Source.objects.create(name=f"Source {i}", flow_token=f"t-{i}")
            message(source, age=60)
            message(source, Message.State.FAILED)

    add_sources(1)
    one = page_queries(admin_client)
    add_sources(9)
    assert page_queries(admin_client) == one


def test_change_page_shows_the_circuit_read_only(admin_client, helpdesk):
    Source.objects.filter(pk=helpdesk.pk).update(
        failing_since=timezone.now(), failures=2, last_failure="timed out"
    )
    page = admin_client.get(f"{SOURCE_URL}{helpdesk.pk}/change/").content.decode()
    assert "timed out" in page
    for name in ("failing_since", "held_until", "failures", "last_failure"):
        assert f'name="{name}"' not in page


def test_saving_a_source_never_overwrites_the_circuit_delivery_wrote_meanwhile(
    admin_client, helpdesk
):
    """Delivery opens the circuit after the admin loaded the source, before it saves."""
    since = timezone.now()

    def delivery_writes(sender, instance, **kwargs):
        Source.objects.filter(pk=instance.pk).update(
            failing_since=since, failures=1, last_failure="502 Bad Gateway"
        )

    pre_save.connect(delivery_writes, sender=Source, dispatch_uid="test-delivery-writes")
    try:
        response = admin_client.post(
            f"{SOURCE_URL}{helpdesk.pk}/change/",
            {"name": "Renamed", "flow_token": "", "flow_name": "Support", "active": "on"},
        )
    finally:
        pre_save.disconnect(sender=Source, dispatch_uid="test-delivery-writes")

    assert response.status_code == 302, response.content
    helpdesk.refresh_from_db()
    assert helpdesk.name == "Renamed"
    assert helpdesk.flow_token == "token-1"
    assert (helpdesk.failing_since, helpdesk.failures, helpdesk.last_failure) == (
        since,
        1,
        "502 Bad Gateway",
    )


LOG_URL = "/admin/django_flowdock/message/"


def summary(page: str) -> str:
    match = re.search(r'<p class="flowdock-summary">(.*?)</p>', page, re.S)
    assert match, "no summary"
    return " ".join(re.sub(r"<[^>]+>", "", match.group(1)).split())


def test_delivery_log_sums_up_what_waits_what_failed_and_the_circuits(admin_client, helpdesk):
    message(helpdesk, age=3 * 3600)
    message(helpdesk, age=10)
    message(helpdesk, Message.State.FAILED)
    Change.objects.create(
        model="testapp.ticket",
        object_pk="1",
        event="created",
        created_at=timezone.now() - timedelta(minutes=5),
    )
    Source.objects.filter(pk=helpdesk.pk).update(failing_since=timezone.now())
    Source.objects.create(
        name="Held", flow_token="t-2", held_until=timezone.now() + timedelta(minutes=1)
    )

    page = admin_client.get(LOG_URL).content.decode()

    assert summary(page) == (
        "2 messages waiting (oldest 3 hours); 1 change not fanned out yet (oldest 5 minutes); "
        "1 failed; circuits: 1 open, 1 held"
    )
    links = re.findall(
        r'href="([^"]+)"', page.split('class="flowdock-summary"')[1].split("</p>")[0]
    )
    assert links == [
        f"{LOG_URL}?state=pending",
        "/admin/django_flowdock/change/?fanned_out__exact=0",
        f"{LOG_URL}?state=failed",
        SOURCE_URL,
    ]
    assert "1 change" in admin_client.get(links[1]).content.decode()


def test_delivery_log_summary_when_all_is_well(admin_client, helpdesk):
    message(helpdesk, Message.State.SENT)
    assert summary(admin_client.get(LOG_URL).content.decode()) == "0 messages waiting; 0 failed"


def test_delivery_log_queries_do_not_grow_with_the_sources(admin_client, db):
    def add_sources(count: int) -> None:
        for i in range(count):
            source = Source.objects.create(name=f"Source {i}", flow_token=f"t-{i}")
            message(source, age=60)
            message(source, Message.State.FAILED)

    def log_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert admin_client.get(LOG_URL).status_code == 200
        return len(queries)

    add_sources(1)
    one = log_queries()
    add_sources(9)
    assert log_queries() == one
