"""Small HTTP servers on 127.0.0.1 for the tests: ``LocalServer`` runs a handler class on
a free port in a daemon thread; ``RecordingServer`` is a scripted stand-in for the
Flowdock API, for faults the sandbox does not offer (chosen headers and bodies, answers
cut short); it records every request it receives."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def free_port() -> int:
    """A port of 127.0.0.1 that nothing listens on (a refused connection, or a port to
    start a server process on)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LocalServer:
    """Serves ``handler`` on a free port of 127.0.0.1 until ``stop()``."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class Answer:
    status: int = 202
    headers: dict[str, str] | None = None
    delay: float = 0.0
    # The body, or a function of the posted JSON that returns it.
    body: bytes | Callable[[dict], str] = b"{}"
    content_type: str = "application/json"
    # Announce more body than is sent, then close the connection.
    cut_short: bool = False


class RecordingServer(LocalServer):
    """A tiny Flowdock stand-in: answers ``POST /messages`` from a script (then with
    ``status``, 202 unless changed: 503 while "down") and records every request with
    its start and end time."""

    def __init__(self, delay: float = 0.0) -> None:
        self.script: deque[Answer] = deque()
        self.requests: list[dict] = []
        self.delay = delay
        self.status = 202
        #: No answer is given before this many requests have arrived (at most 30 s):
        #: several clients are then all under way at once, however late each started.
        self.hold_until = 0
        self.lock = threading.Lock()
        self.answered = threading.Condition(self.lock)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                started = time.monotonic()
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                record = {**body, "started": started}
                with server.lock:
                    answer = server.script.popleft() if server.script else None
                    answer = answer or Answer(server.status, delay=server.delay)
                    record["status"] = answer.status
                    server.requests.append(record)
                    server.answered.notify_all()
                    server.answered.wait_for(
                        lambda: len(server.requests) >= server.hold_until, timeout=30
                    )
                time.sleep(answer.delay)  # a slow Flowdock
                payload = answer.body
                if callable(payload):
                    payload = payload(body).encode()
                length = len(payload) + (98 if answer.cut_short else 0)
                try:
                    self.send_response(answer.status)
                    for name, value in (answer.headers or {}).items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", answer.content_type)
                    self.send_header("Content-Length", str(length))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up waiting (a timeout test)
                self.close_connection = answer.cut_short
                with server.answered:
                    record["ended"] = time.monotonic()
                    server.answered.notify_all()

            def log_message(self, *args):
                pass

        super().__init__(Handler)

    def answer(
        self,
        status: int,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
        **options,
    ) -> None:
        """Script the next answer; ``options`` are ``Answer``'s ``body``,
        ``content_type`` and ``cut_short``."""
        self.script.append(Answer(status, headers, delay, **options))

    def wait_for_answers(self, count: int, timeout: float = 20.0) -> None:
        """Block until ``count`` requests have been answered; fail after ``timeout``."""
        with self.answered:
            answered = self.answered.wait_for(
                lambda: sum("ended" in r for r in self.requests) >= count, timeout
            )
        assert answered, f"{count} answers not given within {timeout}s"
