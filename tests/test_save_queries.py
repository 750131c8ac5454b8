"""The request path stays cheap: a save adds one INSERT, whatever the number of sources."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_flowdock.models import Change, Message, Source
from tests.testapp.models import Ticket

pytestmark = pytest.mark.django_db(transaction=True)


def queries_for_update(ticket):
    ticket.state = "pending" if ticket.state == "open" else "open"
    with CaptureQueriesContext(connection) as captured:
        ticket.save()
    return [q["sql"] for q in captured]


def test_save_statements_are_the_same_for_one_and_ten_sources(worker_delivery):
    Source.objects.create(name="s0", flow_token="t0")
    ticket = Ticket.objects.create(subject="Polish")
    with_one = queries_for_update(ticket)
    Source.objects.bulk_create(Source(name=f"s{i}", flow_token=f"t{i}") for i in range(1, 10))
    with_ten = queries_for_update(ticket)
    assert len(with_one) == len(with_ten)
    # Fan-out to the sources happens at delivery, not in the save.
    assert not Message.objects.exists()
    assert Change.objects.count() == 3


def test_save_adds_one_insert_and_no_select_to_a_bare_save(worker_delivery):
    Source.objects.create(name="s0", flow_token="t0")
    ticket = Ticket.objects.create(subject="Polish")
    statements = queries_for_update(ticket)
    table = Change._meta.db_table
    ours = [sql for sql in statements if table in sql]
    assert len(ours) == 1 and ours[0].startswith("INSERT")
    assert not any(sql.startswith("SELECT") for sql in statements)
