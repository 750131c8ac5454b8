"""``manage.py flowdock_listen``: turn chat replies in Flowdock threads into comments."""

from __future__ import annotations

import logging
import signal
from typing import Any

from django.core.management.base import BaseCommand

from django_flowdock.conversations.listener import Listener, catch_up, connected_flows


class Command(BaseCommand):
    help = (
        "Read the flows of the connected sources (catch up through the REST API, then "
        "stream) and turn chat replies in known threads into comments. Resumes where it "
        "stopped. SIGTERM/SIGINT stop it."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--once",
            action="store_true",
            help="One catch-up pass over every flow through the REST API, then exit.",
        )

    def handle(self, *args: Any, once: bool = False, **options: Any) -> None:
        handler = self._log_to_stderr(options["verbosity"])
        try:
            self._run(once)
        finally:
            if handler is not None:
                logging.getLogger("django_flowdock").removeHandler(handler)

    def _run(self, once: bool) -> None:
        if once:
            read = catch_up()
            self.stdout.write(f"Read {read} messages.")
            return
        listener = Listener()

        def stop(signum: int, frame: Any) -> None:
            self.stderr.write(f"{signal.Signals(signum).name} received: stopping")
            listener.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        flows = connected_flows()
        self.stdout.write(
            "Listening to " + (", ".join(flow.path for flow in flows) or "no flow"), ending="\n"
        )
        self.stdout.flush()
        listener.run()

    def _log_to_stderr(self, verbosity: int) -> logging.Handler | None:
        from django_flowdock.management.commands.flowdock_worker import log_to_stderr

        return log_to_stderr(self.stderr, verbosity)
