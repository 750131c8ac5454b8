"""Replies that cannot be applied are kept, shown and tried again; threads are traced
only from our own posts. Against the sandbox over real HTTP."""

from __future__ import annotations

import logging

import pytest
import requests
from django.contrib.auth import get_user_model
from django.db import IntegrityError
from django.utils import timezone

from django_flowdock.conversations.listener import catch_up
from django_flowdock.conversations.models import FlowCursor, ReceivedMessage, ThreadLink
from django_flowdock.conversations.replies import retry_due
from django_flowdock.models import FlowdockUser, Message
from tests.conversations_support import connect_source, reply
from tests.test_conversations import ticket_thread
from tests.testapp.models import Reply

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def source(sandbox):
    return connect_source(sandbox)


@pytest.fixture
def linked_user(sandbox):
    user = get_user_model().objects.create_user("marty", password="x")
    FlowdockUser.objects.create(
        flowdock_user_id=str(sandbox.credentials["user"]["id"]), name="Sandbox User", user=user
    )
    return user


@pytest.fixture
def broken_hook(monkeypatch):
    """The project's hook raising its own ``IntegrityError`` for one reply's text,
    until ``fixed()``."""
    original = Reply.from_flowdock.__func__
    state = {"broken": True}

    def from_flowdock(cls, ticket, message, author):
        if state["broken"] and message.text == "boom":
            Reply.objects.create(ticket=ticket, text="half-made", author=author)
            raise IntegrityError("duplicate key value violates unique constraint reply_key")
        return original(cls, ticket, message, author)

    monkeypatch.setattr(Reply, "from_flowdock", classmethod(from_flowdock))
    return lambda: state.update(broken=False)


def test_a_hook_raising_integrity_error_is_recorded_and_later_replies_flow(
    source, sandbox, linked_user, broken_hook, caplog
):
    _ticket, thread_id = ticket_thread()
    failing = reply(sandbox, thread_id, "boom")
    reply(sandbox, thread_id, "after the failure")

    with caplog.at_level(logging.ERROR, logger="django_flowdock.conversations"):
        assert catch_up() == 2

    assert list(Reply.objects.values_list("text", flat=True)) == ["after the failure"]
    failed = ReceivedMessage.objects.get(message_id=failing["id"])
    assert failed.state == ReceivedMessage.State.FAILED
    assert "IntegrityError: duplicate key value" in failed.last_error
    assert "Traceback" in failed.last_error
    assert failed.data["content"] == "boom"
    assert failed.next_attempt_at > timezone.now()
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.exc_info is not None and str(failing["id"]) in record.getMessage()
    # The cursor moved on: the next pass does not read it again as new.
    assert FlowCursor.objects.get().last_message_id > failing["id"]


def test_a_failed_reply_is_applied_once_after_the_hook_is_fixed(
    source, sandbox, linked_user, broken_hook
):
    _ticket, thread_id = ticket_thread()
    failing = reply(sandbox, thread_id, "boom")
    catch_up()
    ReceivedMessage.objects.update(next_attempt_at=timezone.now())  # its backoff passed

    assert retry_due() == 1  # still broken: tried, failed again
    failed = ReceivedMessage.objects.get()
    assert (failed.state, failed.attempts) == (ReceivedMessage.State.FAILED, 2)
    assert retry_due() == 0  # backing off

    broken_hook()
    ReceivedMessage.objects.update(next_attempt_at=timezone.now())
    assert retry_due() == 1
    assert retry_due() == 0
    FlowCursor.objects.update(last_message_id=0)  # read everything again
    catch_up()

    [comment] = Reply.objects.all()
    assert (comment.text, comment.flowdock_message_id) == ("boom", failing["id"])
    applied = ReceivedMessage.objects.get()
    assert (applied.state, applied.comment_pk) == ("applied", str(comment.pk))
    assert (applied.last_error, applied.data) == ("", {})


def test_failed_replies_are_listed_in_the_admin_and_retried_by_its_action(
    source, sandbox, linked_user, broken_hook, client, django_user_model
):
    _ticket, thread_id = ticket_thread()
    reply(sandbox, thread_id, "boom")
    catch_up()
    client.force_login(django_user_model.objects.create_superuser("ada", "a@example.com", "pw"))
    url = "/admin/flowdock_conversations/receivedmessage/"

    listing = client.get(url, {"state__exact": "failed"})
    assert listing.status_code == 200
    assert "IntegrityError" in listing.content.decode()
    failed = ReceivedMessage.objects.get()
    detail = client.get(f"{url}{failed.pk}/change/").content.decode()
    assert "duplicate key value violates unique constraint" in detail

    broken_hook()
    answer = client.post(url, {"action": "retry_now", "_selected_action": [failed.pk]})
    assert answer.status_code == 302
    assert Reply.objects.get().text == "boom"
    assert ReceivedMessage.objects.get().state == "applied"


def test_another_integration_reusing_our_uuid_cannot_take_over_the_thread(
    source, sandbox, linked_user
):
    ticket, thread_id = ticket_thread()
    ours = Message.objects.get()
    other = sandbox.create_source("Another integration")
    answer = requests.post(
        f"{sandbox.url}/messages",
        json={
            "flow_token": other["flow_token"],
            "event": "activity",
            "author": {"name": "Mallory"},
            "title": "opened incident",
            "external_thread_id": "incident:1",
            "thread": {"title": "Not your ticket"},
            "uuid": str(ours.uuid),
        },
        headers={"X-flowdock-wait-for-message": "true"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    other_thread = answer.json()["thread_id"]
    assert other_thread != thread_id
    reply(sandbox, other_thread, "chat in the other thread")
    reply(sandbox, thread_id, "reply in the ticket's thread")

    catch_up()

    link = ThreadLink.objects.get()
    assert link.flowdock_thread_id == thread_id
    assert [(r.ticket, r.text) for r in Reply.objects.all()] == [
        (ticket, "reply in the ticket's thread")
    ]


def test_a_thread_is_not_learnt_from_another_integrations_message_alone(
    source, sandbox, linked_user
):
    """Our own message was never seen (posted before the cursor, answered 202): the
    other integration's copy of its uuid is the only one read, and it links nothing."""
    _ticket, _thread_id = ticket_thread()
    ours = Message.objects.get()
    ThreadLink.objects.all().delete()
    other = sandbox.create_source("Another integration")
    answer = requests.post(
        f"{sandbox.url}/messages",
        json={
            "flow_token": other["flow_token"],
            "event": "activity",
            "author": {"name": "Mallory"},
            "title": "opened incident",
            "external_thread_id": "incident:1",
            "thread": {"title": "Not your ticket"},
            "uuid": str(ours.uuid),
        },
        headers={"X-flowdock-wait-for-message": "true"},
        timeout=10,
    )
    reply(sandbox, answer.json()["thread_id"], "chat in the other thread")

    catch_up()

    assert not ThreadLink.objects.exists()
    assert not Reply.objects.exists()
