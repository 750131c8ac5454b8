"""The demo in a browser: a reply typed in the sandbox inbox's reply box reaches the
ticket as a Reply by the linked user, read by a real listener process."""

from __future__ import annotations

import signal

import pytest
from django.contrib.auth import get_user_model

from django_flowdock.models import FlowdockUser
from tests.conversations_support import connect_source
from tests.test_conversations import ticket_thread
from tests.test_conversations_processes import spawn_listener
from tests.testapp.models import Reply
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_reply_typed_in_the_inbox_becomes_a_reply_on_the_ticket(sandbox, browser_page):
    connect_source(sandbox)
    user = get_user_model().objects.create_user("marty")
    FlowdockUser.objects.create(flowdock_user_id=str(sandbox.credentials["user"]["id"]), user=user)
    ticket, thread_id = ticket_thread("Polish the flux capacitor")
    listener = spawn_listener(sandbox.url)
    from playwright.sync_api import expect

    try:
        page = browser_page
        page.goto(f"{sandbox.credentials['flow']['web_url']}?thread={thread_id}")
        page.wait_for_selector("#live-state[data-state=live]")
        page.fill(".reply-form textarea", "Polished, <i>spotless</i>")
        page.click(".reply-form button")
        page.wait_for_selector(".timeline .message.message .chat:has-text('Polished')")

        comment = wait_for(lambda: Reply.objects.first(), timeout=10, what="the reply")
        assert (comment.ticket, comment.author) == (ticket, user)
        assert comment.text == "Polished, <i>spotless</i>"
        # Emptied once the sandbox has answered the reply's POST.
        expect(page.locator(".reply-form textarea")).to_have_value("")
    finally:
        listener.send_signal(signal.SIGTERM)
        listener.communicate(timeout=20)
