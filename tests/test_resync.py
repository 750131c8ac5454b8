"""``manage.py flowdock_resync`` and ``manage.py flowdock_prune``."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from django_flowdock.delivery.engine import drain
from django_flowdock.delivery.fanout import fan_out
from django_flowdock.models import Change, Message
from tests.testapp.models import Incident, Ticket


@pytest.fixture
def pruning_delivery(worker_delivery, source, settings):
    """Worker delivery to the sandbox's source, pruning sent messages after 30 days."""
    settings.FLOWDOCK = {**settings.FLOWDOCK, "PRUNE_AFTER_DAYS": 30}


def run(command: str, *args: str) -> str:
    out = io.StringIO()
    call_command(command, *args, stdout=out)
    return out.getvalue()


def test_resync_reposts_the_current_state_of_the_given_items(pruning_delivery, sandbox):
    tickets = [Ticket.objects.create(subject=f"T{n}") for n in range(3)]
    Ticket.objects.filter(pk=tickets[0].pk).update(state="solved")  # changed behind our back
    Change.objects.all().delete()
    ids = f"{tickets[0].pk},{tickets[2].pk}"
    output = run("flowdock_resync", "--model", "testapp.Ticket", "--ids", ids)
    assert "testapp.Ticket: [##############################] 2/2" in output
    assert "Queued 2 items" in output
    assert drain().sent == 2
    received = {m["external_thread_id"]: m for m in sandbox.messages()}
    assert set(received) == {
        tickets[0].get_flowdock_thread_id(),
        tickets[2].get_flowdock_thread_id(),
    }
    resynced = received[tickets[0].get_flowdock_thread_id()]
    assert resynced["title"] == "updated ticket"
    assert resynced["thread"]["status"]["value"] == "solved"


def test_resync_without_filters_covers_every_thread_model(pruning_delivery):
    Ticket.objects.create(subject="A ticket")
    Incident.objects.create(name="An incident")
    Change.objects.all().delete()
    output = run("flowdock_resync")
    assert "Queued 2 items" in output
    fan_out()
    assert sorted(Message.objects.values_list("change__model", "change__event")) == [
        ("testapp.incident", "updated"),
        ("testapp.ticket", "updated"),
    ]


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--ids", "1"], "--ids needs exactly one --model"),
        (["--model", "testapp.Plain"], "not a FlowdockThread model"),
        (["--model", "testapp.Nope"], "testapp.Nope"),
    ],
)
def test_resync_refuses_bad_arguments_with_the_fix(pruning_delivery, args, error):
    with pytest.raises(CommandError, match=error):
        run("flowdock_resync", *args)


def test_prune_deletes_old_sent_messages_but_keeps_the_newest_of_each_thread(pruning_delivery):
    first = Ticket.objects.create(subject="T0")
    for n in range(1, 4):
        Ticket.objects.create(subject=f"T{n}")
    fan_out()
    first.subject = "T0 again"
    first.save()
    fan_out()
    old_sent, new_sent, old_failed, pending, newest_of_first = Message.objects.order_by("pk")
    long_ago = timezone.now() - timedelta(days=31)
    Message.objects.filter(pk__in=[old_sent.pk, newest_of_first.pk]).update(
        state="sent", sent_at=long_ago
    )
    Message.objects.filter(pk=new_sent.pk).update(state="sent", sent_at=timezone.now())
    Message.objects.filter(pk=old_failed.pk).update(state="failed", created_at=long_ago)

    assert "1 sent messages older than 30 days." in run("flowdock_prune", "--dry-run")
    assert Message.objects.count() == 5
    assert "Deleted 1 sent messages older than 30 days." in run("flowdock_prune")
    # The newest message of a thread records the source (and application) it went to.
    assert set(Message.objects.values_list("pk", flat=True)) == {
        new_sent.pk,
        old_failed.pk,
        pending.pk,
        newest_of_first.pk,
    }
    assert "Deleted 0 sent" in run("flowdock_prune", "--days", "0")


def test_prune_deletes_old_delivered_changes_that_no_message_needs(pruning_delivery):
    from django_flowdock.models import Change

    kept = Ticket.objects.create(subject="Still has its message")
    Ticket.objects.create(subject="Message pruned")
    fan_out()
    long_ago = timezone.now() - timedelta(days=31)
    Change.objects.update(created_at=long_ago)
    Message.objects.exclude(thread_key=kept.get_flowdock_thread_id()).delete()
    output = run("flowdock_prune")
    assert "Deleted 1 delivered changes older than 30 days." in output
    assert list(Change.objects.values_list("object_pk", flat=True)) == [str(kept.pk)]
