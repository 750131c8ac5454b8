"""Connecting a flow through Flowdock's Setup URI, against the sandbox over real HTTP.

Our side runs in Django's test client; the consent page and every API call are the
sandbox's, so codes, states and tokens are real.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.test import Client
from django.utils import timezone

from django_flowdock.api import oauth
from django_flowdock.api.sources import list_flows
from django_flowdock.models import OAuthApplication, OAuthToken, Source
from tests.flowdock_connect import consent, start
from tests.testapp.models import Project, Ticket

CALLBACK = "/flowdock/oauth/callback/"


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_superuser("ada", "ada@example.com", "pw")


@pytest.fixture
def signed_in(client, user):
    client.force_login(user)
    return client


def setup_url(application, sandbox, flow_id=None):
    flow = sandbox.credentials["flow"]
    return f"/flowdock/setup/{application.pk}/?flow={flow_id or flow['id']}&flow_url={flow['url']}"


def authorize_and_return(client, application, sandbox, flow_id=None, decision="allow"):
    answer = consent(start(client, setup_url(application, sandbox, flow_id)), decision)
    return client.get(CALLBACK, answer), answer


def test_setup_uri_creates_source_with_flow_token_and_configuration_url(
    signed_in, application, sandbox, user
):
    authorize_url = start(signed_in, setup_url(application, sandbox))
    assert authorize_url.startswith(f"{sandbox.url}/oauth/authorize?")
    assert "scope=flow+integration+profile" in authorize_url

    response = signed_in.get(CALLBACK, consent(authorize_url))
    assert response.status_code == 302
    assert response["Location"] == "/flowdock/setup/confirm/"
    page = signed_in.get("/flowdock/setup/confirm/")
    assert b"Connect Acme / Main" in page.content

    response = signed_in.post("/flowdock/setup/confirm/", {"name": "Helpdesk tickets"})
    assert response.status_code == 302, response.content
    source = Source.objects.get()
    remote = next(s for s in sandbox.sources() if s["name"] == "Helpdesk tickets")
    assert source.flowdock_id == str(remote["id"])
    assert source.flow_id == sandbox.credentials["flow"]["id"]
    assert (source.flow_name, source.flow_path) == ("Main", "acme/main")
    assert source.application == application
    assert source.token.user == user
    assert source.token.scope == "flow integration profile"
    assert remote["configuration_url"] == (
        "https://helpdesk.example/flowdock/configure/"
        f"?integration_id={source.flowdock_id}&flow={source.flow_id}"
    )
    done = signed_in.get(response["Location"])
    assert "“Helpdesk tickets” now posts to the flow Main." in done.content.decode()


@pytest.mark.django_db(transaction=True)
def test_ticket_reaches_the_flow_connected_through_setup_uri(signed_in, application, sandbox):
    authorize_and_return(signed_in, application, sandbox)
    signed_in.post("/flowdock/setup/confirm/", {"name": "Helpdesk tickets"})
    source = Source.objects.get()

    Ticket.objects.create(subject="Polish the flux capacitor")

    [message] = sandbox.messages(source_id=int(source.flowdock_id))
    assert message["thread"]["title"] == "Polish the flux capacitor"


def test_confirm_page_scopes_the_source_to_a_chosen_object(signed_in, application, sandbox):
    apollo = Project.objects.create(name="Apollo")
    authorize_and_return(signed_in, application, sandbox)
    page = signed_in.get("/flowdock/setup/confirm/").content.decode()
    assert "Everything (no scope)" in page and ">Apollo</option>" in page

    choice = page.split(">Apollo</option>")[0].rsplit('value="', 1)[1].split('"')[0]
    signed_in.post("/flowdock/setup/confirm/", {"name": "Apollo", "scope": choice})

    assert Source.objects.get().scope == apollo


def test_offline_access_asks_for_refresh_tokens_and_refreshes_expired_ones(
    signed_in, application, sandbox
):
    application.offline_access = True
    application.save()
    authorize_url = start(signed_in, setup_url(application, sandbox))
    assert "scope=flow+integration+profile+offline_access" in authorize_url
    signed_in.get(CALLBACK, consent(authorize_url))
    token = OAuthToken.objects.get()
    first_access, first_refresh = token.access_token, token.refresh_token
    assert first_refresh

    token.expires_at = timezone.now() - timedelta(seconds=1)
    token.save()
    flows = list_flows(token)

    assert [flow["name"] for flow in flows] == ["Main"]
    token.refresh_from_db()
    assert token.access_token != first_access
    assert token.refresh_token != first_refresh  # the sandbox rotates refresh tokens
    assert token.expires_at > timezone.now() + timedelta(minutes=30)


def test_expired_token_without_refresh_token_asks_to_connect_again(signed_in, application, sandbox):
    authorize_and_return(signed_in, application, sandbox)
    token = OAuthToken.objects.get()
    token.expires_at = timezone.now() - timedelta(seconds=1)
    token.save()
    with pytest.raises(oauth.FlowdockOAuthError, match="Connect the flow again"):
        list_flows(token)


def assert_error_page_and_nothing_created(response, status, text):
    assert response.status_code == status
    content = response.content.decode()
    assert text in content, content
    assert not Source.objects.exists()


def test_tampered_state_ends_on_error_page(signed_in, application, sandbox):
    answer = consent(start(signed_in, setup_url(application, sandbox)))
    response = signed_in.get(CALLBACK, {**answer, "state": answer["state"][:-2] + "xx"})
    assert_error_page_and_nothing_created(response, 400, "state mismatch")
    assert not OAuthToken.objects.exists()
    # The attempt is used up: the genuine answer cannot be replayed into it afterwards.
    response = signed_in.get(CALLBACK, answer)
    assert_error_page_and_nothing_created(response, 400, "No connection to Flowdock was started")


def test_replayed_code_ends_on_error_page(signed_in, application, sandbox):
    first, answer = authorize_and_return(signed_in, application, sandbox)
    assert first.status_code == 302
    signed_in.get("/flowdock/setup/confirm/")
    second_attempt = consent(start(signed_in, setup_url(application, sandbox)))

    response = signed_in.get(CALLBACK, {"code": answer["code"], "state": second_attempt["state"]})

    assert_error_page_and_nothing_created(response, 400, "expired or was already used")
    assert OAuthToken.objects.count() == 1  # only the first, genuine exchange


def test_denied_consent_ends_on_error_page(signed_in, application, sandbox):
    response, answer = authorize_and_return(signed_in, application, sandbox, decision="deny")
    assert answer["error"] == "access_denied"
    assert_error_page_and_nothing_created(response, 400, "Access was denied in Flowdock")
    assert not OAuthToken.objects.exists()


def test_unknown_flow_ends_on_not_found_page(signed_in, application, sandbox):
    response, _ = authorize_and_return(signed_in, application, sandbox, flow_id="no-such-flow")
    assert_error_page_and_nothing_created(response, 404, "Flowdock knows no flow no-such-flow")
    assert not OAuthToken.objects.exists()


def test_unreachable_api_ends_on_error_page(signed_in, application, sandbox):
    answer = consent(start(signed_in, setup_url(application, sandbox)))
    application.api_url = "http://127.0.0.1:9"  # nothing listens on the discard port
    application.save()
    response = signed_in.get(CALLBACK, answer)
    assert_error_page_and_nothing_created(response, 400, "Could not reach Flowdock")


def test_failing_source_creation_ends_on_error_page(signed_in, application, sandbox):
    authorize_and_return(signed_in, application, sandbox)
    sandbox.inject_fault(status=500, path="/flows/acme/main/sources")
    response = signed_in.post("/flowdock/setup/confirm/", {"name": "Helpdesk tickets"})
    assert_error_page_and_nothing_created(response, 502, "Flowdock could not be reached")
    assert [s["name"] for s in sandbox.sources()] == ["Sandbox source"]


def test_flow_of_an_unexpected_shape_ends_on_error_page(
    signed_in, application, sandbox, monkeypatch
):
    # A proxy or a future API version answering differently: hard to cause for real.
    monkeypatch.setattr("django_flowdock.connect.views.find_flow", lambda token, flow_id: {"id": 1})
    response, _ = authorize_and_return(signed_in, application, sandbox)
    assert_error_page_and_nothing_created(response, 502, "cannot read")
    assert not OAuthToken.objects.exists()


def test_callback_without_a_started_connection_is_an_error_page(signed_in, application):
    response = signed_in.get(CALLBACK, {"code": "x", "state": "y"})
    assert_error_page_and_nothing_created(response, 400, "No connection to Flowdock was started")


def test_setup_needs_sign_in_and_the_add_source_permission(
    client, application, sandbox, django_user_model, settings
):
    settings.LOGIN_URL = "/admin/login/"
    response = client.get(setup_url(application, sandbox))
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")

    client.force_login(django_user_model.objects.create_user("bob", password="pw"))
    assert client.get(setup_url(application, sandbox)).status_code == 403


def test_setup_without_flow_explains_where_to_start(signed_in, application):
    response = signed_in.get(f"/flowdock/setup/{application.pk}/")
    assert response.status_code == 400
    assert b"Open this page from Flowdock" in response.content


def test_plain_setup_uri_works_with_a_single_application(signed_in, application, sandbox):
    flow = sandbox.credentials["flow"]
    authorize_url = start(signed_in, f"/flowdock/setup/?flow={flow['id']}")
    assert f"client_id={sandbox.client_id}" in authorize_url


@pytest.fixture
def offline_application(db, sandbox):
    return OAuthApplication.objects.create(
        name="Helpdesk",
        client_id=sandbox.client_id,
        client_secret=sandbox.client_secret,
        offline_access=True,
    )


def test_two_holders_of_an_expired_token_both_get_a_working_access_token(
    client, django_user_model, offline_application, sandbox
):
    """Two workers load the same expired grant; the first refresh rotates the refresh
    token, so the second must use the stored result instead of the spent one."""
    client.force_login(django_user_model.objects.create_superuser("ada", "a@example.com", "pw"))
    flow = sandbox.credentials["flow"]
    url = f"/flowdock/setup/{offline_application.pk}/?flow={flow['id']}"
    client.get(CALLBACK, consent(start(client, url)))
    OAuthToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    first, second = OAuthToken.objects.get(), OAuthToken.objects.get()

    assert [f["name"] for f in list_flows(first)] == ["Main"]
    assert [f["name"] for f in list_flows(second)] == ["Main"]

    stored = OAuthToken.objects.get()
    assert second.access_token == stored.access_token == first.access_token
    assert stored.expires_at > timezone.now() + timedelta(minutes=30)


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    not connection.features.has_select_for_update,
    reason="serialising a double submit needs row locks (PostgreSQL); SQLite has none",
)
def test_confirm_sent_twice_at_once_creates_one_source(django_user_model, sandbox):
    """A double click on "Connect": both requests carry the same connection attempt;
    only one source may be created, here and in Flowdock."""
    application = OAuthApplication.objects.create(
        name="Helpdesk", client_id=sandbox.client_id, client_secret=sandbox.client_secret
    )
    first = Client()
    first.force_login(django_user_model.objects.create_superuser("ada", "a@example.com", "pw"))
    flow = sandbox.credentials["flow"]
    first.get(
        CALLBACK, consent(start(first, f"/flowdock/setup/{application.pk}/?flow={flow['id']}"))
    )
    second = Client()
    second.cookies = first.cookies
    # The first request's creation is slow, so the second arrives while it runs.
    sandbox.inject_fault(
        latency=1.0, path=f"/flows/{flow['organization']}/{flow['parameterized_name']}/sources"
    )

    responses = {}

    def submit(name, client):
        try:
            responses[name] = client.post("/flowdock/setup/confirm/", {"name": "Helpdesk tickets"})
        finally:
            connections.close_all()

    threads = [threading.Thread(target=submit, args=("first", first))]
    threads[0].start()
    # A head start: the first is inside its slow creation when the second arrives (the
    # wait is in the sandbox's process, so no event here announces it).
    time.sleep(0.3)
    threads.append(threading.Thread(target=submit, args=("second", second)))
    threads[1].start()
    for thread in threads:
        thread.join(10)

    assert Source.objects.count() == 1
    assert [s["name"] for s in sandbox.sources()].count("Helpdesk tickets") == 1
    assert sorted(r.status_code for r in responses.values()) == [302, 400]
