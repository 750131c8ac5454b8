"""Action requests over real HTTP to two server processes of the test project.

Each process has its own local-memory cache, as the example project does: a used
FLOWDOCK-TOKEN must still be refused by the other process, and a token or body that
does not belong to the thread is refused by either.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from django_flowdock.delivery.fanout import fan_out
from django_flowdock.models import Change, UsedToken
from django_flowdock.testing import ActionRequest
from tests.actions_support import make_application, make_user, signed
from tests.local_api import free_port
from tests.test_worker_processes import database_url
from tests.testapp.models import Ticket

ROOT = Path(__file__).resolve().parent.parent
OTHER_SECRET = "application-b-secret-0123456789abcdef0123"

# runserver on the test database; worker delivery, so the servers post nothing.
BOOT = """
import sys
import django
django.setup()
from django.conf import settings
settings.FLOWDOCK["DELIVERY"] = "worker"
from django.core.management import call_command
call_command("runserver", sys.argv[1], use_reloader=False, use_threading=False)
"""


class Server:
    """One ``runserver`` process of the test project on 127.0.0.1."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": database_url(),
            "PYTHONPATH": str(ROOT),
        }
        self.process = subprocess.Popen(
            [sys.executable, "-c", BOOT, f"127.0.0.1:{self.port}"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.wait_until_listening()

    def wait_until_listening(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    output = self.stop()
                    pytest.fail(f"runserver did not start: {output}")
                time.sleep(0.1)

    def post(self, request: ActionRequest) -> requests.Response:
        """Send ``request`` to this process, at the path its URL names."""
        path = request.url.removeprefix("https://helpdesk.example")
        return requests.post(
            self.url + path, data=request.body, headers=request.headers, timeout=10
        )

    def stop(self) -> str:
        """Stop the process; return what it printed to stderr."""
        self.process.terminate()
        try:
            return self.process.communicate(timeout=10)[1]
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.communicate()[1]


@pytest.fixture
def server(transactional_db) -> Iterator[Server]:
    server = Server()
    yield server
    server.stop()


@pytest.fixture
def another_server(transactional_db) -> Iterator[Server]:
    server = Server()
    yield server
    server.stop()


@pytest.fixture
def ticket(transactional_db, settings):
    # Nothing posts from this process either: only the servers write while they run.
    settings.FLOWDOCK = {**settings.FLOWDOCK, "DELIVERY": "worker"}
    make_application()  # application A with its source: the ticket's thread goes there
    make_user()
    ticket = Ticket.objects.create(subject="Polish", state="open")
    fan_out()  # posted now, through the sources that exist now
    return ticket


def test_token_used_in_one_process_is_refused_by_another(server, another_server, ticket):
    first, second = server, another_server
    request = signed(ticket, "Mark as solved")

    assert first.post(request).status_code == 200
    Ticket.objects.filter(pk=ticket.pk).update(state="open")
    changes = Change.objects.count()

    replay = second.post(request)

    assert replay.status_code == 401, replay.text
    assert "already used" in replay.json()["detail"]
    assert Ticket.objects.get(pk=ticket.pk).state == "open"
    assert Change.objects.count() == changes  # the refused replay changed nothing
    assert UsedToken.objects.count() == 1


def test_token_signed_by_application_b_on_application_as_thread_is_401(server, ticket):
    make_application("app-b", OTHER_SECRET)  # registered, with a source of its own

    response = server.post(signed(ticket, "Assign to me", client_secret=OTHER_SECRET))

    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == "Flowdock-Token"
    assert (Ticket.objects.get(pk=ticket.pk).assignee_id, Change.objects.count()) == (None, 1)
    assert not UsedToken.objects.exists()


def test_body_for_ticket_9s_action_at_ticket_10s_url_is_403(server, ticket):
    other = Ticket.objects.create(subject="Ten", state="open")
    solve_first = signed(ticket, "Mark as solved")
    assign_other = signed(other, "Assign to me")

    forged = solve_first._replace(url=assign_other.url)
    response = server.post(forged)

    assert response.status_code == 403, response.text
    assert [(t.state, t.assignee_id) for t in Ticket.objects.all()] == [("open", None)] * 2
    assert Change.objects.count() == 2
    assert not UsedToken.objects.exists()

    wrong_method = json.loads(assign_other.body)
    wrong_method["target"]["httpMethod"] = "PUT"
    response = server.post(signed(other, "Assign to me", body=json.dumps(wrong_method).encode()))

    assert response.status_code == 403, response.text
    assert Ticket.objects.get(pk=other.pk).assignee_id is None
    assert Change.objects.count() == 2
