"""A strict stand-in for what the conversations listener uses of Flowdock, on
127.0.0.1: ``POST /messages`` (threads by source and ``external_thread_id``, ``200``
with the stored message on ``X-flowdock-wait-for-message``), the REST list of a
flow's messages, the Streaming API (Event-Stream, ``Last-Event-ID``, keep-alives) and
OAuth tokens that live ``lifetime`` seconds with refresh tokens that work once.

Strict where Flowdock may be: a request with an expired or revoked access token is a
``401``, and an open stream ends when the token it was opened with expires."""

from __future__ import annotations

import json
import math
import secrets
import threading
import time
from collections import Counter
from datetime import timedelta
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from django.utils import timezone

from django_flowdock.models import OAuthApplication, OAuthToken, Source
from tests.local_api import LocalServer

CLIENT_ID = "listener-client"
CLIENT_SECRET = "listener-client-secret-0123456789abcdef"
#: Seconds between keep-alives on an idle stream.
KEEPALIVE = 0.5


class FlowdockStandIn(LocalServer):
    def __init__(self, *, lifetime: float = 3600) -> None:
        self.lifetime = lifetime
        self.lock = threading.Condition()
        self.next_id = 1000
        self.flows: dict[str, dict] = {}  # path -> {"id", "messages"}
        self.flow_tokens: dict[str, tuple[str, int]] = {}  # flow token -> (path, source id)
        self.threads: dict[tuple[int, str], str] = {}  # (source id, external id) -> thread id
        self.access_tokens: dict[str, float] = {}  # token -> monotonic expiry
        self.refresh_tokens: set[str] = set()
        self.refreshes = 0
        self.streams: Counter[str] = Counter()  # flow path -> streams open
        self.requests: list[tuple[str, str, int]] = []
        super().__init__(self._handler())

    # Set-up, as a Flowdock user and admin would do it

    def add_flow(self, path: str) -> str:
        with self.lock:
            self.flows[path] = {"id": f"flow-{len(self.flows) + 1}", "messages": []}
            return self.flows[path]["id"]

    def add_source(self, path: str) -> str:
        """A new source in the flow; returns its flow token."""
        token = secrets.token_hex(16)
        with self.lock:
            self.flow_tokens[token] = (path, len(self.flow_tokens) + 1)
        return token

    def issue(self) -> dict:
        """A fresh grant, as the token endpoint answers it."""
        with self.lock:
            return self._grant()

    def revoke(self, token: OAuthToken) -> None:
        """The user revoked the grant in Flowdock: its tokens stop working."""
        with self.lock:
            self.refresh_tokens.discard(token.refresh_token)
            self.access_tokens.pop(token.access_token, None)
            self.lock.notify_all()

    def forget(self, access_token: str) -> None:
        """The access token stops working before its stated expiry (the grant stays)."""
        with self.lock:
            self.access_tokens.pop(access_token, None)
            self.lock.notify_all()

    def chat(self, path: str, thread_id: str, content: str, user: int = 1) -> dict:
        """A chat message in a thread, as a Flowdock user writes it."""
        return self._store(
            path,
            {"event": "message", "content": content, "user": str(user), "thread_id": thread_id},
        )

    def messages(self, path: str) -> list[dict]:
        with self.lock:
            return list(self.flows[path]["messages"])

    def expired(self, access_token: str) -> bool:
        with self.lock:
            return self.access_tokens.get(access_token, 0) <= time.monotonic()

    # What the server does

    def _grant(self) -> dict:
        access, refresh = secrets.token_hex(16), secrets.token_hex(16)
        self.access_tokens[access] = time.monotonic() + (self.lifetime or math.inf)
        self.refresh_tokens.add(refresh)
        return {
            "access_token": access,
            "refresh_token": refresh,
            "token_type": "bearer",
            "expires_in": self.lifetime,
            "scope": "flow integration",
        }

    def _store(self, path: str, fields: dict) -> dict:
        with self.lock:
            self.next_id += 1
            flow = self.flows[path]
            message = {
                "id": self.next_id,
                "flow": flow["id"],
                "sent": int(time.time() * 1000),
                "user": "0",
                "tags": [],
                "attachments": [],
                **fields,
            }
            flow["messages"].append(message)
            self.lock.notify_all()
            return message

    def _latest(self, path: str) -> int:
        messages = self.flows[path]["messages"]
        return messages[-1]["id"] if messages else 0

    def _valid(self, bearer: str) -> bool:
        return self.access_tokens.get(bearer, 0) > time.monotonic()

    def _token(self, form: dict[str, str]) -> tuple[int, dict]:
        if (form.get("client_id"), form.get("client_secret")) != (CLIENT_ID, CLIENT_SECRET):
            return 401, {"error": "invalid_client"}
        if (
            form.get("grant_type") != "refresh_token"
            or form.get("refresh_token") not in self.refresh_tokens
        ):
            return 400, {"error": "invalid_grant"}
        self.refresh_tokens.remove(form["refresh_token"])  # rotated: works once
        self.refreshes += 1
        return 200, self._grant()

    def _post(self, body: dict, wait: bool) -> tuple[int, dict]:
        found = self.flow_tokens.get(body.get("flow_token", ""))
        if found is None:
            return 401, {"message": "Unauthorized"}
        path, source_id = found
        key = (source_id, body.get("external_thread_id", ""))
        thread_id = self.threads.setdefault(key, secrets.token_urlsafe(12))
        fields = {k: v for k, v in body.items() if k not in ("flow_token", "external_thread_id")}
        message = self._store(path, {**fields, "thread_id": thread_id})
        return (200, message) if wait else (202, {})

    def _list(self, path: str, query: dict[str, str]) -> list[dict]:
        after = int(query.get("since_id", 0))
        limit = int(query.get("limit", 30))
        found = [m for m in self.flows[path]["messages"] if m["id"] > after]
        return (
            found[:limit] if query.get("sort") == "asc" or "since_id" in query else found[-limit:]
        )

    def _stream(self, handler: BaseHTTPRequestHandler, path: str, bearer: str) -> None:
        after = int(handler.headers.get("Last-Event-ID") or 0)
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.close_connection = True
        with self.lock:
            self.streams[path] += 1
        try:
            while True:
                with self.lock:
                    self.lock.wait_for(
                        lambda seen=after: not self._valid(bearer) or self._latest(path) > seen,
                        timeout=KEEPALIVE,
                    )
                    if not self._valid(bearer):
                        return  # strict: the stream ends with its token
                    new = [m for m in self.flows[path]["messages"] if m["id"] > after]
                chunk = (
                    b"".join(f"id: {m['id']}\ndata: {json.dumps(m)}\n\n".encode() for m in new)
                    or b":\n"
                )
                handler.wfile.write(chunk)
                handler.wfile.flush()
                if new:
                    after = new[-1]["id"]
        except OSError:
            return  # the client went away
        finally:
            with self.lock:
                self.streams[path] -= 1

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self, method: str) -> None:
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                bearer = self.headers.get("Authorization", "").removeprefix("Bearer ")
                segments = parts.path.strip("/").split("/")
                if method == "GET" and segments[:2] == ["stream", "flows"] and len(segments) == 4:
                    flow = "/".join(segments[2:])
                    with server.lock:
                        allowed = server._valid(bearer) and flow in server.flows
                        server.requests.append((method, parts.path, 200 if allowed else 401))
                    if allowed:
                        server._stream(self, flow, bearer)
                        return
                    status, payload = 401, {"message": "Unauthorized"}
                else:
                    with server.lock:
                        status, payload = self._route(
                            method, parts.path, segments, query, raw, bearer
                        )
                        server.requests.append((method, parts.path, status))
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _route(self, method, path, segments, query, raw, bearer):
                if path == "/oauth/token":
                    return server._token({k: v[0] for k, v in parse_qs(raw).items()})
                if method == "POST" and path == "/messages":
                    wait = self.headers.get("X-flowdock-wait-for-message") == "true"
                    return server._post(json.loads(raw), wait)
                if method == "PUT" and path == "/sources":
                    return 200, {}
                if not server._valid(bearer):
                    return 401, {"message": "Unauthorized"}
                if (
                    method == "GET"
                    and segments[0] == "flows"
                    and segments[3:] == ["messages"]
                    and "/".join(segments[1:3]) in server.flows
                ):
                    return 200, server._list("/".join(segments[1:3]), query)
                return 404, {"message": "Not found"}

            def do_GET(self):
                self._answer("GET")

            def do_POST(self):
                self._answer("POST")

            def do_PUT(self):
                self._answer("PUT")

            def log_message(self, *args):
                pass

        return Handler


def connect(stand_in: FlowdockStandIn, path: str) -> Source:
    """A source of the flow at ``path``, connected through OAuth as the admin leaves
    it: flow token, flow id and path, and a grant of ``stand_in.lifetime`` seconds."""
    application = OAuthApplication.objects.get_or_create(
        client_id=CLIENT_ID,
        defaults={"name": "Helpdesk", "client_secret": CLIENT_SECRET, "offline_access": True},
    )[0]
    grant = stand_in.issue()
    token = OAuthToken.objects.create(
        application=application,
        access_token=grant["access_token"],
        refresh_token=grant["refresh_token"],
        scope=grant["scope"],
        expires_at=timezone.now() + timedelta(seconds=stand_in.lifetime),
    )
    flow_id = stand_in.flows[path]["id"] if path in stand_in.flows else stand_in.add_flow(path)
    return Source.objects.create(
        name=f"Helpdesk {path}",
        flow_token=stand_in.add_source(path),
        application=application,
        token=token,
        flow_id=flow_id,
        flow_path=path,
    )
