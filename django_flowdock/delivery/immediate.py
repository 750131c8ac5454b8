"""The default backend: deliver right after commit, in a background thread of this
process, and retry by itself while the process lives."""

from __future__ import annotations

import logging
import os
import threading

from django.db import connections
from django.utils import timezone

from django_flowdock.delivery.base import BaseBackend
from django_flowdock.delivery.engine import drain
from django_flowdock.models import Message

logger = logging.getLogger("django_flowdock.delivery")

#: Longest sleep between looks at the outbox while messages wait for a retry.
MAX_SLEEP = 60.0
#: Shortest sleep between rounds, so a message that cannot be taken yet never makes the
#: thread spin.
MIN_SLEEP = 0.2
#: Sleep after a round that failed (database restarting, say).
ERROR_SLEEP = 5.0


class ImmediateBackend(BaseBackend):
    """No HTTP on the request thread and no extra process to run.

    A commit wakes one daemon thread per process, which drains the outbox and then
    sleeps until the earliest retry is due, so a message that met a Flowdock outage is
    sent once Flowdock is back, in order with its thread's later messages. A process
    that exits leaves its undelivered messages in the outbox for the next one (or for
    ``manage.py flowdock_worker``).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = threading.Condition(self._lock)
        self._busy = False
        self._thread: threading.Thread | None = None
        self._pid = 0

    def dispatch(self) -> None:
        with self._lock:
            # A forked process (a pre-forking server) does not inherit the thread.
            if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
                self._pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._run, name="flowdock-delivery", daemon=True
                )
                self._thread.start()
            self._busy = True
            # Under the lock: a round that just ended must see this wake before it
            # reports idle, or wait_idle() could return before this commit's delivery.
            self._wake.set()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until the thread has drained everything it was woken for (tests and
        scripts); False if it was still busy after ``timeout`` seconds."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._busy, timeout)

    def _run(self) -> None:
        sleep: float | None = None
        while True:
            self._wake.wait(timeout=sleep)
            self._wake.clear()
            try:
                drain()
                sleep = _seconds_until_due()
            except Exception:
                logger.exception("Delivery round failed; trying again in %.0fs", ERROR_SLEEP)
                sleep = ERROR_SLEEP
            finally:
                # Nothing held between rounds: a test database can be dropped, a
                # restarted database server reconnected to.
                connections.close_all()
            with self._idle:
                if not self._wake.is_set():
                    self._busy = False
                    self._idle.notify_all()


def _seconds_until_due() -> float | None:
    # Only messages first in line count: the ones behind a message waiting for its retry
    # wait with it, and one another process holds waits for the end of its lease.
    due = Message.objects.next_due()
    if due is None:
        return None
    return min(MAX_SLEEP, max(MIN_SLEEP, (due - timezone.now()).total_seconds()))
