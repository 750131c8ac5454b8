import os
import time
from pathlib import Path

import pytest
from django.core.cache import cache
from django.db import connections

from django_flowdock.delivery import lines
from django_flowdock.delivery.fanout import fan_out
from django_flowdock.models import Message, OAuthApplication, Source
from tests.local_api import RecordingServer
from tests.testapp.models import Ticket


@pytest.fixture(scope="session", autouse=True)
def flowdock_test_delivery():
    """Replaces the test kit's switch to locmem: this suite delivers for real, to the
    sandbox or a local server over HTTP; tests that read the outbox ask for
    ``flowdock_outbox``. (Test modules written to a temporary directory, like a user's,
    get the switch.)"""
    yield


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Each test counts its own action requests (the throttle keeps them in the cache)."""
    cache.clear()


@pytest.fixture(autouse=True)
def _lines_just_checked(monkeypatch):
    """The delivery loops check every line's head every few minutes; in this process
    only the tests that ask for it see the check, so that no query count or log depends
    on when the suite started. (A worker run as a process checks at its start.)"""
    monkeypatch.setitem(lines._checked, os.getpid(), time.monotonic())


@pytest.fixture
def sandbox(flowdock_sandbox, settings):
    """The session's sandbox, emptied, with FLOWDOCK["API_URL"] pointing at it."""
    flowdock_sandbox.reset()
    settings.FLOWDOCK = {**settings.FLOWDOCK, "API_URL": flowdock_sandbox.url}
    return flowdock_sandbox


@pytest.fixture
def source(db, sandbox):
    """A source connected by hand with the sandbox's flow token, as in Flowdock's
    integration quick start."""
    return Source.objects.create(name="Helpdesk", flow_token=sandbox.flow_token)


@pytest.fixture
def application(db, sandbox):
    """The sandbox's developer application, registered in our admin."""
    return OAuthApplication.objects.create(
        name="Helpdesk", client_id=sandbox.client_id, client_secret=sandbox.client_secret
    )


@pytest.fixture
def worker_delivery(settings):
    """Delivery only when the test drains or runs a worker, so each outcome can be read."""
    settings.FLOWDOCK = {**settings.FLOWDOCK, "DELIVERY": "worker"}


@pytest.fixture
def hand_source(db):
    """A source added by hand with a made-up flow token, for tests that read the locmem
    outbox rather than a Flowdock API."""
    return Source.objects.create(name="Helpdesk", flow_token="token-1")


@pytest.fixture
def locmem(flowdock_outbox):
    """The shipped ``flowdock_outbox`` fixture, used as our users would."""
    return flowdock_outbox


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser_page(monkeypatch):
    """A page in Debian's headless chromium, driven by Playwright's sync API."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (scripts/test installs it)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the ORM calls the test
    # makes between browser steps are still plain synchronous code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.set_default_timeout(15_000)
        yield page
        browser.close()
        # ORM calls made while Playwright's loop runs get connections of their own
        # context; close them while it still runs, or PostgreSQL cannot drop the test
        # database.
        connections.close_all()


@pytest.fixture
def local_api(settings):
    """A scripted local API (tests/local_api.py) with short timeouts, worker delivery."""
    server = RecordingServer()
    settings.FLOWDOCK = {
        **settings.FLOWDOCK,
        "API_URL": server.url,
        "DELIVERY": "worker",
        "TIMEOUT": (0.5, 0.3),
        "CLAIM_TIMEOUT": 5,
    }
    yield server
    server.stop()


@pytest.fixture
def queued(db, local_api):
    """One pending activity for the local API's source."""
    Source.objects.create(name="Local", flow_token="local-token")
    Ticket.objects.create(subject="Printer on fire")
    fan_out()
    return Message.objects.get()
