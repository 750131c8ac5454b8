"""Admin screens: secrets write-only, test messages, a read-only delivery log with retry."""

import pytest

from django_flowdock.models import Message, OAuthApplication, Source

pytestmark = pytest.mark.django_db(transaction=True)

SOURCE_URL = "/admin/django_flowdock/source/"


def test_source_change_page_never_shows_the_flow_token(admin_client):
    source = Source.objects.create(name="Helpdesk", flow_token="be299b91fffe8e41")
    page = admin_client.get(f"{SOURCE_URL}{source.pk}/change/").content.decode()
    assert "be299b91fffe8e41" not in page
    assert "Leave empty to keep the current value" in page


def test_saving_a_source_with_an_empty_token_keeps_the_stored_one(admin_client):
    source = Source.objects.create(name="Helpdesk", flow_token="keep-me")
    response = admin_client.post(
        f"{SOURCE_URL}{source.pk}/change/",
        {
            "name": "Renamed",
            "flow_token": "",
            "flow_name": "",
            "active": "on",
            "scope_object_id": "",
            "settings": "{}",
        },
    )
    assert response.status_code == 302
    source.refresh_from_db()
    assert (source.name, source.flow_token) == ("Renamed", "keep-me")


def test_adding_a_source_requires_a_flow_token(admin_client):
    response = admin_client.post(
        f"{SOURCE_URL}add/", {"name": "x", "flow_token": "", "settings": "{}"}
    )
    assert response.status_code == 200
    assert "This field is required" in response.content.decode()
    assert not Source.objects.exists()


def test_oauth_application_secret_is_write_only(admin_client):
    app = OAuthApplication.objects.create(name="App", client_id="cid", client_secret="hush-hush")
    page = admin_client.get(
        f"/admin/django_flowdock/oauthapplication/{app.pk}/change/"
    ).content.decode()
    assert "hush-hush" not in page


def test_send_test_message_reaches_the_flow(admin_client, source, sandbox):
    response = admin_client.post(
        SOURCE_URL, {"action": "send_test_message", "_selected_action": [source.pk]}, follow=True
    )
    assert "test message sent" in response.content.decode()
    [thread] = sandbox.threads()
    assert thread["title"] == "Test message for source “Helpdesk”"


def test_send_test_message_reports_flowdocks_refusal(admin_client, sandbox):
    bad = Source.objects.create(name="Typo", flow_token="wrong")
    response = admin_client.post(
        SOURCE_URL, {"action": "send_test_message", "_selected_action": [bad.pk]}, follow=True
    )
    page = response.content.decode()
    assert "Flowdock refused the test message" in page
    assert "wrong" not in page.split("messagelist")[1][:500]


def test_source_list_shows_error_and_last_delivery(admin_client, source, sandbox):
    from tests.testapp.models import Ticket

    source.error_message = "Grant revoked"
    source.save()
    Ticket.objects.create(subject="Polish")
    page = admin_client.get(SOURCE_URL).content.decode()
    assert "Grant revoked" in page
    assert "everything" in page


def test_delivery_log_is_read_only_and_shows_the_payload(admin_client, source):
    message = Message.objects.create(
        source=source, thread_key="t:1", event="activity", payload={"title": "created ticket"}
    )
    url = f"/admin/django_flowdock/message/{message.pk}/change/"
    page = admin_client.get(url).content.decode()
    assert "&quot;title&quot;: &quot;created ticket&quot;" in page
    assert 'name="_save"' not in page
    assert admin_client.get("/admin/django_flowdock/message/add/").status_code == 403
    assert admin_client.post(url, {"state": "sent"}).status_code == 403


def test_delivery_log_filters_by_state(admin_client, source):
    Message.objects.create(
        source=source, thread_key="a", event="activity", payload={}, state="failed"
    )
    Message.objects.create(
        source=source, thread_key="b", event="activity", payload={}, state="sent"
    )
    page = admin_client.get("/admin/django_flowdock/message/?state=failed").content.decode()
    assert ">a<" in page
    assert ">b<" not in page


def test_retry_action_sends_failed_messages_again(transactional_db, admin_client, source, sandbox):
    from django_flowdock.threads.render import activity_message
    from tests.testapp.models import Ticket

    payload = activity_message(Ticket(pk=5, subject="Retry me"), "created")
    failed = Message.objects.create(
        source=source,
        thread_key="testapp.ticket:5",
        event="activity",
        payload=payload,
        state="failed",
        attempts=8,
        last_error="Gave up",
    )
    admin_client.post(
        "/admin/django_flowdock/message/",
        {"action": "retry", "_selected_action": [failed.pk]},
    )
    assert [t["title"] for t in sandbox.threads()] == ["Retry me"]
    failed.refresh_from_db()
    assert failed.state == Message.State.SENT


def test_retry_leaves_a_message_a_worker_is_sending_alone(admin_client, source):
    from datetime import timedelta

    from django.utils import timezone

    in_flight = Message.objects.create(
        source=source,
        thread_key="t",
        event="activity",
        payload={},
        attempts=1,
        claimed_until=timezone.now() + timedelta(minutes=1),
    )
    admin_client.post(
        "/admin/django_flowdock/message/",
        {"action": "retry", "_selected_action": [in_flight.pk]},
    )
    in_flight.refresh_from_db()
    assert in_flight.attempts == 1
    assert in_flight.claimed_until is not None


def test_view_only_staff_cannot_send_test_messages(client, django_user_model, source, sandbox):
    from django.contrib.auth.models import Permission

    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_source"))
    client.force_login(viewer)
    response = client.post(
        SOURCE_URL, {"action": "send_test_message", "_selected_action": [source.pk]}
    )
    assert response.status_code in (200, 302)
    assert sandbox.messages() == []


def test_no_test_message_goes_to_an_inactive_source(admin_client, source, sandbox):
    source.active = False
    source.save()
    response = admin_client.post(
        SOURCE_URL, {"action": "send_test_message", "_selected_action": [source.pk]}, follow=True
    )
    assert "inactive, no test message sent" in response.content.decode()
    assert sandbox.messages() == []


def test_late_retry_shows_the_thread_as_it_is_now_so_it_never_goes_back(
    transactional_db, admin_client, source, sandbox, settings
):
    from django_flowdock.delivery.engine import drain
    from tests.testapp.models import Ticket

    settings.FLOWDOCK = {**settings.FLOWDOCK, "DELIVERY": "worker"}
    sandbox.inject_fault(status=400, count=1)  # the creation is refused
    ticket = Ticket.objects.create(subject="Printer")
    drain()
    ticket.state = "solved"
    ticket.save()
    drain()
    failed = Message.objects.get(state="failed")
    admin_client.post(
        "/admin/django_flowdock/message/", {"action": "retry", "_selected_action": [failed.pk]}
    )
    drain()
    failed.refresh_from_db()
    assert failed.state == Message.State.SENT
    assert failed.payload["title"] == "created ticket"
    assert failed.payload["thread"]["status"] == {"value": "solved", "color": "grey"}
    assert sandbox.threads()[0]["status"] == {"value": "solved", "color": "grey"}
