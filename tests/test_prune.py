"""``manage.py flowdock_prune`` deletes what delivery no longer needs, and never what a
pending, failed or cancelled message needs to be rendered or retried."""

import io

import pytest
from django.core.management import call_command

from django_flowdock.delivery.engine import drain
from django_flowdock.models import Change, Message, Source
from tests.testapp.models import Reply, Ticket

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def no_deletions(worker_delivery, sandbox):
    """A sandbox source that does not receive "deleted" events."""
    return Source.objects.create(
        name="No deletions",
        flow_token=sandbox.flow_token,
        settings={"events": ["created", "updated", "commented"]},
    )


def prune(*args: str) -> str:
    out = io.StringIO()
    call_command("flowdock_prune", "--days", "0", *args, stdout=out)
    return out.getvalue()


def test_a_failed_creation_retried_after_prune_renders_from_the_kept_deletion(
    no_deletions, sandbox
):
    sandbox.inject_fault(status=400, count=1)  # the creation is refused
    ticket = Ticket.objects.create(subject="Printer on fire", state="solved")
    drain()
    ticket.delete()
    drain()  # fans the deletion out: no message, this source does not receive it
    prune()
    assert Change.objects.filter(event=Change.Event.DELETED).exists()
    [failed] = Message.objects.retry()
    assert drain().sent == 1
    failed.refresh_from_db()
    assert failed.state == Message.State.SENT
    [posted] = sandbox.messages()
    assert posted["title"] == "created ticket"
    assert posted["thread"]["title"] == "Printer on fire"
    assert posted["thread"]["status"]["value"] == "solved"


def test_a_failed_discussion_retried_after_prune_renders_its_deleted_thread(no_deletions, sandbox):
    ticket = Ticket.objects.create(subject="Printer on fire")
    drain()
    sandbox.inject_fault(status=400, count=1)  # the discussion is refused
    Reply.objects.create(ticket=ticket, text="Bringing the extinguisher")
    drain()
    ticket.delete()  # cascades to the reply
    drain()
    prune()
    Message.objects.retry()
    assert drain().sent == 1
    discussion = sandbox.messages()[-1]
    assert discussion["event"] == "discussion"
    assert discussion["body"] == "Bringing the extinguisher"
    assert discussion["thread"]["title"] == "Printer on fire"


def test_prune_deletes_old_sent_messages_and_the_changes_no_message_needs(no_deletions, sandbox):
    updated = Ticket.objects.create(subject="Updated")
    updated.state = "solved"
    updated.save()
    deleted = Ticket.objects.create(subject="Deleted, nothing waits for it")
    drain()
    deleted_pk = str(deleted.pk)
    deleted.delete()
    drain()
    sandbox.inject_fault(status=400, count=1)
    refused = Ticket.objects.create(subject="Refused, then deleted")
    drain()
    refused_pk = str(refused.pk)
    refused.delete()
    drain()
    waiting = Ticket.objects.create(subject="Not fanned out yet")

    dry_run = prune("--dry-run")
    assert "1 sent messages older than 0 days." in dry_run
    assert "2 delivered changes older than 0 days." in dry_run
    assert Message.objects.count() == 4
    output = prune()
    assert "Deleted 1 sent messages older than 0 days." in output
    assert "Deleted 2 delivered changes older than 0 days." in output
    # The newest message of each thread and source stays: it records who received it.
    assert sorted(Message.objects.values_list("thread_key", "state")) == [
        (f"testapp.ticket:{pk}", state)
        for pk, state in sorted(
            [(str(updated.pk), "sent"), (deleted_pk, "sent"), (refused_pk, "failed")]
        )
    ]
    assert sorted(Change.objects.values_list("object_pk", "event")) == sorted(
        [
            (str(updated.pk), "updated"),
            (deleted_pk, "created"),
            (refused_pk, "created"),
            # The failed creation renders from it when it is retried.
            (refused_pk, "deleted"),
            (str(waiting.pk), "created"),
        ]
    )
    assert "Deleted 0 sent messages" in prune()
