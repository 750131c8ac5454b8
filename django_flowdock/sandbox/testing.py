"""Run a sandbox in a child process and steer it from tests.

Imports nothing from Django: the pytest plugin loads this before any settings exist,
and the sandbox needs settings of its own anyway.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

from .launch import sandbox_environment
from .options import CONTROL_HEADER

STARTUP_TIMEOUT = 60.0
TIMEOUT = 10


class SandboxError(RuntimeError):
    """The sandbox did not start, or refused a control request."""


class SandboxServer:
    """A running sandbox: its URL, its seeded credentials and what it received."""

    def __init__(self, process: subprocess.Popen[bytes], workdir: Path, credentials: dict) -> None:
        self.process = process
        self.workdir = workdir
        #: Called before messages() and threads() read the inbox (the pytest plugin
        #: waits there for the app's background delivery).
        self.before_read: Callable[[], None] = lambda: None
        self.credentials: dict[str, Any] = credentials
        self.url: str = credentials["url"]
        self.flow_token: str = credentials["source"]["flow_token"]
        self.client_id: str = credentials["application"]["client_id"]
        self.client_secret: str = credentials["application"]["client_secret"]
        self.session = requests.Session()
        self.session.headers[CONTROL_HEADER] = "1"

    @classmethod
    def start(
        cls,
        port: int = 0,
        db: str | os.PathLike[str] | None = None,
        callback_uri: str | None = None,
        setup_uri: str | None = None,
        configuration_uri: str | None = None,
    ) -> SandboxServer:
        """Start ``python -m django_flowdock.sandbox`` and wait until it listens.

        Without ``db`` the database is a throwaway one. The child's output goes to
        ``sandbox.log`` in a temporary directory, named in any start-up error.
        """
        workdir = Path(tempfile.mkdtemp(prefix="flowdock-sandbox-"))
        credentials_file = workdir / "credentials.json"
        argv = [
            sys.executable,
            "-m",
            "django_flowdock.sandbox",
            "--port",
            str(port),
            "--db",
            str(db) if db is not None else ":memory:",
            "--credentials-file",
            str(credentials_file),
        ]
        uris = {
            "--app-callback-uri": callback_uri,
            "--app-setup-uri": setup_uri,
            "--app-configuration-uri": configuration_uri,
        }
        for option, value in uris.items():
            if value is not None:
                argv += [option, value]
        log = workdir / "sandbox.log"
        with log.open("wb") as output:
            process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                argv, stdout=output, stderr=subprocess.STDOUT, env=sandbox_environment()
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not credentials_file.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                process.wait()
                raise SandboxError(
                    f"The Flowdock sandbox did not start; its output ({log}):\n"
                    + log.read_text(errors="replace")[-4000:]
                )
            time.sleep(0.05)
        return cls(process, workdir, json.loads(credentials_file.read_text()))

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL after 10 s) and remove its files."""
        self.session.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> SandboxServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def log(self) -> str:
        """Everything the sandbox printed so far: credentials and request lines."""
        return (self.workdir / "sandbox.log").read_text(errors="replace")

    def messages(self, include_repeats: bool = False, **filters: Any) -> list[dict[str, Any]]:
        """Every accepted message in post order, each ``uuid`` once.

        A message posted again with a ``uuid`` the flow had already seen is stored and
        shown in the inbox as "posted again"; it is listed here only with
        ``include_repeats=True`` (then with ``"repeated": true``). Filters: ``event``,
        ``flow``, ``source_id``, ``thread_id``, ``external_thread_id``, ``uuid``.
        """
        self.before_read()
        records = self._control("GET", "messages", params=filters)
        return records if include_repeats else [r for r in records if not r["repeated"]]

    def threads(self) -> list[dict[str, Any]]:
        """Every thread, oldest first, with its latest state and message count."""
        self.before_read()
        return self._control("GET", "threads")

    def sources(self) -> list[dict[str, Any]]:
        """Every source, removed ones included (``"removed": true``)."""
        return self._control("GET", "sources")

    def create_source(self, name: str, **fields: Any) -> dict[str, Any]:
        """A new source of the seeded application; the answer holds its ``flow_token``.

        Fields: ``external_url``, ``flow`` (a flow id; the seeded flow by default).
        """
        return self._control("POST", "sources", json={"name": name, **fields})

    def revoke_source(self, source_id: int) -> None:
        """Remove the source as a Flowdock user would: its token then answers 410."""
        self._control("POST", f"sources/{source_id}/revoke")

    def inject_fault(
        self,
        status: int | None = None,
        count: int = 1,
        latency: float = 0.0,
        drop: bool = False,
        path: str = "/messages",
        ratio: float | None = None,
        retry_after: int | None = None,
    ) -> dict[str, Any]:
        """Make requests to ``path`` (and below it) fail before they reach the API.

        By default the next ``count`` matching requests are affected. With ``ratio``
        (0..1) that share of matching requests is, until :meth:`clear_faults`, spread
        deterministically (0.5 hits the 1st, 3rd, 5th...) so retry tests are
        repeatable. Each affected request waits ``latency`` seconds, then has its
        connection dropped without an answer (``drop``) or is answered ``status``
        (with ``Retry-After`` when ``retry_after`` is given), or else proceeds.
        """
        return self._control(
            "POST",
            "faults",
            json={
                "status": status,
                "count": count,
                "latency": latency,
                "drop": drop,
                "path": path,
                "ratio": ratio,
                "retry_after": retry_after,
            },
        )

    def faults(self) -> list[dict[str, Any]]:
        """The active faults, with how often each matched and fired."""
        return self._control("GET", "faults")

    def clear_faults(self) -> None:
        self._control("DELETE", "faults")

    def reset(self) -> None:
        """Delete messages, threads, extra sources, OAuth tokens and faults; keep the seed."""
        self._control("POST", "reset")

    def _control(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.session.request(
            method, f"{self.url}/_sandbox/{path}", timeout=TIMEOUT, **kwargs
        )
        if not response.ok:
            raise SandboxError(f"{method} /_sandbox/{path}: {response.status_code} {response.text}")
        return response.json() if response.content else None
