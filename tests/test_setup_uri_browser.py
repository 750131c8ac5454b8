"""In chromium: connecting a flow from the sandbox's Setup URI generator, with the
developer application's URIs pointing at our live server (the exact ones the admin
shows, so the sandbox also checks the callback URI matches)."""

from __future__ import annotations

import pytest

from django_flowdock.models import OAuthApplication, Source
from django_flowdock.sandbox.testing import SandboxServer
from django_flowdock.testing import wait_for_delivery
from tests.flowdock_connect import admin_login, screenshot
from tests.testapp.models import Ticket

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def app_sandbox(live_server):
    """A sandbox of our own whose application sends Flowdock's users to the live server."""
    base = f"{live_server.url}/flowdock"
    with SandboxServer.start(
        callback_uri=f"{base}/oauth/callback/",
        setup_uri=f"{base}/setup/",
        configuration_uri=f"{base}/configure/",
    ) as server:
        yield server


@pytest.fixture
def signed_in_page(browser_page, live_server, app_sandbox, settings, django_user_model):
    """A superuser signed in to the live server, whose application is the sandbox's."""
    settings.FLOWDOCK = {
        **settings.FLOWDOCK,
        "API_URL": app_sandbox.url,
        "SITE_URL": live_server.url,
    }
    django_user_model.objects.create_superuser("ada", "ada@example.com", "pw")
    OAuthApplication.objects.create(
        name="Helpdesk", client_id=app_sandbox.client_id, client_secret=app_sandbox.client_secret
    )
    admin_login(browser_page, live_server.url, "ada", "pw")
    return browser_page


def test_setup_uri_from_flowdock_connects_the_flow(signed_in_page, live_server, app_sandbox):
    page = signed_in_page

    flow = app_sandbox.credentials["flow"]
    page.goto(f"{app_sandbox.url}/app/applications/{app_sandbox.credentials['application']['id']}")
    page.select_option("select[name=flow]", value=flow["id"])
    page.click("text=Generate setup link")
    screenshot(page, "setup-generator")
    page.click("a.setup-link")

    page.wait_for_url(f"{app_sandbox.url}/oauth/authorize?**")
    page.click("button[value=allow]")
    page.wait_for_url(f"{live_server.url}/flowdock/setup/confirm/")
    assert "Connect Acme / Main" in page.inner_text("h1")
    page.fill("#id_name", "Helpdesk tickets")
    screenshot(page, "setup-confirm")
    page.click("button[type=submit]")

    page.wait_for_url(f"{live_server.url}/flowdock/setup/done/")
    assert "“Helpdesk tickets” now posts to the flow Main." in page.inner_text(".notice")
    screenshot(page, "setup-done")

    source = Source.objects.get()
    assert (source.flow_id, source.flow_path) == (flow["id"], "acme/main")
    Ticket.objects.create(subject="Polish the flux capacitor")
    wait_for_delivery()
    [message] = app_sandbox.messages(source_id=int(source.flowdock_id))
    assert message["thread"]["title"] == "Polish the flux capacitor"

    page.goto(f"{app_sandbox.url}/app/acme/main/sources")
    link = page.locator(f"article.source[data-source-id='{source.flowdock_id}'] a.configure-link")
    assert link.get_attribute("href") == (
        f"{live_server.url}/flowdock/configure/"
        f"?integration_id={source.flowdock_id}&flow={source.flow_id}"
    )


def test_denied_consent_in_the_browser_ends_on_our_error_page(
    signed_in_page, live_server, app_sandbox
):
    page = signed_in_page

    page.goto(f"{live_server.url}/flowdock/setup/?flow={app_sandbox.credentials['flow']['id']}")
    page.click("button[value=deny]")

    page.wait_for_url(f"{live_server.url}/flowdock/oauth/callback/?**")
    assert "Access was denied in Flowdock" in page.inner_text(".error-message")
    screenshot(page, "error-denied")
    assert not Source.objects.exists()
