"""The Celery backend with a real worker process and broker, delivering to the sandbox.

The broker is CELERY_BROKER_URL (scripts/test runs this module once with Redis and once
with RabbitMQ, ``amqp://...``), else REDIS_URL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid

import pytest
from celery import Celery
from django.db import transaction

from django_flowdock.delivery.celery import drain_outbox
from django_flowdock.models import Change, Message, Source
from tests.test_worker_processes import ROOT, database_url
from tests.testapp.models import Ticket
from tests.waiting import wait_for

BROKER_URL = os.environ.get("CELERY_BROKER_URL") or os.environ.get("REDIS_URL")
QUEUE = os.environ.get("FLOWDOCK_TEST_QUEUE") or f"flowdock-test-{uuid.uuid4().hex}"

app = Celery("flowdock_tests", broker=BROKER_URL or "memory://", set_as_current=True)
app.conf.update(
    task_default_queue=QUEUE,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)

WORKER = """
import json, os
import django
django.setup()
from django.conf import settings
settings.FLOWDOCK.update(json.loads(os.environ["FLOWDOCK_OVERRIDES"]))
from tests.test_celery import app, QUEUE
import django_flowdock.delivery.celery
app.worker_main(["worker", "--pool=solo", "-Q", QUEUE, "--loglevel=INFO",
                 "--without-gossip", "--without-mingle", "--without-heartbeat"])
"""

needs_broker = pytest.mark.skipif(
    not BROKER_URL,
    reason="neither CELERY_BROKER_URL nor REDIS_URL is set: the Celery test needs a real broker",
)


@pytest.fixture
def celery_worker_process(transactional_db, sandbox, tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url(),
        "FLOWDOCK_TEST_QUEUE": QUEUE,
        "FLOWDOCK_OVERRIDES": json.dumps({"API_URL": sandbox.url, "BACKOFF_MAX": 0.2}),
        "PYTHONPATH": str(ROOT),
    }
    log_path = tmp_path / "celery.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, "-c", WORKER], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_for(lambda: "ready." in log_path.read_text(), timeout=30, what="celery worker")
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@needs_broker
def test_commit_enqueues_a_drain_that_a_celery_worker_delivers(
    celery_worker_process, sandbox, settings
):
    settings.FLOWDOCK = {**settings.FLOWDOCK, "DELIVERY": "celery"}
    Source.objects.create(name="Helpdesk", flow_token=sandbox.flow_token)
    sandbox.inject_fault(status=500)  # the first post fails: the task schedules a retry
    with transaction.atomic():
        ticket = Ticket.objects.create(subject="Sent through Celery")
        Change.objects.get()  # captured inside the transaction; nothing sent before commit
        assert not Message.objects.exists()
    ticket.state = "solved"
    ticket.save()
    key = ticket.get_flowdock_thread_id()
    wait_for(
        lambda: len(sandbox.messages(external_thread_id=key)) == 2, timeout=20, what="delivery"
    )
    received = sandbox.messages(external_thread_id=key)
    assert [m["title"] for m in received] == ["created ticket", "updated ticket"]
    # Rendered when posted: the retried creation already shows the latest state.
    assert received[-1]["thread"]["status"]["value"] == "solved"
    first = Message.objects.order_by("pk").first()
    assert (first.state, first.attempts) == ("sent", 2)


def test_drain_outbox_is_registered_under_its_documented_name():
    assert drain_outbox.name == "django_flowdock.delivery.celery.drain_outbox"
