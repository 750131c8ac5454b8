"""``manage.py flowdock_worker``: deliver the outbox, continuously or once."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from types import FrameType
from typing import Any

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from django_flowdock.conf import flowdock_settings
from django_flowdock.delivery.worker import Worker

logger = logging.getLogger("django_flowdock.worker")


class Command(BaseCommand):
    help = (
        "Deliver pending Flowdock messages. Runs until SIGTERM/SIGINT (finishing the "
        "message in hand), or with --once until nothing is due."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--once", action="store_true", help="Exit when no message is due (for cron)."
        )
        parser.add_argument(
            "--max-messages",
            type=int,
            default=None,
            help="Exit after handling this many messages (sent, failed or rescheduled).",
        )
        parser.add_argument(
            "--sleep",
            type=float,
            default=1.0,
            help="Seconds to wait before polling again when nothing is due (default 1).",
        )
        parser.add_argument(
            "--listen",
            action="store_true",
            help="Also read the connected flows for chat replies (django_flowdock."
            "conversations), as flowdock_listen does; with --once, one catch-up pass.",
        )
        parser.add_argument(
            "--threads",
            type=int,
            default=1,
            help="Messages posted concurrently, each thread with its own connections.",
        )

    def handle(self, *args, once, max_messages, sleep, threads, listen=False, **options):
        if threads < 1:
            raise CommandError("--threads must be at least 1.")
        if listen and not apps.is_installed("django_flowdock.conversations"):
            raise CommandError('--listen needs "django_flowdock.conversations" in INSTALLED_APPS.')
        if max_messages is not None and max_messages < 1:
            raise CommandError("--max-messages must be at least 1.")
        handler = self._log_to_stderr(options["verbosity"])
        worker = Worker(
            threads=threads,
            once=once,
            max_messages=max_messages,
            idle_sleep=sleep,
            batch_size=flowdock_settings.BATCH_SIZE,
        )
        listener = self._start_listener() if listen and not once else None
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

        def graceful(signum: int, frame: FrameType | None) -> None:
            logger.info(
                "%s received: finishing the message in hand, then exiting",
                signal.Signals(signum).name,
            )
            worker.stop()
            if listener is not None:
                listener[0].stop()
            # A second signal ends the worker at once.
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        for sig in previous:
            signal.signal(sig, graceful)
        logger.info(
            "Flowdock worker started (threads=%d, once=%s, max_messages=%s)",
            threads,
            once,
            max_messages,
        )
        try:
            result = worker.run()
            if listen and once:
                from django_flowdock.conversations.listener import catch_up

                self.stdout.write(f"Read {catch_up()} Flowdock messages.")
        except ImproperlyConfigured as exc:
            raise CommandError(f"Stopped by a configuration error: {exc}") from exc
        finally:
            if listener is not None:
                listener[0].stop()
                listener[1].join(timeout=60)
                # Again from this thread: a listener thread still stuck in a read when
                # the process exits must not leave its flows leased to a dead holder.
                with contextlib.suppress(DatabaseError):
                    listener[0].leases.release()
            for sig, previous_handler in previous.items():
                signal.signal(sig, previous_handler)
            if handler is not None:
                logging.getLogger("django_flowdock").removeHandler(handler)
        self.stdout.write(
            f"Flowdock worker stopped: {result.sent} sent, {result.retrying} to retry, "
            f"{result.failed} failed, {result.cancelled} cancelled."
        )

    def _start_listener(self) -> tuple[Any, threading.Thread]:
        """The conversations listener in a thread of this process; signals stay here."""
        from django_flowdock.conversations.listener import Listener

        listener = Listener()
        thread = threading.Thread(target=listener.run, name="flowdock-listen", daemon=True)
        thread.start()
        return listener, thread

    def _log_to_stderr(self, verbosity: int) -> logging.Handler | None:
        return log_to_stderr(self.stderr, verbosity)


def log_to_stderr(stderr: Any, verbosity: int) -> logging.Handler | None:
    """Show the package's progress and errors on a command's stderr unless the
    project's logging already handles them (shared by flowdock_worker and
    flowdock_listen); return the handler to remove when the command ends."""
    package_logger = logging.getLogger("django_flowdock")
    if verbosity == 0 or package_logger.hasHandlers():
        return None
    handler = logging.StreamHandler(stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    package_logger.addHandler(handler)
    if package_logger.level == logging.NOTSET:
        package_logger.setLevel(logging.DEBUG if verbosity > 1 else logging.INFO)
    return handler
