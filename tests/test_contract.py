"""A project that follows the public contract (docs/quickstart.md) and nothing else gets
the promised threads.

The models are tests/contractapp, the quick start's models verbatim; the source is added
through the admin's add form with a flow token, as in Flowdock's integration quick
start; the API is the sandbox.
"""

import pytest
from django.db import transaction

from django_flowdock.models import Source
from tests.contractapp.models import Reply, Ticket

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def connected(admin_client, sandbox):
    response = admin_client.post(
        "/admin/django_flowdock/source/add/",
        {
            "name": "Helpdesk",
            "flow_token": sandbox.flow_token,
            "flow_name": "Acme / Main",
            "active": "on",
            "scope_object_id": "",
            "settings": "{}",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    return sandbox


def test_create_sends_one_activity_with_the_full_thread_state(connected, admin_user):
    ticket = Ticket.objects.create(
        subject="Polish the flux capacitor", description="<script>alert(1)</script>"
    )
    [message] = connected.messages()
    assert message["event"] == "activity"
    assert message["title"] == "created ticket"
    assert message["author"]["name"]
    [thread] = connected.threads()
    assert thread["title"] == "Polish the flux capacitor"
    assert "&lt;script&gt;" in thread["body"]
    assert "<script>" not in thread["body"]
    assert thread["status"] == {"value": "open", "color": "green"}
    assert thread["fields"] == [{"label": "Priority", "value": "normal"}]
    assert thread["external_url"] == (
        f"https://helpdesk.example/admin/contractapp/ticket/{ticket.pk}/change/"
    )


def test_each_meaningful_update_is_one_activity_saying_what_changed(connected):
    ticket = Ticket.objects.create(subject="Polish")
    ticket.save()  # nothing changed: nothing sent
    ticket.priority = "urgent"
    ticket.save()
    ticket.state = "solved"
    ticket.save()
    titles = [m["title"] for m in connected.messages()]
    assert titles == ["created ticket", "updated ticket", "updated ticket"]
    assert "Priority: normal → urgent" in connected.messages()[1]["body"]
    assert "Status: open → solved" in connected.messages()[2]["body"]
    assert connected.threads()[0]["status"] == {"value": "solved", "color": "grey"}


def test_each_reply_is_a_discussion_in_the_same_thread(connected):
    ticket = Ticket.objects.create(subject="Polish")
    Reply.objects.create(ticket=ticket, text="First")
    Reply.objects.create(ticket=ticket, text="Second")
    messages = connected.messages()
    assert [(m["event"], m.get("body")) for m in messages[1:]] == [
        ("discussion", "First"),
        ("discussion", "Second"),
    ]
    assert len({m["thread_id"] for m in messages}) == 1


def test_rolled_back_transaction_sends_nothing(connected):
    with pytest.raises(ValueError), transaction.atomic():
        Ticket.objects.create(subject="Never")
        raise ValueError
    assert connected.messages() == []


def test_after_410_nothing_more_goes_to_that_source(connected):
    connected.revoke_source(connected.credentials["source"]["id"])
    Ticket.objects.create(subject="First")
    assert connected.messages() == []  # waits for the delivery that met the 410
    Ticket.objects.create(subject="Second")
    assert connected.messages() == []
    source = Source.objects.get()
    assert not source.active
    assert source.messages.count() == 1
