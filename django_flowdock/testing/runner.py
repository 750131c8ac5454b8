"""The test kit under ``manage.py test``: Django's runner with what the pytest plugin does.

``manage.py test`` uses it by itself while ``TEST_RUNNER`` is Django's default (as
Django swaps the e-mail backend by itself); it amounts to::

    TEST_RUNNER = "django_flowdock.testing.runner.FlowdockTestRunner"

With a runner of your own, ``class Runner(FlowdockTestRunnerMixin, YourRunner)``.
Every test then starts with delivery switched to ``FLOWDOCK["TEST_DELIVERY"]``
(locmem), an empty ``django_flowdock.outbox`` and no planned failures, and background
delivery is waited for after each test and before the test databases are destroyed;
with ``--parallel`` too, in every worker.
"""

from __future__ import annotations

import sys
import unittest
from typing import Any, cast

from django.conf import global_settings, settings
from django.test.runner import DiscoverRunner, ParallelTestSuite, RemoteTestResult, RemoteTestRunner

from django_flowdock.testing import (
    disable_test_delivery,
    enable_test_delivery,
    reset,
    settle_background_delivery,
)


class FlowdockTestResultMixin:
    """Before each test: a clean outbox; after it (its own cleanups first, its database
    rolled back or flushed after): background delivery waited for."""

    def startTest(self, test: unittest.TestCase) -> None:
        reset()
        add_cleanup = getattr(test, "addCleanup", None)
        if add_cleanup is not None:
            # Registered first, so it runs last of the test's cleanups.
            add_cleanup(settle_background_delivery)
        super().startTest(test)  # type: ignore[misc]


class FlowdockRemoteTestResult(FlowdockTestResultMixin, RemoteTestResult):
    """What a ``--parallel`` worker records results with."""


class FlowdockRemoteTestRunner(RemoteTestRunner):
    resultclass = FlowdockRemoteTestResult


def _enable_in_spawned_worker(*args: Any) -> None:
    # Forked workers inherit the switch from the runner; spawned ones start afresh.
    enable_test_delivery()


class FlowdockParallelTestSuite(ParallelTestSuite):
    runner_class = FlowdockRemoteTestRunner
    process_setup = _enable_in_spawned_worker


class FlowdockTestRunnerMixin:
    """For a ``DiscoverRunner`` subclass: the test kit, in every test."""

    parallel_test_suite: type[ParallelTestSuite] = FlowdockParallelTestSuite
    test_runner: type[unittest.TextTestRunner]

    def setup_test_environment(self, **kwargs: Any) -> None:
        super().setup_test_environment(**kwargs)  # type: ignore[misc]
        enable_test_delivery()

    def teardown_test_environment(self, **kwargs: Any) -> None:
        disable_test_delivery()
        super().teardown_test_environment(**kwargs)  # type: ignore[misc]

    def teardown_databases(self, old_config: Any, **kwargs: Any) -> None:
        settle_background_delivery()
        super().teardown_databases(old_config, **kwargs)  # type: ignore[misc]

    def get_resultclass(self) -> type[unittest.TextTestResult] | None:
        # Django's choice (--debug-sql, --pdb) or the test runner's own, with the kit.
        chosen = super().get_resultclass() or self.test_runner.resultclass  # type: ignore[misc]
        base = cast("type[unittest.TextTestResult]", chosen)
        return type(base.__name__, (FlowdockTestResultMixin, base), {})


def adopt_default_test_runner() -> None:
    """``manage.py test`` with Django's default runner and no ``--testrunner`` gets this
    module's runner: the test kit without opting in. Called from ``AppConfig.ready()``,
    which runs before the command reads ``TEST_RUNNER``."""
    argv = sys.argv[1:]
    if argv[:1] != ["test"] or any(arg.startswith("--testrunner") for arg in argv):
        return
    if settings.TEST_RUNNER == global_settings.TEST_RUNNER:
        settings.TEST_RUNNER = f"{__name__}.FlowdockTestRunner"


class FlowdockTestRunner(FlowdockTestRunnerMixin, DiscoverRunner):
    """``DiscoverRunner`` with the test kit."""
