"""Who may comment from Flowdock: inactive linked users count as unknown, the comment
model can refuse an author (the reply is recorded, not lost), and replies are cut to
a bounded size. Against the sandbox over real HTTP."""

from __future__ import annotations

import logging

import pytest
from django.contrib.auth import get_user_model

from django_flowdock.conversations import replies as replies_module
from django_flowdock.conversations.listener import catch_up
from django_flowdock.conversations.models import ReceivedMessage
from django_flowdock.models import FlowdockUser
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
    FlowdockUser.objects.create(flowdock_user_id=str(sandbox.credentials["user"]["id"]), user=user)
    return user


def test_an_inactive_linked_user_replies_as_an_unknown_user(source, sandbox, linked_user, settings):
    fallback = get_user_model().objects.create_user("flowdock-bot")
    settings.FLOWDOCK = {**settings.FLOWDOCK, "CONVERSATION_AUTHOR": "flowdock-bot"}
    linked_user.is_active = False
    linked_user.save()
    _ticket, thread_id = ticket_thread()
    reply(sandbox, thread_id, "from a former colleague")

    catch_up()

    assert Reply.objects.get().author == fallback


def test_a_reply_the_comment_model_refuses_is_recorded_and_not_applied(
    source, sandbox, linked_user, monkeypatch
):
    def can_comment_from_flowdock(cls, user, ticket):
        return user is not None and user.username != "marty"

    monkeypatch.setattr(
        Reply, "can_comment_from_flowdock", classmethod(can_comment_from_flowdock), raising=False
    )
    _ticket, thread_id = ticket_thread()
    refused = reply(sandbox, thread_id, "let me in")

    assert catch_up() == 1

    assert not Reply.objects.exists()
    record = ReceivedMessage.objects.get()
    assert (record.message_id, record.state) == (refused["id"], "refused")
    assert "can_comment_from_flowdock refused marty" in record.last_error
    assert record.data["content"] == "let me in"
    assert record.next_attempt_at is None  # not retried

    monkeypatch.setattr(
        Reply, "can_comment_from_flowdock", classmethod(lambda cls, user, ticket: True)
    )
    reply(sandbox, thread_id, "now allowed")
    catch_up()
    assert list(Reply.objects.values_list("text", flat=True)) == ["now allowed"]


def test_a_reply_over_the_size_limit_is_cut_and_logged(
    source, sandbox, linked_user, monkeypatch, caplog
):
    monkeypatch.setattr(replies_module, "MAX_LENGTH", 10)
    _ticket, thread_id = ticket_thread()
    sent = reply(sandbox, thread_id, "0123456789 and more")

    with caplog.at_level(logging.WARNING, logger="django_flowdock.conversations"):
        catch_up()

    assert Reply.objects.get().text == "0123456789"
    assert f"Flowdock message {sent['id']} in flow" in caplog.text
    assert "has 19 characters; cut to 10" in caplog.text
