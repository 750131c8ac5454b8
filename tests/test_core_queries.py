"""The request path stays cheap: a save's queries don't grow with the number of sources."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_flowdock.models import Message, Source
from tests.testapp.models import Ticket

pytestmark = pytest.mark.django_db


def queries_for_update(ticket):
    ticket.state = "pending" if ticket.state == "open" else "open"
    with CaptureQueriesContext(connection) as captured:
        ticket.save()
    return len(captured)


@pytest.fixture
def worker_delivery(settings):
    settings.FLOWDOCK = {**settings.FLOWDOCK, "DELIVERY": "worker"}


def test_save_queries_are_the_same_for_one_and_ten_sources(worker_delivery):
    Source.objects.create(name="s0", flow_token="t0")
    ticket = Ticket.objects.create(subject="Polish")
    with_one = queries_for_update(ticket)
    Source.objects.bulk_create(Source(name=f"s{i}", flow_token=f"t{i}") for i in range(1, 10))
    with_ten = queries_for_update(ticket)
    assert with_one == with_ten
    assert Message.objects.filter(event="activity").count() == 1 + 1 + 10


def test_save_adds_two_queries_to_a_bare_save(worker_delivery):
    Source.objects.create(name="s0", flow_token="t0")
    ticket = Ticket.objects.create(subject="Polish")
    # One UPDATE of its own; we add one SELECT of sources and one bulk INSERT.
    assert queries_for_update(ticket) == 1 + 2
