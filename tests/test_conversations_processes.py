"""The listener as a real ``manage.py flowdock_listen`` process: SIGKILLed and
restarted in the middle of a burst of replies, it loses none and applies none twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

import pytest
from django.contrib.auth import get_user_model

from django_flowdock.conversations.models import ReceivedMessage
from django_flowdock.models import Change, FlowdockUser
from tests.conversations_support import connect_source, reply
from tests.test_conversations import ticket_thread
from tests.test_worker_processes import ROOT, database_url
from tests.testapp.models import Reply
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

BOOT = """
import json, os, sys
import django
django.setup()
from django.conf import settings
settings.FLOWDOCK.update(json.loads(os.environ["FLOWDOCK_OVERRIDES"]))
from django.core.management import call_command
call_command(*sys.argv[1:])
"""


def spawn_listener(api_url: str, *args: str) -> subprocess.Popen[str]:
    """``manage.py flowdock_listen`` in a process of its own, against ``api_url``."""
    return spawn_command(api_url, "flowdock_listen", *args)


def spawn_command(api_url: str, *argv: str) -> subprocess.Popen[str]:
    """``manage.py *argv`` in a process of its own, against ``api_url``."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url(),
        "FLOWDOCK_OVERRIDES": json.dumps({"API_URL": api_url}),
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.Popen(
        [sys.executable, "-c", BOOT, *argv],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_listener_killed_mid_burst_loses_no_reply_and_repeats_none(sandbox):
    connect_source(sandbox)
    user = get_user_model().objects.create_user("marty")
    FlowdockUser.objects.create(flowdock_user_id=str(sandbox.credentials["user"]["id"]), user=user)
    ticket, thread_id = ticket_thread()

    listener = spawn_listener(sandbox.url)
    first = reply(sandbox, thread_id, "warm-up")
    wait_for(lambda: Reply.objects.exists(), what="the listener to apply the first reply")

    posted = [first["id"]]
    burst = threading.Thread(
        target=lambda: posted.extend(
            reply(sandbox, thread_id, f"reply {n}")["id"] for n in range(99)
        )
    )
    burst.start()
    wait_for(lambda: Reply.objects.count() >= 20, what="part of the burst to be applied")
    listener.send_signal(signal.SIGKILL)
    listener.communicate(timeout=10)
    killed_at = Reply.objects.count()

    restarted = spawn_listener(sandbox.url)
    try:
        burst.join(timeout=60)
        assert len(posted) == 100
        wait_for(lambda: Reply.objects.count() >= 100, timeout=60, what="all 100 replies")
        assert killed_at < 100, "killed too late to prove anything"
    finally:
        restarted.send_signal(signal.SIGTERM)
        _out, err = restarted.communicate(timeout=20)
    assert restarted.returncode == 0, err
    assert "SIGTERM received: stopping" in err

    ids = sorted(Reply.objects.values_list("flowdock_message_id", flat=True))
    assert ids == sorted(posted)  # none lost, none twice
    assert ReceivedMessage.objects.count() == 100
    assert {r.author for r in Reply.objects.filter(ticket=ticket)} == {user}
    # No echo: none of them went back to Flowdock as a discussion.
    assert not Change.objects.filter(event="commented").exists()
    assert [m["event"] for m in sandbox.messages(thread_id=thread_id)].count("discussion") == 0
