"""The Flowdock panel on a thread model's change page (FlowdockThreadAdminMixin): the
thread's messages per source and a "Resend to Flowdock" button; and a hand-made
source's application, picked in the admin."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils.http import urlencode

from django_flowdock.delivery.fanout import fan_out
from django_flowdock.models import Change, Message, OAuthApplication, OAuthToken, Source
from tests.testapp.models import Card

pytestmark = pytest.mark.django_db


def card_url(card: Card) -> str:
    return reverse("admin:testapp_card_change", args=[card.pk])


def resend_url(card: Card) -> str:
    return reverse("admin:testapp_card_flowdock_resend", args=[card.pk])


@pytest.fixture
def quiet_sources(db) -> tuple[Source, Source]:
    """Inactive: saving a card queues them nothing, the panel shows the rows a test writes."""
    return (
        Source.objects.create(name="Helpdesk", flow_token="t1", active=False),
        Source.objects.create(name="Operations", flow_token="t2", active=False),
    )


def test_panel_lists_the_threads_messages_per_source(admin_client, quiet_sources):
    helpdesk, ops = quiet_sources
    card = Card.objects.create(title="Printer on fire")
    key = f"testapp.card:{card.pk}"
    sent = Message.objects.create(source=helpdesk, thread_key=key, event="activity", state="sent")
    failed = Message.objects.create(
        source=ops,
        thread_key=key,
        event="activity",
        state="failed",
        attempts=8,
        status_code=400,
        last_error="Validation failed: thread.title is missing",
    )
    Message.objects.create(source=helpdesk, thread_key="testapp.card:999999", event="activity")
    page = admin_client.get(card_url(card)).content.decode()
    assert f'<span class="flowdock-thread-key">{key}</span>' in page
    assert page.count('class="flowdock-message"') == 2
    for message in (sent, failed):
        assert reverse("admin:django_flowdock_message_change", args=[message.pk]) in page
    assert "400 Validation failed: thread.title is missing" in page
    assert ">8</td>" in page
    log = reverse("admin:django_flowdock_message_changelist")
    assert (
        f"{log}?{urlencode({'q': key, 'source__id__exact': ops.pk})}".replace("&", "&amp;") in page
    )
    assert f"{log}?{urlencode({'q': key})}" in page
    # The source of the newest message first.
    assert page.index(">Operations<") < page.index(">Helpdesk<")
    assert 'formaction="' + resend_url(card) in page


def test_panel_says_when_the_thread_has_no_message(admin_client, quiet_sources):
    card = Card.objects.create(title="Quiet")
    page = admin_client.get(card_url(card)).content.decode()
    assert "No message for this thread yet." in page
    assert admin_client.get(reverse("admin:testapp_card_add")).status_code == 200


def test_resend_queues_the_threads_current_state_for_its_sources(
    admin_client, hand_source, worker_delivery
):
    card = Card.objects.create(title="Printer on fire")
    fan_out()
    key = f"testapp.card:{card.pk}"
    assert Message.objects.filter(thread_key=key).count() == 1
    response = admin_client.post(resend_url(card))
    assert response.status_code == 302
    assert response["Location"] == card_url(card)
    change = Change.objects.get(fanned_out=False)
    assert (change.model, change.object_pk, change.event) == (
        "testapp.card",
        str(card.pk),
        "updated",
    )
    fan_out()
    latest = Message.objects.filter(thread_key=key).latest("pk")
    assert (latest.source, latest.state, latest.change) == (hand_source, "pending", change)
    page = admin_client.get(card_url(card)).content.decode()
    assert "is queued for Flowdock" in page
    assert page.count('class="flowdock-message"') == 2


def test_resend_needs_a_post_with_csrf_and_the_change_permission(
    admin_client, django_user_model, hand_source, worker_delivery
):
    card = Card.objects.create(title="Printer on fire")
    Change.objects.all().delete()
    assert admin_client.get(resend_url(card)).status_code == 405

    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_card"))
    viewer_client = Client()
    viewer_client.force_login(viewer)
    page = viewer_client.get(card_url(card)).content.decode()
    assert "flowdock-thread-key" in page and "Resend to Flowdock" not in page
    assert viewer_client.post(resend_url(card)).status_code == 403

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(django_user_model.objects.create_superuser("root", "r@example.com", "pw"))
    assert strict.post(resend_url(card)).status_code == 403
    assert not Change.objects.exists()


def test_a_hand_made_sources_application_is_picked_in_the_admin(admin_client, hand_source):
    application = OAuthApplication.objects.create(name="Bot", client_id="c", client_secret="s")
    url = reverse("admin:django_flowdock_source_change", args=[hand_source.pk])
    assert '<select name="application"' in admin_client.get(url).content.decode()
    form = {"name": "Helpdesk", "flow_token": "", "flow_name": "", "active": "on"}
    response = admin_client.post(url, {**form, "application": application.pk})
    assert response.status_code == 302
    hand_source.refresh_from_db()
    assert hand_source.application == application
    assert hand_source.flow_token == "token-1"


def test_an_oauth_sources_application_stays_read_only(admin_client):
    application = OAuthApplication.objects.create(name="Bot", client_id="c", client_secret="s")
    token = OAuthToken.objects.create(application=application, access_token="a")
    source = Source.objects.create(
        name="Connected", flow_token="t", application=application, token=token, flowdock_id="7"
    )
    url = reverse("admin:django_flowdock_source_change", args=[source.pk])
    page = admin_client.get(url).content.decode()
    assert 'name="application"' not in page
    other = OAuthApplication.objects.create(name="Other", client_id="o", client_secret="s")
    form = {"name": "Connected", "flow_token": "", "flow_name": "", "active": "on"}
    assert admin_client.post(url, {**form, "application": other.pk}).status_code == 302
    source.refresh_from_db()
    assert source.application == application
