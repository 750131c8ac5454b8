"""The test kit under pytest, registered through the ``pytest11`` entry point: nothing to
enable. Every test starts with delivery switched to ``FLOWDOCK["TEST_DELIVERY"]``
(locmem), an empty ``django_flowdock.outbox`` and no planned failures; background
delivery is waited for before each test's database is torn down.

Nothing here imports Django models: pytest loads plugins before settings are configured.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from django_flowdock.sandbox.testing import SandboxServer


def _flowdock_installed() -> bool:
    from django.apps import apps

    return apps.ready and apps.is_installed("django_flowdock")


@pytest.fixture(scope="session", autouse=True)
def flowdock_test_delivery() -> Iterator[None]:
    """``FLOWDOCK["TEST_DELIVERY"]`` for the whole session, under every test's own
    settings overrides (``settings`` fixture, ``override_settings``), which win. A
    ``conftest.py`` may replace it with a fixture of this name that does nothing: the
    tests it covers then deliver as ``FLOWDOCK["DELIVERY"]`` says."""
    if not _flowdock_installed():
        yield
        return
    from django_flowdock.testing import disable_test_delivery, enable_test_delivery

    enable_test_delivery()
    try:
        yield
    finally:
        disable_test_delivery()


@pytest.fixture(autouse=True)
def _flowdock_reset() -> None:
    """An empty outbox and no planned failures at the start of every test."""
    from django_flowdock.testing import reset

    reset()


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
    are torn down, let background delivery finish what the test committed, so it never
    writes into a database being flushed or the next test's."""
    try:
        return (yield)
    finally:
        from django_flowdock.testing import settle_background_delivery

        settle_background_delivery()


@pytest.fixture
def flowdock_outbox(settings) -> Iterator[list]:
    """Switch delivery to locmem and yield ``django_flowdock.outbox``, emptied around
    the test: for a test that needs locmem whatever ``FLOWDOCK["TEST_DELIVERY"]`` says.
    Messages arrive when the transaction commits: use it with ``transactional_db`` or
    ``django_capture_on_commit_callbacks(execute=True)``."""
    import django_flowdock
    from django_flowdock.testing import reset

    settings.FLOWDOCK = {**(getattr(settings, "FLOWDOCK", None) or {}), "DELIVERY": "locmem"}
    reset()
    yield django_flowdock.outbox
    reset()
