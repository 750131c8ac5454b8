"""Client secrets, OAuth tokens and flow tokens: encrypted at rest, and never in a log
line, an admin page, an error page or a delivery error."""

from __future__ import annotations

import logging

import pytest
from django.db import connection
from django.urls import reverse

from django_flowdock.api.oauth import refresh
from django_flowdock.delivery.engine import drain
from django_flowdock.models import Message, OAuthApplication, Source
from django_flowdock.signals import message_failed
from tests.flowdock_connect import consent, start
from tests.testapp.models import Ticket

CALLBACK = "/flowdock/oauth/callback/"


@pytest.fixture
def connected(client, django_user_model, sandbox, caplog):
    """A flow connected through the Setup URI with refresh tokens, logged at DEBUG."""
    caplog.set_level(logging.DEBUG)
    client.force_login(django_user_model.objects.create_superuser("ada", "a@example.com", "pw"))
    application = OAuthApplication.objects.create(
        name="Helpdesk",
        client_id=sandbox.client_id,
        client_secret=sandbox.client_secret,
        offline_access=True,
    )
    flow = sandbox.credentials["flow"]
    setup = f"/flowdock/setup/{application.pk}/?flow={flow['id']}&flow_url={flow['url']}"
    answer = consent(start(client, setup))
    client.get(CALLBACK, answer)
    client.post("/flowdock/setup/confirm/", {"name": "Helpdesk tickets"})
    source = Source.objects.get()
    # A refresh and a replayed code put the token endpoint's success and error paths
    # into the log as well (the replay revokes the grant, so it comes last).
    token = refresh(source.token)
    replay = consent(start(client, setup))
    error_page = client.get(CALLBACK, {"code": answer["code"], "state": replay["state"]})
    assert error_page.status_code == 400
    secrets = {
        "client secret": sandbox.client_secret,
        "access token": token.access_token,
        "refresh token": token.refresh_token,
        "flow token": source.flow_token,
    }
    assert all(secrets.values())
    return {"client": client, "source": source, "secrets": secrets, "error_page": error_page}


def raw(sql: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchone()[0]


def test_secrets_are_encrypted_in_the_database(connected):
    secrets = connected["secrets"]
    stored = {
        "client secret": raw("SELECT client_secret FROM django_flowdock_oauthapplication"),
        "access token": raw("SELECT access_token FROM django_flowdock_oauthtoken"),
        "refresh token": raw("SELECT refresh_token FROM django_flowdock_oauthtoken"),
        "flow token": raw("SELECT flow_token FROM django_flowdock_source"),
    }
    for name, value in stored.items():
        assert value.startswith("fernet:"), name
        assert secrets[name] not in value, name


def test_secrets_appear_in_no_log_line(connected, caplog):
    records = caplog.get_records("setup")
    logged = "\n".join(record.getMessage() for record in records)
    assert "Refreshed the Flowdock OAuth token" in logged
    assert any(r.name.startswith("urllib3") and r.levelno == logging.DEBUG for r in records)
    for name, secret in connected["secrets"].items():
        assert secret not in logged, f"the {name} was logged"


def test_secrets_appear_in_no_admin_or_error_page(connected):
    client, source = connected["client"], connected["source"]
    pages = [
        connected["error_page"],
        client.get(
            reverse("admin:django_flowdock_oauthapplication_change", args=[source.application_id])
        ),
        client.get(reverse("admin:django_flowdock_oauthapplication_changelist")),
        client.get(reverse("admin:django_flowdock_source_change", args=[source.pk])),
        client.get(reverse("admin:django_flowdock_source_changelist")),
        client.get(
            f"/flowdock/configure/?integration_id={source.flowdock_id}&flow={source.flow_id}"
        ),
        client.get(CALLBACK, {"code": "forged", "state": "forged"}),
    ]
    for page in pages:
        assert page.status_code in (200, 400), page.status_code
        html = page.content.decode()
        for name, secret in connected["secrets"].items():
            assert secret not in html, f"the {name} is shown on {page.request['PATH_INFO']}"


@pytest.mark.django_db(transaction=True)
def test_flow_token_is_not_kept_in_the_error_payload(queued, local_api):
    errors = []
    handler = lambda error, **kw: errors.append(error)  # noqa: E731
    message_failed.connect(handler)
    try:
        local_api.answer(400)
        drain()
    finally:
        message_failed.disconnect(handler)
    assert errors and errors[0].payload is not None
    assert "local-token" not in repr(errors[0].payload)
    assert errors[0].payload["uuid"] == str(queued.uuid)


@pytest.mark.django_db(transaction=True)
def test_an_error_page_echoing_the_request_does_not_store_the_flow_token(db, local_api):
    local_api.answer(
        400,
        body=lambda sent: f"Bad request from token {sent['flow_token']}",
        content_type="text/plain",
    )
    Source.objects.create(name="Local", flow_token="secret-flow-token")
    Ticket.objects.create(subject="Printer on fire")
    assert drain().failed == 1
    message = Message.objects.get()
    assert message.status_code == 400
    assert "secret-flow-token" not in message.last_error
    assert "[flow token]" in message.last_error
    assert "secret-flow-token" not in Source.objects.get().error_message
