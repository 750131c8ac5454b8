"""Deletes lose nothing: a comment or thread deleted before delivery is still shown in
the flow, rebuilt from the values captured when the comment was saved and when the
thread was deleted."""

import json
import logging

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_flowdock.delivery.engine import drain
from django_flowdock.delivery.fanout import fan_out
from django_flowdock.models import Change
from tests.testapp.models import Card, CardComment, Reply, Tag, Ticket

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_comment_deleted_before_delivery_still_reaches_its_thread(
    worker_delivery, source, sandbox
):
    ticket = Ticket.objects.create(subject="Printer on fire")
    reply = Reply.objects.create(ticket=ticket, text="Bringing the extinguisher")
    reply.delete()
    assert drain().sent == 2
    created, discussion = sandbox.messages()
    assert discussion["event"] == "discussion"
    assert discussion["body"] == "Bringing the extinguisher"
    assert discussion["thread_id"] == created["thread_id"]
    assert discussion["thread"]["title"] == "Printer on fire"


def test_a_comment_deleted_after_fan_out_is_rendered_from_its_captured_values(
    worker_delivery, source, sandbox
):
    ticket = Ticket.objects.create(subject="Printer on fire")
    reply = Reply.objects.create(ticket=ticket, text="Bringing the extinguisher")
    fan_out()  # as a Celery task rendering later would find it
    reply.delete()
    assert drain().sent == 2
    assert sandbox.messages()[1]["body"] == "Bringing the extinguisher"


def test_a_thread_deleted_with_its_comment_gets_the_discussion_then_the_deletion(
    worker_delivery, source, sandbox
):
    ticket = Ticket.objects.create(subject="Printer on fire", state="pending")
    Reply.objects.create(ticket=ticket, text="Bringing the extinguisher")
    ticket.delete()  # cascades to the reply
    assert drain().sent == 3
    created, discussion, deleted = sandbox.messages()
    assert [m["event"] for m in sandbox.messages()] == ["activity", "discussion", "activity"]
    assert discussion["body"] == "Bringing the extinguisher"
    assert discussion["thread_id"] == created["thread_id"] == deleted["thread_id"]
    # The thread is shown from its last values.
    assert discussion["thread"]["title"] == "Printer on fire"
    assert discussion["thread"]["status"] == {"value": "pending", "color": "yellow"}
    assert deleted["title"] == "deleted ticket"


def test_a_thread_deleted_after_fan_out_still_shows_its_discussion(
    worker_delivery, source, sandbox
):
    card = Card.objects.create(title="Dark mode")
    CardComment.objects.create(card=card, text="Please")
    fan_out()
    card.delete()
    assert drain().sent == 3
    discussion = sandbox.messages()[1]
    assert (discussion["body"], discussion["thread"]["title"]) == ("Please", "Dark mode")


def test_a_deleted_items_last_activity_shows_its_many_to_many_values(
    worker_delivery, source, sandbox
):
    card = Card.objects.create(title="Dark mode")
    card.tags.add(Tag.objects.create(name="ui"), Tag.objects.create(name="theme"))
    CardComment.objects.create(card=card, text="Please")
    card.delete()  # Django's cascade clears the card's tag rows
    drain()
    *_, discussion, deleted = sandbox.messages()
    assert deleted["title"] == "deleted card"
    assert {"label": "Tags", "value": "theme, ui"} in deleted["thread"]["fields"]
    assert {"label": "Tags", "value": "theme, ui"} in discussion["thread"]["fields"]


def test_a_comment_save_captures_its_values_without_a_query(worker_delivery):
    ticket = Ticket.objects.create(subject="Printer on fire")
    for reply in (
        Reply(ticket=ticket, text="Thread loaded"),
        Reply(ticket_id=ticket.pk, text="By id"),
    ):
        with CaptureQueriesContext(connection) as captured:
            reply.save()
        tables = [Reply._meta.db_table, Change._meta.db_table]
        # Without the transaction's BEGIN and COMMIT:
        statements = [q["sql"] for q in captured if not q["sql"].startswith(("BEGIN", "COMMIT"))]
        assert [sql.split()[:3] for sql in statements] == [
            ["INSERT", "INTO", connection.ops.quote_name(table)] for table in tables
        ]
        values = json.loads(Change.objects.filter(event="commented").first().values)
        assert values["thread"] == {"model": "testapp.ticket", "pk": ticket.pk}
        assert values["comment"]["text"] == reply.text


def test_comment_changes_captured_without_their_values_work_as_before(
    worker_delivery, source, sandbox, caplog
):
    ticket = Ticket.objects.create(subject="Printer on fire")
    Reply.objects.create(ticket=ticket, text="Still here")
    gone = Reply.objects.create(ticket=ticket, text="Deleted")
    gone_pk = gone.pk
    # As changes captured by earlier versions are in users' outboxes.
    Change.objects.filter(event=Change.Event.COMMENTED).update(values="")
    gone.delete()
    with caplog.at_level(logging.WARNING, logger="django_flowdock.delivery"):
        assert drain().sent == 2
    assert [m.get("body") for m in sandbox.messages()][1] == "Still here"
    assert f"Nothing to send for commented testapp.reply:{gone_pk}" in caplog.text
