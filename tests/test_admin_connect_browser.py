"""In chromium: an admin connects a flow from the admin, a ticket then appears in the
flow, and the sandbox's "configure" link opens our configuration page."""

from __future__ import annotations

import pytest

from django_flowdock.models import OAuthApplication, Source
from tests.flowdock_connect import admin_login, screenshot
from tests.testapp.models import Ticket

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_admin_connects_a_flow_and_configures_it_from_flowdock(
    browser_page, live_server, sandbox, settings, django_user_model
):
    page = browser_page
    settings.FLOWDOCK = {**settings.FLOWDOCK, "SITE_URL": live_server.url}
    django_user_model.objects.create_superuser("ada", "ada@example.com", "pw")
    application = OAuthApplication.objects.create(
        name="Helpdesk", client_id=sandbox.client_id, client_secret=sandbox.client_secret
    )
    admin_login(page, live_server.url, "ada", "pw")

    page.goto(f"{live_server.url}/admin/django_flowdock/oauthapplication/{application.pk}/change/")
    assert f"{live_server.url}/flowdock/oauth/callback/" in page.inner_text(".flowdock-uris")
    screenshot(page, "admin-application")
    page.click("a.connect-flow")

    page.wait_for_url(f"{sandbox.url}/oauth/authorize?**")
    assert "Add integrations (sources) to your flows" in page.inner_text(".scopes")
    screenshot(page, "consent")
    page.click("button[value=allow]")

    page.wait_for_url("**/connect/flow/")
    page.select_option("#id_flow", label="Acme / Main")
    page.fill("#id_name", "Helpdesk tickets")
    screenshot(page, "admin-pick-flow")
    page.click("#connect-flow-form input[type=submit]")
    page.wait_for_url("**/admin/django_flowdock/source/*/change/")
    assert "Connected “Helpdesk tickets” to the flow Main." in page.inner_text(".messagelist")
    screenshot(page, "admin-connected")

    source = Source.objects.get(name="Helpdesk tickets")
    Ticket.objects.create(subject="Polish the flux capacitor", description="It flickers.")
    [thread] = [t for t in sandbox.threads() if t["source_id"] == int(source.flowdock_id)]
    assert thread["title"] == "Polish the flux capacitor"
    page.goto(f"{sandbox.url}/app/acme/main")
    assert "Polish the flux capacitor" in page.content()
    screenshot(page, "ticket-in-flow")

    page.goto(f"{sandbox.url}/app/acme/main/sources")
    card = page.locator(f"article.source[data-source-id='{source.flowdock_id}']")
    with page.context.expect_page() as opened:
        card.locator("a.configure-link").click()
    configure = opened.value
    configure.wait_for_load_state()
    assert configure.url.startswith(f"{live_server.url}/flowdock/configure/?integration_id=")
    assert "Configure “Helpdesk tickets” in Main" in configure.inner_text("h1")
    configure.check("input[name=events][value=created]")
    configure.check("input[name=events][value=commented]")
    screenshot(configure, "configure")
    configure.click("button[type=submit]")
    configure.wait_for_selector(".notice")

    source.refresh_from_db()
    assert source.settings == {"events": ["created", "commented"]}
