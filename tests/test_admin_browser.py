"""In chromium at 1280 px: the delivery log's columns and a message's payload fit the
window, and the screenshots of the log and the Source form for docs/admin.md."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from django_flowdock.models import Message, Source
from tests.flowdock_connect import admin_login
from tests.screenshots import screenshot_path
from tests.testapp.models import Card, Project, Ticket

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTH = 1280


def outside(page, selector: str, right: float = WIDTH) -> list[str]:
    """The elements matching ``selector`` that are hidden or reach past ``right``."""
    return [
        element.inner_text() or selector
        for element in page.query_selector_all(selector)
        if (box := element.bounding_box()) is None or box["x"] + box["width"] > right
    ]


def right_edge(page, selector: str) -> float:
    box = page.query_selector(selector).bounding_box()
    return box["x"] + box["width"]


def scrolls_sideways(page, selector: str) -> bool:
    return page.eval_on_selector(selector, "e => e.scrollWidth > e.clientWidth")


@pytest.fixture
def admin_page(browser_page, live_server, django_user_model):
    browser_page.set_viewport_size({"width": WIDTH, "height": 900})
    django_user_model.objects.create_superuser("ada", "ada@example.com", "pw")
    admin_login(browser_page, live_server.url, "ada", "pw")
    return browser_page


def fill_the_log() -> None:
    # Inactive while the items are saved, so the log holds just the rows written here.
    helpdesk = Source.objects.create(name="Helpdesk", flow_token="t1", active=False)
    ops = Source.objects.create(name="Operations", flow_token="t2", active=False)
    printer = Card.objects.create(title="The printer on the third floor is on fire again")
    ticket = Ticket.objects.create(subject="VPN drops every ten minutes")
    gone = Card.objects.create(title="Duplicate")
    gone_key = f"testapp.card:{gone.pk}"
    gone.delete()
    now = timezone.now()
    rows = [
        (helpdesk, f"testapp.card:{printer.pk}", "sent", 1, 202, "", ""),
        (
            ops,
            f"testapp.ticket:{ticket.pk}",
            "failed",
            8,
            400,
            "Validation failed: thread.fields[3].value is too long (limit 1000 characters); "
            "the payload was repaired but Flowdock still refused it",
            "fields: Notes cut to 1000 characters",
        ),
        (helpdesk, f"testapp.card:{printer.pk}", "pending", 2, 503, "Service unavailable", ""),
        (helpdesk, gone_key, "cancelled", 0, None, "Source removed from Flowdock by ada.", ""),
    ]
    for minutes, (source, key, state, attempts, status, error, repairs) in enumerate(rows):
        Message.objects.create(
            source=source,
            thread_key=key,
            event="activity",
            state=state,
            attempts=attempts,
            status_code=status,
            last_error=error,
            repairs=repairs,
            created_at=now - timedelta(minutes=10 - minutes),
            next_attempt_at=now + timedelta(minutes=2),
            sent_at=now if state == "sent" else None,
            payload={
                "event": "activity",
                "title": "updated card",
                "thread": {"title": "The printer", "body": "<p>" + "smoke " * 200 + "</p>"},
            },
        )


def test_delivery_log_columns_fit_1280_px_and_the_payload_wraps(admin_page, live_server):
    page = admin_page
    fill_the_log()
    page.goto(f"{live_server.url}/admin/django_flowdock/message/")
    headers = page.query_selector_all("#result_list thead th")
    assert [h.inner_text().strip().lower() for h in headers] == [
        "",  # the checkboxes
        "created",
        "object",
        "source",
        "state",
        "last error",
        "sent",
    ]
    # Visible means inside the list's own box, which scrolls sideways when too narrow.
    visible = right_edge(page, "#changelist .results")
    assert visible <= WIDTH
    assert outside(page, "#result_list thead th", visible) == []
    assert outside(page, "#result_list tbody td", visible) == []
    assert not scrolls_sideways(page, "#changelist .results")
    assert not scrolls_sideways(page, "html")
    assert "The printer on the third floor" in page.inner_text("#result_list")
    assert "(deleted)" in page.inner_text("#result_list")
    page.screenshot(path=str(screenshot_path("admin-delivery-log.png")), full_page=True)

    page.click("#result_list tbody tr:nth-child(3) th a")  # the failed message
    page.wait_for_selector(".flowdock-payload")
    assert outside(page, ".flowdock-payload") == []
    assert not scrolls_sideways(page, "html")


def test_source_form_screenshot(admin_page, live_server):
    page = admin_page
    Project.objects.create(name="Acme")
    Project.objects.create(name="Globex")
    source = Source.objects.create(
        name="Helpdesk",
        flow_token="t1",
        flow_name="Support",
        settings={"models": ["testapp.ticket"], "events": ["created", "commented"]},
    )
    page.goto(f"{live_server.url}/admin/django_flowdock/source/{source.pk}/change/")
    page.select_option("#id_scope_object", label="Acme")
    assert page.is_checked("input[name=models][value='testapp.ticket']")
    assert not page.is_checked("input[name=events][value=deleted]")
    assert not scrolls_sideways(page, "html")
    page.screenshot(path=str(screenshot_path("admin-source-form.png")), full_page=True)
    page.click("input[name=_save]")
    page.wait_for_url("**/admin/django_flowdock/source/")
    source.refresh_from_db()
    assert str(source.scope) == "Acme"
    assert source.settings == {"models": ["testapp.ticket"], "events": ["created", "commented"]}
