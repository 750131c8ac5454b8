"""The test kit as a project meets it: under pytest and under ``manage.py test``, each test
starts with locmem delivery and an empty ``django_flowdock.outbox`` without asking;
``fail_next()`` makes the locmem transport fail as Flowdock would, and the real engine
retries, holds, fails or cancels as it does over HTTP."""

import os
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from django_flowdock.api.client import FlowdockClient
from django_flowdock.delivery.locmem import LocmemTransport
from django_flowdock.exceptions import FlowdockError
from django_flowdock.models import Message, Source
from django_flowdock.testing import fail_next, reset, retry_now
from tests.testapp.models import Ticket

ROOT = Path(__file__).resolve().parent.parent


# fail_next() in this suite (which delivers for real unless a test asks for locmem)


@pytest.fixture
def outbox(flowdock_outbox):
    Source.objects.create(name="Helpdesk", flow_token="token-1")
    return flowdock_outbox


pytestmark = pytest.mark.django_db(transaction=True)


def test_a_planned_429_holds_the_source_and_is_retried_after_its_wait(outbox):
    fail_next(429, retry_after=30)

    Ticket.objects.create(subject="Polish")

    message, source = Message.objects.get(), Source.objects.get()
    assert (message.state, message.status_code, outbox) == ("pending", 429, [])
    assert source.circuit_state() != "closed"
    assert source.held_until >= timezone.now() + timedelta(seconds=25)
    Ticket.objects.create(subject="Behind it")  # waits behind the hold
    assert outbox == []

    result = retry_now()

    assert (result.sent, result.retrying) == (2, 0)
    assert sorted(m["thread"]["title"] for m in outbox) == ["Behind it", "Polish"]
    assert {m.state for m in Message.objects.all()} == {"sent"}
    assert Source.objects.get().circuit_state() == "closed"


def test_planned_5xx_answers_are_retried_until_flowdock_answers(outbox):
    fail_next(503, times=2)
    Ticket.objects.create(subject="Polish")
    assert retry_now().retrying == 1  # the second 503, on the source's probe
    assert retry_now().sent == 1
    assert Message.objects.get().attempts == 3
    assert len(outbox) == 1


def test_a_planned_refusal_fails_the_message_at_once(outbox):
    fail_next(400)
    Ticket.objects.create(subject="Polish")
    message = Message.objects.get()
    assert (message.state, message.status_code) == ("failed", 400)
    assert Source.objects.get().circuit_state() == "closed"
    assert outbox == []


def test_a_planned_410_cancels_the_source(outbox):
    fail_next(410)
    Ticket.objects.create(subject="Polish")
    assert Message.objects.get().state == "cancelled"
    assert not Source.objects.get().active


def test_reset_forgets_planned_failures(outbox):
    fail_next(500)
    reset()
    Ticket.objects.create(subject="Polish")
    assert len(outbox) == 1


def test_only_error_statuses_can_be_planned():
    with pytest.raises(ValueError, match="not an HTTP error status"):
        fail_next(204)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 408, 410, 422, 429, 500, 502, 503])
def test_a_planned_answer_raises_what_the_http_client_raises_for_it(status, local_api):
    local_api.answer(status, headers={"Retry-After": "7"})
    with pytest.raises(FlowdockError) as over_http:
        FlowdockClient(local_api.url).post_message({"flow_token": "t", "event": "activity"})
    fail_next(status, retry_after=7)
    with pytest.raises(FlowdockError) as in_memory:
        LocmemTransport().post_message({"flow_token": "t", "event": "activity"})

    assert type(in_memory.value) is type(over_http.value)
    assert in_memory.value.status_code == over_http.value.status_code == status
    assert getattr(in_memory.value, "retry_after", None) == getattr(
        over_http.value, "retry_after", None
    )
    assert in_memory.value.response.status_code == status
    assert in_memory.value.payload == {"event": "activity"}  # never the flow token


# A user's project: its own test modules, run as its developers would


USER_TESTS = """
import pytest
from django.test import TestCase, TransactionTestCase

import django_flowdock
from django_flowdock.models import Message, Source
from django_flowdock.testing import fail_next, retry_now
from tests.testapp.models import Ticket


def titles():
    return [message["thread"]["title"] for message in django_flowdock.outbox]


class A_FirstTests(TransactionTestCase):
    def test_a_saved_ticket_is_in_the_outbox(self):
        Source.objects.create(name="Helpdesk", flow_token="t")
        Ticket.objects.create(subject="Polish")
        self.assertEqual(titles(), ["Polish"])
        fail_next(500)  # left unused: the next test must not get it


class B_NextTests(TransactionTestCase):
    def test_the_next_test_starts_with_an_empty_outbox_and_no_planned_failure(self):
        self.assertEqual(django_flowdock.outbox, [])
        Source.objects.create(name="Helpdesk", flow_token="t")
        Ticket.objects.create(subject="Sent at once")
        self.assertEqual(titles(), ["Sent at once"])

    def test_a_forced_429_is_retried(self):
        Source.objects.create(name="Helpdesk", flow_token="t")
        fail_next(429, retry_after=30)
        Ticket.objects.create(subject="Rate limited")
        self.assertEqual((Message.objects.get().status_code, titles()), (429, []))
        retry_now()
        self.assertEqual((Message.objects.get().state, titles()), ("sent", ["Rate limited"]))


class C_TestCaseTests(TestCase):
    def test_a_test_case_delivers_on_its_captured_commits(self):
        self.assertEqual(django_flowdock.outbox, [])
        Source.objects.create(name="Helpdesk", flow_token="t")
        with self.captureOnCommitCallbacks(execute=True):
            Ticket.objects.create(subject="In a TestCase")
        self.assertEqual(titles(), ["In a TestCase"])
"""

PYTEST_ONLY = """

@pytest.mark.django_db(transaction=True)
def test_a_pytest_function_starts_clean_too(settings):
    assert django_flowdock.outbox == []
    # A test's own FLOWDOCK override keeps the test delivery under it.
    settings.FLOWDOCK = {**settings.FLOWDOCK, "DEFAULT_AUTHOR": {"name": "Robot"}}
    Source.objects.create(name="Helpdesk", flow_token="t")
    Ticket.objects.create(subject="Polish")
    assert django_flowdock.outbox[0]["author"] == {"name": "Robot"}
"""

OPTED_OUT = """
from django_flowdock.conf import flowdock_settings


def test_delivery_is_left_as_configured():
    assert flowdock_settings.DELIVERY == "immediate"
"""

OPTED_OUT_SETTINGS = """
from tests.settings import *  # noqa: F403
from tests.settings import FLOWDOCK as _FLOWDOCK

FLOWDOCK = {**_FLOWDOCK, "TEST_DELIVERY": None}
"""


def user_env(project: Path) -> dict[str, str]:
    """A developer's shell: the suite's settings (the child picks its own test database,
    as FLOWDOCK_TEST_DB_SUFFIX names this run's), the project and this checkout on the
    path, none of this run's pytest state."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PYTEST_")
        and key not in ("FLOWDOCK_TEST_DB_SUFFIX", "DJANGO_SETTINGS_MODULE")
    }
    env["PYTHONPATH"] = os.pathsep.join([str(project), str(ROOT)])
    return env


def run(project: Path, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *command],
        cwd=project,
        env=user_env(project),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def user_project(tmp_path: Path, tests: str, settings: str = "tests.settings") -> Path:
    package = tmp_path / "usertests"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "test_tickets.py").write_text(textwrap.dedent(tests))
    (tmp_path / "pytest.ini").write_text(
        f"[pytest]\nDJANGO_SETTINGS_MODULE = {settings}\nfilterwarnings = error\n"
    )
    return tmp_path


def test_under_pytest_each_test_starts_with_locmem_and_an_empty_outbox(tmp_path):
    project = user_project(tmp_path, USER_TESTS + PYTEST_ONLY)

    result = run(project, "-m", "pytest", "-p", "no:cacheprovider", "-q", "usertests")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 passed" in result.stdout


def test_under_pytest_test_delivery_none_keeps_the_configured_delivery(tmp_path):
    project = user_project(tmp_path, OPTED_OUT, settings="user_settings")
    (project / "user_settings.py").write_text(OPTED_OUT_SETTINGS)

    result = run(project, "-m", "pytest", "-p", "no:cacheprovider", "-q", "usertests")

    assert result.returncode == 0, result.stdout + result.stderr


SPAWN_MANAGE = """
import multiprocessing
import sys

from django.core.management import execute_from_command_line

if __name__ == "__main__":
    multiprocessing.set_start_method("spawn")  # macOS's default
    execute_from_command_line(sys.argv)
"""

# Django's parallel runner can spawn workers only for an in-memory SQLite database.
IN_MEMORY_SETTINGS = """
from tests.settings import *  # noqa: F403

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
"""


@pytest.mark.parametrize(
    ("parallel", "start_method", "named"),
    [("1", "fork", False), ("1", "fork", True), ("2", "fork", True), ("2", "spawn", True)],
)
def test_under_manage_py_test_each_test_starts_with_locmem_and_an_empty_outbox(
    tmp_path, parallel, start_method, named
):
    project = user_project(tmp_path, USER_TESTS)
    if start_method == "spawn":
        (project / "manage.py").write_text(SPAWN_MANAGE)
        (project / "in_memory.py").write_text(IN_MEMORY_SETTINGS)
        command = ["manage.py", "test", "usertests", "--settings", "in_memory"]
    else:
        command = ["-m", "django", "test", "usertests", "--settings", "tests.settings"]
    # Without naming it, Django's default runner is replaced by the kit's.
    runner = ["--testrunner", "django_flowdock.testing.runner.FlowdockTestRunner"] if named else []

    result = run(project, *command, *runner, "--parallel", parallel, "-v", "2")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Ran 4 tests" in result.stderr
    assert "\nOK\n" in result.stderr


def test_the_runner_waits_for_delivery_after_the_tests_cleanups_before_its_teardown(
    monkeypatch,
):
    from django.test import SimpleTestCase

    from django_flowdock.testing import runner

    steps = []
    monkeypatch.setattr(runner, "settle_background_delivery", lambda: steps.append("settle"))

    class Example(SimpleTestCase):
        def test_it(self):
            self.addCleanup(steps.append, "own cleanup")
            steps.append("test")

        def _post_teardown(self):
            steps.append("database rolled back or flushed")
            super()._post_teardown()

    resultclass = runner.FlowdockTestRunner(verbosity=0).get_resultclass()
    with open(os.devnull, "w") as stream:
        result = resultclass(stream=stream, descriptions=False, verbosity=0)
        Example("test_it")(result)

    assert result.wasSuccessful(), result.errors + result.failures
    assert steps == ["test", "own cleanup", "settle", "database rolled back or flushed"]


def test_the_runner_keeps_djangos_result_classes_for_debug_sql_and_pdb():
    from django.test.runner import DebugSQLTextTestResult, PDBDebugResult

    from django_flowdock.testing.runner import FlowdockTestResultMixin, FlowdockTestRunner

    for options, base in (
        ({"debug_sql": True}, DebugSQLTextTestResult),
        ({"pdb": True}, PDBDebugResult),
    ):
        resultclass = FlowdockTestRunner(verbosity=0, **options).get_resultclass()
        assert issubclass(resultclass, FlowdockTestResultMixin)
        assert issubclass(resultclass, base)
