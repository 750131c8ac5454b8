"""In chromium: a card's Flowdock panel shows what reached the sandbox, and its "Resend
to Flowdock" button posts the card's current state there again."""

from __future__ import annotations

import pytest

from django_flowdock.testing import wait_for_delivery
from tests.flowdock_connect import admin_login
from tests.screenshots import screenshot_path
from tests.testapp.models import Card

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_panel_shows_the_threads_messages_and_resends_its_current_state(
    browser_page, live_server, sandbox, source, django_user_model
):
    page = browser_page
    django_user_model.objects.create_superuser("ada", "ada@example.com", "pw")
    card = Card.objects.create(title="Printer on fire")
    wait_for_delivery()
    key = f"testapp.card:{card.pk}"
    assert len(sandbox.messages(external_thread_id=key)) == 1

    admin_login(page, live_server.url, "ada", "pw")
    page.goto(f"{live_server.url}/admin/testapp/card/{card.pk}/change/")
    assert page.inner_text(".flowdock-thread-key") == key
    assert page.text_content(".flowdock-source caption") == "Helpdesk"
    assert page.locator(".flowdock-message").count() == 1
    assert page.inner_text(".flowdock-message .flowdock-state") == "sent"

    card.title = "Printer still on fire"
    Card.objects.filter(pk=card.pk).update(title=card.title)  # no change captured
    page.click("text=Resend to Flowdock")
    page.wait_for_selector(".messagelist .success")
    assert "is queued for Flowdock" in page.inner_text(".messagelist")
    wait_for_delivery()
    resent = sandbox.messages(external_thread_id=key)
    assert len(resent) == 2
    assert resent[-1]["thread"]["title"] == "Printer still on fire"

    page.reload()
    assert page.locator(".flowdock-message").count() == 2
    assert page.locator(".flowdock-message .flowdock-state").all_inner_texts() == ["sent"] * 2
    page.locator(".flowdock-panel").screenshot(path=str(screenshot_path("admin-thread-panel.png")))
