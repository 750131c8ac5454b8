"""``manage.py flowdock_sandbox``: run the Flowdock sandbox beside the project.

The sandbox needs its own settings, so it runs as a child process rather than inside
this one.
"""

import signal
import subprocess
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from django_flowdock.sandbox.launch import sandbox_environment
from django_flowdock.sandbox.options import add_arguments, to_argv


class Command(BaseCommand):
    help = "Run a local Flowdock (API and team inbox) for development and demos."

    def add_arguments(self, parser: CommandParser) -> None:
        add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        argv = [sys.executable, "-m", "django_flowdock.sandbox", *to_argv(options)]
        child = subprocess.Popen(argv, env=sandbox_environment())  # noqa: S603
        # Pass a stop request on, so the child closes its server cleanly.
        signal.signal(signal.SIGTERM, lambda signum, frame: child.terminate())
        try:
            returncode = child.wait()
        except KeyboardInterrupt:
            # The terminal sent SIGINT to the child as well; let it finish.
            returncode = child.wait()
        if returncode:
            sys.exit(returncode)
