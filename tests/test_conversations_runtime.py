"""The listener over months, as a real ``manage.py flowdock_listen`` process against a
strict local Flowdock (tests/conversations_api.py): short-lived OAuth tokens are
refreshed, a refused grant shows on its source while other flows keep flowing, and
flows connected or deactivated while it runs are followed without a restart."""

from __future__ import annotations

import signal
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from django_flowdock.conversations.models import ThreadLink
from django_flowdock.models import OAuthToken, Source
from tests.conversations_api import FlowdockStandIn, connect
from tests.test_conversations_processes import spawn_listener
from tests.testapp.models import Reply, Ticket
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def stand_in(request, settings):
    server = FlowdockStandIn(**getattr(request, "param", {}))
    settings.FLOWDOCK = {**settings.FLOWDOCK, "API_URL": server.url}
    yield server
    server.stop()


@pytest.fixture
def listener(stand_in):
    """Started by the test once its sources exist; stopped with SIGTERM at the end."""
    started = []

    def start():
        started.append(spawn_listener(stand_in.url))
        return started[-1]

    yield start
    for process in started:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=30)
        assert process.returncode == 0, err


def thread_of(ticket: Ticket, source: Source) -> str:
    return wait_for(
        lambda: ThreadLink.objects.filter(source=source, object_pk=str(ticket.pk)).first(),
        what=f"the thread of {ticket} in {source.flow_path}",
    ).flowdock_thread_id


def replies() -> list[str]:
    return sorted(Reply.objects.values_list("text", flat=True))


@pytest.mark.parametrize("stand_in", [{"lifetime": 4}, {"lifetime": 15}], indirect=True)
def test_a_listener_keeps_applying_replies_across_several_token_expiries(stand_in, listener):
    source = connect(stand_in, "acme/main")
    ticket = Ticket.objects.create(subject="Polish the flux capacitor")
    thread_id = thread_of(ticket, source)
    listener()

    expected = []
    for n in range(3):
        in_use = OAuthToken.objects.get().access_token
        wait_for(lambda t=in_use: stand_in.expired(t), timeout=15, what="the token to expire")
        stand_in.chat("acme/main", thread_id, f"after expiry {n}")
        expected.append(f"after expiry {n}")
        wait_for(lambda: replies() == expected, timeout=15, what=f"reply {n}")

    assert stand_in.refreshes >= 3
    assert Reply.objects.filter(ticket=ticket).count() == 3
    assert not Source.objects.get().error_message


def test_a_refused_grant_shows_on_its_source_and_other_flows_keep_flowing(stand_in, listener):
    main, other = connect(stand_in, "acme/main"), connect(stand_in, "acme/other")
    ticket = Ticket.objects.create(subject="Polish the flux capacitor")
    main_thread, other_thread = thread_of(ticket, main), thread_of(ticket, other)
    process = listener()
    stand_in.chat("acme/main", main_thread, "before")
    wait_for(lambda: replies() == ["before"], what="the first reply")

    stand_in.revoke(main.token)
    stand_in.chat("acme/main", main_thread, "unreadable")
    stand_in.chat("acme/other", other_thread, "still read")

    wait_for(lambda: replies() == ["before", "still read"], what="the other flow's reply")
    main.refresh_from_db()
    wait_for(
        lambda: Source.objects.get(pk=main.pk).error_message.startswith("Conversations: "),
        what="the refused grant on the source",
    )
    error = Source.objects.get(pk=main.pk).error_message
    assert "acme/main" in error and "Connect the flow again" in error
    assert Source.objects.get(pk=other.pk).error_message == ""
    process.send_signal(signal.SIGTERM)
    _out, err = process.communicate(timeout=30)
    assert "ERROR" in err and "refused the OAuth grant" in err


def test_flows_connected_and_deactivated_while_running_are_followed(stand_in, listener):
    main = connect(stand_in, "acme/main")
    listener()
    wait_for(lambda: stand_in.streams["acme/main"] == 1, what="the first flow's stream")

    other = connect(stand_in, "acme/other")
    ticket = Ticket.objects.create(subject="Polish the flux capacitor")
    stand_in.chat("acme/other", thread_of(ticket, other), "in the new flow")
    wait_for(lambda: replies() == ["in the new flow"], timeout=30, what="the new flow's reply")

    Source.objects.filter(pk=other.pk).update(active=False)
    wait_for(lambda: stand_in.streams["acme/other"] == 0, timeout=30, what="its reader to stop")
    assert stand_in.streams["acme/main"] == 1
    stand_in.chat("acme/main", thread_of(ticket, main), "in the first flow")
    wait_for(lambda: len(replies()) == 2, what="the first flow's reply")


def test_once_refreshes_a_token_flowdock_refuses_before_its_expiry(stand_in):
    source = connect(stand_in, "acme/main")
    ticket = Ticket.objects.create(subject="Polish the flux capacitor")
    thread_id = thread_of(ticket, source)
    stand_in.chat("acme/main", thread_id, "read with a refreshed token")
    token = OAuthToken.objects.get()
    token.expires_at = timezone.now() + timedelta(hours=1)  # looks valid here
    token.save()
    stand_in.forget(token.access_token)

    call_command("flowdock_listen", "--once", stdout=StringIO())

    assert replies() == ["read with a refreshed token"]
    assert stand_in.refreshes == 1
    assert ("GET", "/flows/acme/main/messages", 401) in stand_in.requests
    assert OAuthToken.objects.get().access_token != token.access_token
