"""Fixtures for testing Flowdock integrations, registered through the ``pytest11`` entry point.

Nothing here imports Django models: pytest loads plugins before settings are configured.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from django_flowdock.sandbox.testing import SandboxServer


@pytest.fixture(scope="session")
def flowdock_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    """A Flowdock sandbox in its own process for the test session.

    Point the code under test at ``flowdock_sandbox.url`` and post with
    ``flowdock_sandbox.flow_token``; call ``flowdock_sandbox.reset()`` where a test
    needs an empty inbox.
    """
    from django_flowdock.sandbox.testing import SandboxServer
    from django_flowdock.testing import wait_for_delivery

    db = tmp_path_factory.mktemp("flowdock_sandbox") / "sandbox.sqlite3"
    with SandboxServer.start(db=db) as server:
        # What the inbox shows is read after the background delivery settled.
        server.before_read = wait_for_delivery
        yield server


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Right after each test's body, before its fixtures (the test database among them)
    are torn down, let the default backend's background thread finish what the test
    committed, so it never writes into a database being flushed or the next test's."""
    try:
        return (yield)
    finally:
        from django.apps import apps

        if apps.ready and "django_flowdock" in apps.app_configs:
            from django_flowdock.delivery import loaded_backends

            for backend in loaded_backends():
                wait = getattr(backend, "wait_idle", None)
                if wait is not None:
                    wait(30.0)


@pytest.fixture
def flowdock_outbox(settings) -> Iterator[list]:
    """Switch delivery to locmem and yield ``django_flowdock.outbox``, emptied around
    the test. Messages arrive when the transaction commits: use it with
    ``transactional_db`` or ``django_capture_on_commit_callbacks(execute=True)``."""
    import django_flowdock

    settings.FLOWDOCK = {**(getattr(settings, "FLOWDOCK", None) or {}), "DELIVERY": "locmem"}
    django_flowdock.outbox.clear()
    yield django_flowdock.outbox
    django_flowdock.outbox.clear()
