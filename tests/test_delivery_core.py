"""The default immediate backend posts to a real Flowdock API (the sandbox) after commit,
from its background thread."""

import pytest

from django_flowdock.delivery.engine import drain
from django_flowdock.models import Message, Source
from django_flowdock.testing import wait_for_delivery
from tests.local_api import free_port
from tests.testapp.models import Reply, Ticket

pytestmark = pytest.mark.django_db(transaction=True)


def test_created_ticket_becomes_a_thread_with_its_full_state(source, sandbox):
    ticket = Ticket.objects.create(subject="Polish the flux capacitor", description="<b>Dusty</b>")
    [thread] = sandbox.threads()
    assert thread["external_thread_id"] == f"testapp.ticket:{ticket.pk}"
    assert thread["title"] == "Polish the flux capacitor"
    assert thread["status"] == {"value": "open", "color": "green"}
    assert {"label": "Priority", "value": "normal"} in thread["fields"]
    assert thread["external_url"] == f"https://helpdesk.example/tickets/{ticket.pk}/"
    message = Message.objects.get()
    assert message.state == Message.State.SENT
    assert message.status_code == 202
    [posted] = sandbox.messages()
    assert posted["uuid"] == str(message.uuid)
    assert posted["author"]["name"] == "Django"


def test_update_changes_the_thread_in_place_and_adds_an_activity(source, sandbox):
    ticket = Ticket.objects.create(subject="Polish")
    ticket.state = "solved"
    ticket.save()
    [thread] = sandbox.threads()
    assert thread["status"] == {"value": "solved", "color": "grey"}
    assert [m["title"] for m in sandbox.messages()] == ["created ticket", "updated ticket"]
    assert "open → solved" in sandbox.messages()[1]["body"]


def test_reply_is_a_discussion_in_the_same_thread(source, sandbox):
    ticket = Ticket.objects.create(subject="Polish")
    Reply.objects.create(ticket=ticket, text="On it")
    messages = sandbox.messages()
    assert [m["event"] for m in messages] == ["activity", "discussion"]
    assert messages[1]["thread_id"] == messages[0]["thread_id"]
    assert len(sandbox.threads()) == 1


def test_gone_source_is_deactivated_and_receives_nothing_more(source, sandbox):
    sandbox.revoke_source(sandbox.credentials["source"]["id"])
    Ticket.objects.create(subject="First")
    wait_for_delivery()
    source.refresh_from_db()
    assert not source.active
    assert "410" in source.error_message
    assert Message.objects.get().state == Message.State.CANCELLED
    Ticket.objects.create(subject="Second")
    wait_for_delivery()
    assert Message.objects.count() == 1
    assert sandbox.messages() == []


def test_refused_token_fails_with_the_api_error_kept(db, sandbox):
    Source.objects.create(name="Typo", flow_token="not-a-real-token")
    Ticket.objects.create(subject="Polish")
    wait_for_delivery()
    message = Message.objects.get()
    assert message.state == Message.State.FAILED
    assert message.status_code == 401
    assert message.last_error
    assert "401" in Source.objects.get().error_message


def test_validation_error_text_from_the_api_is_kept(source, sandbox):
    # Bypasses local validation on purpose: what the API answers must reach the admin.
    bad = Message.objects.create(
        source=source, thread_key="x", event="activity", payload={"event": "activity"}
    )
    drain(message_ids=[bad.pk])
    bad.refresh_from_db()
    assert bad.state == Message.State.FAILED
    assert bad.status_code == 400
    assert "Validation error" in bad.last_error
    assert "title" in bad.last_error


def test_server_error_keeps_the_message_pending_for_a_retry(source, sandbox, settings):
    settings.FLOWDOCK = {**settings.FLOWDOCK, "BACKOFF_BASE": 60, "BACKOFF_MAX": 60}
    sandbox.inject_fault(status=500, count=1)
    Ticket.objects.create(subject="Polish")
    wait_for_delivery()
    message = Message.objects.get()
    assert message.state == Message.State.PENDING
    assert message.attempts == 1
    assert message.status_code == 500
    assert message.next_attempt_at > message.created_at


def test_unreachable_api_keeps_the_message_pending(db, settings):
    settings.FLOWDOCK = {**settings.FLOWDOCK, "API_URL": f"http://127.0.0.1:{free_port()}"}
    Source.objects.create(name="Helpdesk", flow_token="token")
    Ticket.objects.create(subject="Polish")
    wait_for_delivery()
    message = Message.objects.get()
    assert message.state == Message.State.PENDING
    assert "Could not connect" in message.last_error


def test_source_of_an_application_with_its_own_api_url_is_delivered_there(db, sandbox, settings):
    from django_flowdock.models import OAuthApplication

    settings.FLOWDOCK = {**settings.FLOWDOCK, "API_URL": f"http://127.0.0.1:{free_port()}"}
    application = OAuthApplication.objects.create(
        name="Own API", client_id="own", client_secret="s", api_url=sandbox.url
    )
    Source.objects.create(name="Helpdesk", flow_token=sandbox.flow_token, application=application)
    Ticket.objects.create(subject="Routed by application")
    wait_for_delivery()
    assert Message.objects.get().state == Message.State.SENT
    assert [t["title"] for t in sandbox.threads()] == ["Routed by application"]
