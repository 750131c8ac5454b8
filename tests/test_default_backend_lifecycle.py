"""The default backend resumes and finishes by itself, in real processes: a web server
delivers what earlier processes left without a request or a save; a shell or script
delivers before it exits, or says what it leaves; a forked child delivers; schema
commands never deliver.

The processes run on the test database (``tests/process_settings.py``, FLOWDOCK adjusted
per test) and post to the session's sandbox.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
from django.conf import settings
from django.test import override_settings

from django_flowdock.checks import check_uwsgi_threads
from django_flowdock.delivery import immediate
from django_flowdock.models import Change, Message, Source
from tests.local_api import free_port
from tests.test_worker_processes import database_url, spawn_worker
from tests.testapp.models import Ticket
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.django_db(transaction=True)

#: Short timeouts and leases, so a killed process's claims run out within the test.
QUICK = {"TIMEOUT": [0.5, 1.0], "CLAIM_TIMEOUT": 3, "BACKOFF_BASE": 0.3, "BACKOFF_MAX": 0.5}


def process_env(flowdock: dict) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.process_settings",
        "DATABASE_URL": database_url(),
        "FLOWDOCK_OVERRIDES": json.dumps(flowdock),
        "PYTHONPATH": str(ROOT),
    }
    env.pop(immediate.DJANGO_AUTORELOAD_ENV, None)
    return env


def django_admin(flowdock: dict, *args: str, stdin: str | None = None, timeout: float = 60):
    """``django-admin ARGS`` (as ``python -m django``) on the test database."""
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "django", *args],
        cwd=ROOT,
        env=process_env(flowdock),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return result, time.monotonic() - started


def leave_tickets(*subjects: str) -> None:
    """Changes a process left without delivering them (the worker backend does nothing
    on commit)."""
    with override_settings(FLOWDOCK={**settings.FLOWDOCK, "DELIVERY": "worker"}):
        for subject in subjects:
            Ticket.objects.create(subject=subject)


def sent_subjects(sandbox) -> list[str]:
    return sorted(m["thread"]["title"] for m in sandbox.messages())


def refused_url() -> tuple[socket.socket, str]:
    """A port on 127.0.0.1 bound but not listening: every connection is refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}"


# --- web servers -----------------------------------------------------------------------


def start_server(kind: str, flowdock: dict, log: Path) -> subprocess.Popen:
    port = free_port()
    if kind == "gunicorn":
        # Preloaded, so the workers are forked from a master that ran AppConfig.ready().
        argv = ["-m", "gunicorn", "--preload", "--workers", "2", "--bind", f"127.0.0.1:{port}"]
        argv.append("tests.process_wsgi:application")
    else:
        # With the autoreloader: only its serving child may deliver.
        argv = ["-m", "django", "runserver", f"127.0.0.1:{port}"]
    with log.open("ab") as output:
        # Its own session, so the whole server (master and workers, reloader and child)
        # can be SIGKILLed at once.
        return subprocess.Popen(
            [sys.executable, *argv],
            cwd=ROOT,
            env=process_env(flowdock),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def kill_server(server: subprocess.Popen, log: Path) -> None:
    os.killpg(server.pid, signal.SIGKILL)
    server.wait(timeout=10)
    # Captured, so shown if the test fails: what the server said about its rounds.
    print(log.read_text(errors="replace"))


@pytest.mark.parametrize("kind", ["gunicorn", "runserver"])
def test_web_server_killed_and_restarted_delivers_what_waits_without_a_request_or_save(
    kind, sandbox, tmp_path
):
    Source.objects.create(name="Helpdesk", flow_token=sandbox.flow_token)
    leave_tickets(*(f"Before start {n}" for n in range(5)))
    # Flowdock answers 503: the first server takes the messages and retries them.
    sandbox.inject_fault(status=503, ratio=1.0)
    log = tmp_path / "server.log"
    server = start_server(kind, {**QUICK, "API_URL": sandbox.url}, log)
    try:
        wait_for(
            lambda: (
                Message.objects.count() == 5 and Message.objects.filter(attempts__gte=1).exists()
            ),
            what="the first server's attempts, with no request made",
        )
    finally:
        kill_server(server, log)
    leave_tickets(*(f"While down {n}" for n in range(3)))
    assert Message.objects.pending().count() == 5
    assert Change.objects.filter(fanned_out=False).count() == 3
    sandbox.clear_faults()

    server = start_server(kind, {**QUICK, "API_URL": sandbox.url, "POLL_INTERVAL": 0.5}, log)
    try:
        wait_for(lambda: len(sandbox.messages()) == 8, what="delivery by the restarted server")
        # Left by another process while the server idles: found by its poll.
        leave_tickets("Later")
        wait_for(lambda: len(sandbox.messages()) == 9, what="the poll to find the later change")
    finally:
        kill_server(server, log)
    assert set(Message.objects.values_list("state", flat=True)) == {Message.State.SENT}
    assert "GET /" not in log.read_text() and "POST /" not in log.read_text()


# --- shells and scripts ----------------------------------------------------------------

SAVE = "from tests.testapp.models import Ticket; Ticket.objects.create(subject={!r})"


@pytest.mark.parametrize("how", ["shell -c", "shell < script", "script"])
def test_shell_or_script_that_saves_delivers_before_it_exits(how, sandbox, source):
    flowdock = {**QUICK, "API_URL": sandbox.url}
    subject = f"Saved by {how.replace('<', 'reading a')}"
    if how == "shell -c":
        result, _ = django_admin(flowdock, "shell", "-c", SAVE.format(subject))
    elif how == "shell < script":
        result, _ = django_admin(flowdock, "shell", stdin=SAVE.format(subject) + "\n")
    else:
        script = f"import django\ndjango.setup()\n{SAVE.format(subject)}\n"
        result = subprocess.run(
            [sys.executable, "-c", script],
            cwd=ROOT,
            env=process_env(flowdock),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 0, result.stderr
    assert "not delivered" not in result.stderr
    assert sent_subjects(sandbox) == [subject]
    assert Message.objects.get().state == Message.State.SENT


def test_shell_with_flowdock_down_exits_within_the_bound_and_says_what_is_left(sandbox, source):
    refused, url = refused_url()
    try:
        # A bound several probes long, so a busy machine still fits two attempts in it.
        flowdock = {**QUICK, "API_URL": url, "EXIT_TIMEOUT": 4}
        result, took = django_admin(flowdock, "shell", "-c", SAVE.format("Printer on fire"))
    finally:
        refused.close()
    assert result.returncode == 0, result.stderr
    assert 3.5 <= took < 20, took
    assert "1 message not delivered to Flowdock before exit" in result.stderr
    assert "manage.py flowdock_worker" in result.stderr
    message = Message.objects.get()
    assert message.state == Message.State.PENDING
    assert message.attempts >= 2  # retried within the bound

    # Nothing lost: the next delivering process sends it.
    worker = spawn_worker({**QUICK, "API_URL": sandbox.url}, "--once")
    _out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    assert sent_subjects(sandbox) == ["Printer on fire"]


@pytest.mark.parametrize("command", [["migrate"], ["check"]])
def test_schema_commands_never_deliver_even_when_told_to_at_start(command, sandbox, source):
    leave_tickets("Left behind")
    flowdock = {**QUICK, "API_URL": sandbox.url, "DELIVER_ON_START": True}
    result, _ = django_admin(flowdock, *command)
    assert result.returncode == 0, result.stderr
    assert Change.objects.filter(fanned_out=False).count() == 1
    assert not Message.objects.exists()
    assert sandbox.messages() == []


# --- forks -----------------------------------------------------------------------------

FORK_WHILE_LOCKED = """
import os, signal, sys, threading
import django
django.setup()
from django.db import connections
from django_flowdock.delivery import get_backend
from tests.testapp.models import Ticket

backend = get_backend()
Ticket.objects.create(subject="From the parent")
assert backend.wait_idle(20)
connections.close_all()
held, release = threading.Event(), threading.Event()

def hold_the_lock():
    # What the delivery thread does at the end of each round.
    with backend._lock:
        held.set()
        release.wait()

threading.Thread(target=hold_the_lock, daemon=True).start()
held.wait()
pid = os.fork()
if pid == 0:
    signal.alarm(20)  # a child blocked on the inherited lock dies, and the test fails
    Ticket.objects.create(subject="From the child")
    os._exit(0 if backend.wait_idle(15) else 3)
release.set()
sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""

FORK_AFTER_PRELOAD = """
import os, signal, sys, time
import django
django.setup()
from django.conf import settings
from django.db import connections
from django.test import override_settings
from django_flowdock.delivery import get_backend
from django_flowdock.models import Message
from tests.testapp.models import Ticket

assert get_backend().wait_idle(20)  # the start-up round found nothing
with override_settings(FLOWDOCK={**settings.FLOWDOCK, "DELIVERY": "worker"}):
    Ticket.objects.create(subject="Left for the child")
connections.close_all()
pid = os.fork()
if pid == 0:
    signal.alarm(20)
    while not Message.objects.filter(state="sent").exists():
        time.sleep(0.05)
    os._exit(0)
sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""


FORK_WHILE_DELIVERING = """
import os, sys, threading, time
import django
django.setup()
from django.urls import reverse
from django_flowdock.models import Message

# A preloading server forks its workers while its thread delivers the backlog left at
# start-up (importing the URLconf to render actions, holding database connections);
# two threads fork at once, as a threaded server's requests may.
def fork_children(children, deadline):
    for _ in range(15):
        pid = os.fork()
        if pid == 0:
            try:
                reverse("admin:index")
                Message.objects.count()
            except Exception as error:
                sys.stderr.write(f"child: {error!r}\\n")
                os._exit(1)
            os._exit(0)
        children.append(pid)
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)

children = []
deadline = time.monotonic() + 1.5
forkers = [threading.Thread(target=fork_children, args=(children, deadline)) for _ in "ab"]
for forker in forkers:
    forker.start()
for forker in forkers:
    forker.join()
failed = [pid for pid in children if os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])]
print(f"{len(failed)} of {len(children)} children failed")
while Message.objects.pending().exists() or not Message.objects.exists():
    time.sleep(0.05)
"""


def run_script(script: str, flowdock: dict) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=process_env(flowdock),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_child_forked_while_the_parent_holds_the_lock_delivers_what_it_saves(sandbox, source):
    result = run_script(FORK_WHILE_LOCKED, {**QUICK, "API_URL": sandbox.url})
    assert result.returncode == 0, result.stderr
    assert sent_subjects(sandbox) == ["From the child", "From the parent"]


def test_server_forked_after_preload_delivers_in_the_child_without_a_save(sandbox, source):
    # The parent serves (its thread started at ready), but idles for longer than the test.
    flowdock = {**QUICK, "API_URL": sandbox.url, "DELIVER_ON_START": True, "POLL_INTERVAL": 600}
    result = run_script(FORK_AFTER_PRELOAD, flowdock)
    assert result.returncode == 0, result.stderr
    assert sent_subjects(sandbox) == ["Left for the child"]


def test_server_forking_while_its_thread_delivers_hands_children_nothing_half_done(sandbox, source):
    # Each child would otherwise inherit the thread's database connections (and close
    # them: MySQL ends the parent's session) and a module it was importing, half done.
    leave_tickets(*(f"Waiting at start {n}" for n in range(40)))
    # A fork waits for the posts in flight for at most the TIMEOUT pair plus a second:
    # 4 s, time enough on a loaded machine; a dead child's claims run out as soon.
    timeouts = {"TIMEOUT": [1, 2], "CLAIM_TIMEOUT": 4}
    flowdock = {**QUICK, **timeouts, "API_URL": sandbox.url, "DELIVER_ON_START": True}
    result = run_script(FORK_WHILE_DELIVERING, flowdock)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("0 of "), result.stderr
    assert "still busy" not in result.stderr
    assert "Delivery round failed" not in result.stderr
    assert len(sandbox.messages()) == 40


# --- which processes deliver -----------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "main", "environ", "role"),
    [
        (["manage.py", "runserver"], None, {}, "never"),  # the autoreloader's parent
        (["manage.py", "runserver"], None, {"RUN_MAIN": "true"}, "server"),
        (["manage.py", "runserver", "--noreload"], None, {}, "server"),
        (["/venv/bin/gunicorn", "config.wsgi"], None, {}, "server"),
        (["/venv/lib/uvicorn/__main__.py", "config.asgi:app"], "uvicorn.__main__", {}, "server"),
        (["/venv/bin/daphne", "config.asgi:application"], None, {}, "server"),
        (["/venv/bin/hypercorn", "config.asgi:application"], None, {}, "server"),
        (["manage.py", "shell", "-c", "..."], None, {}, "script"),
        (["manage.py", "flowdock_resync"], None, {}, "script"),
        (["backfill.py"], None, {}, "script"),
        (["-c"], None, {}, "script"),
        (["manage.py", "migrate"], None, {}, "never"),
        (["manage.py", "check"], None, {}, "never"),
        (["manage.py", "collectstatic", "--noinput"], None, {}, "never"),
        (["manage.py", "test"], None, {}, "test"),
    ],
)
def test_process_role(argv, main, environ, role, monkeypatch):
    # Outside pytest as far as the detection can tell.
    monkeypatch.delitem(sys.modules, "pytest")
    module = types.ModuleType("__main__")
    module.__spec__ = None if main is None else types.SimpleNamespace(name=main)
    monkeypatch.setitem(sys.modules, "__main__", module)
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.delenv("RUN_MAIN", raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert immediate.process_role() == role


def test_deliver_on_start_overrides_the_detection_but_not_a_never_command(monkeypatch, settings):
    monkeypatch.delitem(sys.modules, "pytest")
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))
    monkeypatch.setattr(sys, "argv", ["/venv/bin/gunicorn"])
    settings.FLOWDOCK = {**settings.FLOWDOCK, "DELIVER_ON_START": False}
    assert immediate.process_role() == "script"
    monkeypatch.setattr(sys, "argv", ["serve.py"])
    settings.FLOWDOCK = {**settings.FLOWDOCK, "DELIVER_ON_START": True}
    assert immediate.process_role() == "server"
    monkeypatch.setattr(sys, "argv", ["manage.py", "migrate"])
    assert immediate.process_role() == "never"


def test_pytest_run_is_a_test_run():
    assert immediate.process_role() == "test"


# --- uWSGI -----------------------------------------------------------------------------


@pytest.fixture
def uwsgi(monkeypatch):
    """A stand-in for the module uWSGI provides to the applications it runs."""
    module = types.ModuleType("uwsgi")
    module.opt = {"master": True, "processes": b"4"}
    monkeypatch.setitem(sys.modules, "uwsgi", module)
    return module


def test_uwsgi_without_threads_is_e034(uwsgi):
    errors = check_uwsgi_threads()
    assert [e.id for e in errors] == ["django_flowdock.E034"]
    assert "enable-threads" in errors[0].hint
    uwsgi.opt["enable-threads"] = b"false"
    assert [e.id for e in check_uwsgi_threads()] == ["django_flowdock.E034"]


@pytest.mark.parametrize(
    "options", [{"enable-threads": True}, {"enable-threads": b"true"}, {"threads": b"4"}]
)
def test_uwsgi_with_threads_passes(uwsgi, options):
    uwsgi.opt.update(options)
    assert check_uwsgi_threads() == []


def test_uwsgi_check_ignores_other_backends_and_processes(uwsgi, settings):
    settings.FLOWDOCK = {**settings.FLOWDOCK, "DELIVERY": "worker"}
    assert check_uwsgi_threads() == []
    del sys.modules["uwsgi"]
    settings.FLOWDOCK = {**settings.FLOWDOCK, "DELIVERY": "immediate"}
    assert check_uwsgi_threads() == []
