"""A scripted stand-in for the Flowdock API on 127.0.0.1, for faults the sandbox does not
offer (chosen headers, answers cut short); it records every request it receives."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class RecordingServer:
    """A tiny Flowdock stand-in: answers ``POST /messages`` from a script (default
    202) and records every request with its start and end time."""

    def __init__(self, delay: float = 0.0) -> None:
        self.script: deque[tuple[int, dict[str, str], float]] = deque()
        self.requests: list[dict] = []
        self.delay = delay
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                started = time.monotonic()
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                record = {**body, "started": started}
                with server.lock:
                    status, headers, delay = (
                        server.script.popleft() if server.script else (202, {}, server.delay)
                    )
                    record["status"] = status
                    server.requests.append(record)
                time.sleep(delay)
                payload = b"{}"
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up waiting (a timeout test)
                record["ended"] = time.monotonic()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, status: int, headers: dict[str, str] | None = None, delay: float = 0.0):
        self.script.append((status, headers or {}, delay))

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
