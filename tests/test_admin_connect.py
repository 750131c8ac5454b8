"""The admin's "Connect a flow", the URIs to paste into Flowdock, and the source
lifecycle actions, against the sandbox over real HTTP."""

from __future__ import annotations

import pytest
from django.urls import reverse

from django_flowdock.delivery.engine import drain
from django_flowdock.models import Message, Source
from tests.flowdock_connect import consent, start
from tests.testapp.models import Ticket


@pytest.fixture
def admin_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("ada", "a@example.com", "pw"))
    return client


def connect(admin_client, application, name="Helpdesk tickets") -> Source:
    connect_url = reverse("admin:django_flowdock_oauthapplication_connect", args=[application.pk])
    answer = consent(start(admin_client, connect_url))
    response = admin_client.get("/flowdock/oauth/callback/", answer)
    pick_url = reverse("admin:django_flowdock_oauthapplication_connect_flow", args=[application.pk])
    assert response["Location"] == pick_url
    page = admin_client.get(pick_url).content.decode()
    assert "Acme / Main" in page
    flow_id = page.split(">Acme / Main<")[0].rsplit('value="', 1)[1].split('"')[0]
    response = admin_client.post(pick_url, {"flow": flow_id, "name": name}, follow=True)
    assert f"Connected “{name}” to the flow Main." in response.content.decode()
    return Source.objects.get(name=name)


def test_change_page_shows_the_uris_for_flowdock_and_a_connect_button(admin_client, application):
    url = reverse("admin:django_flowdock_oauthapplication_change", args=[application.pk])
    page = admin_client.get(url).content.decode()
    assert "<code>https://helpdesk.example/flowdock/oauth/callback/</code>" in page
    assert f"<code>https://helpdesk.example/flowdock/setup/{application.pk}/</code>" in page
    assert "<code>https://helpdesk.example/flowdock/configure/</code>" in page
    assert f'href="/admin/django_flowdock/oauthapplication/{application.pk}/connect/"' in page


def test_uris_follow_the_request_without_site_url(admin_client, application, settings):
    settings.FLOWDOCK = {**settings.FLOWDOCK, "SITE_URL": None}
    url = reverse("admin:django_flowdock_oauthapplication_change", args=[application.pk])
    page = admin_client.get(url).content.decode()
    assert "<code>http://testserver/flowdock/oauth/callback/</code>" in page


@pytest.mark.django_db(transaction=True)
def test_admin_connects_a_flow_and_a_ticket_appears_in_it(admin_client, application, sandbox):
    source = connect(admin_client, application)
    assert source.flow_path == "acme/main" and source.token.scope

    Ticket.objects.create(subject="Polish the flux capacitor")

    [thread] = [t for t in sandbox.threads() if t["source_id"] == int(source.flowdock_id)]
    assert thread["title"] == "Polish the flux capacitor"


def test_connect_needs_the_add_source_permission(client, application, django_user_model):
    staff = django_user_model.objects.create_user("bob", password="pw", is_staff=True)
    client.force_login(staff)
    url = reverse("admin:django_flowdock_oauthapplication_connect", args=[application.pk])
    assert client.get(url).status_code == 403


def test_pick_page_without_a_grant_goes_back_with_a_message(admin_client, application):
    url = reverse("admin:django_flowdock_oauthapplication_connect_flow", args=[application.pk])
    response = admin_client.get(url, follow=True)
    assert b"No flow is waiting to be connected" in response.content


def run_action(admin_client, action, sources, **extra):
    return admin_client.post(
        reverse("admin:django_flowdock_source_changelist"),
        {"action": action, "_selected_action": [s.pk for s in sources], **extra},
        follow=True,
    )


def remote(sandbox, source):
    return next(s for s in sandbox.sources() if str(s["id"]) == source.flowdock_id)


def test_set_and_clear_error_message_in_flowdock(admin_client, application, sandbox):
    source = connect(admin_client, application)
    form = run_action(admin_client, "set_error_message", [source])
    assert b"Set an error message in Flowdock" in form.content and b'name="apply"' in form.content

    run_action(
        admin_client, "set_error_message", [source], apply="1", message="Reconnect the project"
    )
    assert remote(sandbox, source)["error_message"] == "Reconnect the project"
    source.refresh_from_db()
    assert source.error_message == "Reconnect the project"

    run_action(admin_client, "clear_error_message", [source])
    assert remote(sandbox, source)["error_message"] == ""
    source.refresh_from_db()
    assert source.error_message == ""


def test_remove_from_flowdock_keeps_the_source_inactive_with_its_history(
    admin_client, application, sandbox
):
    source = connect(admin_client, application)
    Message.objects.create(source=source, thread_key="t", event="activity", payload={})

    response = run_action(admin_client, "remove_from_flowdock", [source])

    assert b"was removed from Flowdock and is now inactive" in response.content
    assert next(s for s in sandbox.sources() if s["name"] == source.name)["removed"]
    source.refresh_from_db()
    assert not source.active and source.deactivated_at
    assert source.messages.count() == 1


def test_remove_explains_hand_connected_sources(admin_client, sandbox):
    source = Source.objects.create(name="By hand", flow_token=sandbox.flow_token)
    response = run_action(admin_client, "remove_from_flowdock", [source])
    assert b"was connected by hand" in response.content
    source.refresh_from_db()
    assert source.active


def test_refused_flow_token_shows_the_error_in_flowdock_too(admin_client, application, sandbox):
    source = connect(admin_client, application)
    source.flow_token = "not-the-token"
    source.save()
    message = Message.objects.create(
        source=source,
        thread_key="t",
        event="activity",
        payload={
            "event": "activity",
            "author": {"name": "Ada"},
            "title": "created ticket",
            "external_thread_id": "t",
            "thread": {"title": "Broken"},
        },
    )

    drain(message_ids=[message.pk])

    source.refresh_from_db()
    assert source.error_message.startswith("Flowdock refused the flow token (401)")
    assert remote(sandbox, source)["error_message"] == source.error_message
