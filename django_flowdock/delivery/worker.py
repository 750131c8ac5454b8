"""The worker backend and the polling loop behind ``manage.py flowdock_worker``."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from django.core.exceptions import ImproperlyConfigured
from django.db import connections

from django_flowdock.delivery.base import BaseBackend
from django_flowdock.delivery.engine import DrainResult, drain
from django_flowdock.delivery.lines import check_lines

logger = logging.getLogger("django_flowdock.worker")

#: Consecutive failed rounds after which ``--once`` gives up (and exits non-zero).
ONCE_MAX_FAILURES = 3


class WorkerBackend(BaseBackend):
    """Leave changes in the outbox for ``manage.py flowdock_worker`` to send."""

    def dispatch(self) -> None:
        return None


@dataclass
class Budget:
    """How many more messages the worker may handle (``None``: no limit), shared by
    its threads."""

    remaining: int | None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, wanted: int) -> int:
        with self._lock:
            if self.remaining is None:
                return wanted
            granted = min(wanted, self.remaining)
            self.remaining -= granted
            return granted

    def give_back(self, unused: int) -> None:
        with self._lock:
            if self.remaining is not None:
                self.remaining += unused

    @property
    def spent(self) -> bool:
        with self._lock:
            return self.remaining == 0


def close_old_connections() -> None:
    """Django's ``close_old_connections()``, sparing a connection inside a transaction
    (a worker run from a test, inside the test's transaction)."""
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close_if_unusable_or_obsolete()


class Worker:
    """Drains the outbox in ``threads`` threads until stopped.

    ``once`` stops when nothing is due; ``max_messages`` stops after that many
    messages were handled (sent, failed, or rescheduled). :meth:`stop` (called from the
    SIGTERM/SIGINT handler) lets every thread finish and record the message in hand.
    """

    def __init__(
        self,
        *,
        threads: int = 1,
        once: bool = False,
        max_messages: int | None = None,
        idle_sleep: float = 1.0,
        batch_size: int = 50,
    ) -> None:
        self.threads = threads
        self.once = once
        self.budget = Budget(max_messages)
        self.idle_sleep = idle_sleep
        self.batch_size = batch_size
        self.stopping = threading.Event()
        self.result = DrainResult()
        self.errors = 0
        self.failure: Exception | None = None
        self._result_lock = threading.Lock()

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> DrainResult:
        """Deliver until stopped; in ``once`` mode, raise the error that kept failing."""
        if self.threads == 1:
            self._loop()
        else:
            self._run_threads()
        if self.failure is not None:
            raise self.failure
        return self.result

    def _run_threads(self) -> None:
        workers = [
            threading.Thread(target=self._thread_main, name=f"flowdock-worker-{n}", daemon=True)
            for n in range(self.threads)
        ]
        for thread in workers:
            thread.start()
        # Join with a timeout so the main thread stays responsive to signals.
        while any(thread.is_alive() for thread in workers):
            for thread in workers:
                thread.join(timeout=0.2)

    def _thread_main(self) -> None:
        try:
            self._loop()
        finally:
            connections.close_all()

    def _loop(self) -> None:
        failures = 0
        while not self.stopping.is_set():
            limit = self.budget.take(self.batch_size)
            if limit == 0:
                break
            close_old_connections()
            try:
                check_lines()
                round_result = drain(limit=limit, should_stop=self.stopping.is_set)
            except ImproperlyConfigured as exc:
                # Retrying cannot fix the configuration: stop, and let the command fail.
                self.budget.give_back(limit)
                logger.exception("Delivery stopped by a configuration error")
                self.failure = exc
                self.stop()
                break
            except Exception as exc:
                # A database or network hiccup (a locked SQLite file, a restarting
                # server) must not end the worker; in --once mode a persistent one does.
                self.budget.give_back(limit)
                logger.exception("Delivery round failed; retrying in %.1fs", self.idle_sleep)
                with self._result_lock:
                    self.errors += 1
                failures += 1
                if self.once and failures >= ONCE_MAX_FAILURES:
                    self.failure = exc
                    self.stop()
                self.stopping.wait(self.idle_sleep)
                continue
            failures = 0
            self.budget.give_back(limit - round_result.handled)
            with self._result_lock:
                self.result.merge(round_result)
            if round_result.handled:
                logger.info(
                    "Delivered: %d sent, %d to retry, %d failed, %d cancelled",
                    round_result.sent,
                    round_result.retrying,
                    round_result.failed,
                    round_result.cancelled,
                )
            elif self.once or self.budget.spent:
                break
            else:
                self.stopping.wait(self.idle_sleep)
