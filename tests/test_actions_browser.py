"""Actions end to end in chromium: in the sandbox inbox, "Assign to me" first leads to the sign-in
link; after signing in and linking, pressing it again assigns the ticket, and the thread
shows the new activity by that user and the new state."""

import pytest
from django.contrib.auth.models import Permission, User

from django_flowdock.models import FlowdockUser, OAuthApplication, Source
from django_flowdock.testing import wait_for_delivery
from tests.screenshots import screenshot_path
from tests.testapp.models import Ticket

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def site(live_server, sandbox, settings):
    """The Django test project served live, connected to the sandbox's flow with the
    sandbox application's secret, delivering right after each commit."""
    settings.FLOWDOCK = {
        **settings.FLOWDOCK,
        "SITE_URL": live_server.url,
        "API_URL": sandbox.url,
        "DELIVERY": "immediate",
    }
    settings.LOGIN_URL = "/admin/login/"
    application = OAuthApplication.objects.create(
        name="My Integration", client_id=sandbox.client_id, client_secret=sandbox.client_secret
    )
    Source.objects.create(name="Helpdesk", flow_token=sandbox.flow_token, application=application)
    user = User.objects.create_user(
        "marty", "marty@example.com", "pw-1985", first_name="Marty", last_name="McFly"
    )
    user.is_staff = True  # the admin's login page is the test project's sign-in page
    user.save()
    user.user_permissions.add(
        Permission.objects.get(codename="change_ticket", content_type__app_label="testapp")
    )
    return user


def test_assign_to_me_signs_in_links_and_then_assigns(site, sandbox, browser_page):
    page = browser_page
    from playwright.sync_api import expect

    ticket = Ticket.objects.create(subject="Polish the flux capacitor")
    wait_for_delivery()
    page.goto(sandbox.credentials["flow"]["web_url"])
    thread = page.locator(f'article.thread[data-external-thread-id="testapp.ticket:{ticket.pk}"]')
    assign = thread.locator('button.update-action[data-action-name="Assign to me"]')

    # First press: the Flowdock user is unknown to the site, so a sign-in link appears.
    assign.click()
    sign_in = thread.locator("a.sign-in-link")
    expect(sign_in).to_be_visible()
    assert sign_in.get_attribute("href").startswith(f"{site_url()}/flowdock/identity/claim/")
    assert Ticket.objects.get(pk=ticket.pk).assignee is None

    # The link opens the site: sign in, then confirm the link.
    with page.context.expect_page() as opened:
        sign_in.click()
    tab = opened.value
    tab.locator("#id_username").fill("marty")
    tab.locator("#id_password").fill("pw-1985")
    tab.locator("input[type=submit]").click()
    tab.locator("#flowdock-claim-confirm").click()
    expect(tab.locator("#flowdock-claim")).to_have_attribute("data-state", "linked")
    assert FlowdockUser.objects.get().user == site
    tab.close()

    # Second press: the action runs as Marty, and the thread shows it.
    page.reload()
    assign.click()
    expect(thread.locator(".action-result")).to_contain_text("Assign to me: done.")
    expect(thread.locator('tr.field[data-label="Assignee"] td')).to_have_text("marty")
    latest = thread.locator("li.message").last
    expect(latest.locator(".author")).to_have_text("Marty McFly")
    expect(latest.locator(".message-title")).to_have_text("updated ticket")
    expect(latest.locator(".message-body")).to_contain_text("Assignee")
    # The new state no longer offers "Assign to me" to the one who took the ticket.
    expect(assign).to_have_count(0)
    expect(thread.locator('button[data-action-name="Mark as solved"]')).to_be_visible()
    assert Ticket.objects.get(pk=ticket.pk).assignee == site
    thread.screenshot(path=str(screenshot_path("actions-thread.png")))


def site_url():
    from django.conf import settings

    return settings.FLOWDOCK["SITE_URL"]
