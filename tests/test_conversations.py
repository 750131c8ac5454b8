"""Conversations both ways, against the sandbox over real HTTP: chat replies in a
ticket's thread become replies on the ticket, once, by the linked user, with no echo."""

from __future__ import annotations

import pytest
import requests
from django.contrib.auth import get_user_model

from django_flowdock.conversations.listener import catch_up, connected_flows
from django_flowdock.conversations.models import FlowCursor, ReceivedMessage, ThreadLink
from django_flowdock.models import Change, FlowdockUser, Message
from tests.conversations_support import connect_source, reply
from tests.testapp.models import Reply, Ticket
from tests.waiting import wait_for

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


def ticket_thread(subject: str = "Polish the flux capacitor") -> tuple[Ticket, str]:
    """A ticket, once posted, and the Flowdock thread id the app learnt for it."""
    ticket = Ticket.objects.create(subject=subject)
    link = wait_for(
        lambda: ThreadLink.objects.filter(object_pk=str(ticket.pk)).first(),
        what="the thread id of the posted ticket",
    )
    return ticket, link.flowdock_thread_id


def test_posting_learns_the_thread_id_from_the_answer_and_starts_the_cursor(source, sandbox):
    ticket, thread_id = ticket_thread()
    [posted] = sandbox.messages()
    assert posted["thread_id"] == thread_id
    link = ThreadLink.objects.get()
    assert (link.source, link.thread_key) == (source, f"testapp.ticket:{ticket.pk}")
    assert (link.model, link.object_pk) == ("testapp.ticket", str(ticket.pk))
    assert Message.objects.get().status_code == 200  # asked with X-flowdock-wait-for-message
    assert FlowCursor.objects.get(flow_id=source.flow_id).last_message_id == posted["id"]


def test_sources_without_a_user_token_post_as_before(sandbox):
    from django_flowdock.models import Source

    Source.objects.create(name="By hand", flow_token=sandbox.flow_token)
    Ticket.objects.create(subject="Plain")
    wait_for(lambda: Message.objects.filter(state="sent").exists(), what="the post")
    assert Message.objects.get().status_code == 202
    assert not ThreadLink.objects.exists()
    assert connected_flows() == []


def test_chat_reply_becomes_a_reply_authored_by_the_linked_user(source, sandbox, linked_user):
    ticket, thread_id = ticket_thread()
    sent = reply(sandbox, thread_id, "On it <b>now</b> & then")

    assert catch_up() == 1

    [comment] = Reply.objects.all()
    assert (comment.ticket, comment.author) == (ticket, linked_user)
    assert comment.text == "On it <b>now</b> & then"  # plain text, as typed
    assert comment.flowdock_message_id == sent["id"]
    received = ReceivedMessage.objects.get()
    assert (received.message_id, received.comment_pk) == (sent["id"], str(comment.pk))


def test_a_reply_from_flowdock_is_not_posted_back(source, sandbox, linked_user):
    _ticket, thread_id = ticket_thread()
    reply(sandbox, thread_id, "Done")
    catch_up()
    assert Reply.objects.count() == 1
    assert not Change.objects.filter(event="commented").exists()
    assert [m["event"] for m in sandbox.messages()] == ["activity", "message"]


def test_our_own_discussions_never_come_back_as_replies(source, sandbox, linked_user):
    ticket, _thread_id = ticket_thread()
    Reply.objects.create(ticket=ticket, text="Written in the helpdesk")
    wait_for(lambda: len(sandbox.messages()) == 2, what="the discussion")
    assert sandbox.messages()[-1]["event"] == "discussion"

    catch_up()

    assert list(Reply.objects.values_list("text", flat=True)) == ["Written in the helpdesk"]


def test_replies_are_applied_once_even_when_read_again(source, sandbox, linked_user):
    _ticket, thread_id = ticket_thread()
    for n in range(3):
        reply(sandbox, thread_id, f"reply {n}")
    catch_up()
    FlowCursor.objects.update(last_message_id=0)  # as if the cursor's write were lost

    catch_up()

    assert sorted(Reply.objects.values_list("text", flat=True)) == ["reply 0", "reply 1", "reply 2"]


def test_unlinked_flowdock_users_reply_as_the_configured_author(source, sandbox, settings):
    fallback = get_user_model().objects.create_user("flowdock-bot")
    settings.FLOWDOCK = {**settings.FLOWDOCK, "CONVERSATION_AUTHOR": "flowdock-bot"}
    _ticket, thread_id = ticket_thread()
    reply(sandbox, thread_id, "Who am I?")
    catch_up()
    assert Reply.objects.get().author == fallback


def test_chat_outside_known_threads_is_ignored(source, sandbox, linked_user):
    ticket_thread()
    flow = sandbox.credentials["flow"]
    requests.post(
        f"{sandbox.url}/messages",
        auth=(sandbox.credentials["user"]["api_token"], ""),
        json={"flow": flow["id"], "event": "message", "content": "lunch?"},
        timeout=10,
    ).raise_for_status()
    assert catch_up() == 1
    assert not Reply.objects.exists()


def test_thread_ids_are_learnt_from_our_own_messages_in_the_flow(source, sandbox, linked_user):
    ticket, thread_id = ticket_thread()
    ThreadLink.objects.all().delete()  # as if Flowdock had answered 202
    FlowCursor.objects.update(last_message_id=0)
    reply(sandbox, thread_id, "Found you")

    catch_up()

    assert ThreadLink.objects.get().flowdock_thread_id == thread_id
    assert Reply.objects.get().ticket == ticket


def test_only_flows_of_active_sources_with_the_flow_scope_are_read(source, sandbox):
    assert [flow.path for flow in connected_flows()] == ["acme/main"]
    source.token.scope = "integration"
    source.token.save()
    assert connected_flows() == []
    source.token.scope = "flow"
    source.token.save()
    source.active = False
    source.save()
    assert connected_flows() == []


def test_a_reply_on_a_thread_posted_before_conversations_was_switched_on_becomes_a_comment(
    source, sandbox, linked_user
):
    ticket, thread_id = ticket_thread()
    # As if posted before: no link was kept, and the listener's first read starts later.
    ThreadLink.objects.all().delete()
    FlowCursor.objects.update(last_message_id=sandbox.messages()[-1]["id"])
    reply(sandbox, thread_id, "Still on it")

    catch_up()

    assert ThreadLink.objects.get().flowdock_thread_id == thread_id
    assert (Reply.objects.get().ticket, Reply.objects.get().text) == (ticket, "Still on it")


def test_chat_in_another_integrations_thread_is_ignored_after_its_thread_is_looked_up(
    source, sandbox, linked_user
):
    ticket_thread()
    other = sandbox.create_source("Another integration")
    posted = requests.post(
        f"{sandbox.url}/messages",
        json={
            "flow_token": other["flow_token"],
            "event": "activity",
            "author": {"name": "CI"},
            "title": "failed build",
            "external_thread_id": "build:1",
            "thread": {"title": "Build 1"},
        },
        headers={"X-flowdock-wait-for-message": "true"},
        timeout=10,
    ).json()
    reply(sandbox, posted["thread_id"], "flaky again")
    reply(sandbox, posted["thread_id"], "retrying")

    assert catch_up() == 3

    assert not Reply.objects.exists()
    assert ThreadLink.objects.count() == 1
