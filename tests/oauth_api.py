"""A strict stand-in for Flowdock's OAuth and Sources API on 127.0.0.1, issuing
short-lived access tokens: an API call with an expired (or unknown) token is a 401,
an authorization code and a refresh token work once. ``expires_in: 0`` announces a
token that does not expire, as oauthlib reads it. It records every request."""

from __future__ import annotations

import json
import math
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.local_api import LocalServer

CLIENT_ID = "strict-client"
CLIENT_SECRET = "strict-client-secret-0123456789abcdef"
FLOW = {
    "id": "flow-1",
    "name": "Main",
    "parameterized_name": "main",
    "organization": {"name": "Acme", "parameterized_name": "acme"},
    "web_url": "http://flowdock.invalid/app/acme/main",
}


class StrictOAuthServer(LocalServer):
    """Grants access tokens that live ``lifetime`` seconds, with the scope written
    ``scope`` (comma-separated, as in Flowdock's docs), and refresh tokens when
    ``refresh`` is true."""

    def __init__(
        self, *, lifetime: float = 2, refresh: bool = True, scope: str = "flow,integration,profile"
    ) -> None:
        self.lifetime = lifetime
        self.refresh = refresh
        self.scope = scope
        self.codes: set[str] = set()
        self.refresh_tokens: set[str] = set()
        self.access_tokens: dict[str, float] = {}  # token -> monotonic expiry
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status)
        self.lock = threading.Lock()
        super().__init__(self._handler())

    def statuses(self, path: str) -> list[int]:
        return [status for _, p, status in self.requests if p == path]

    # What the server answers

    def authorize(self, query: dict[str, str]) -> tuple[int, dict[str, str], object]:
        code = secrets.token_hex(8)
        self.codes.add(code)
        location = f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"
        return 302, {"Location": location}, None

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, str], object]:
        if (form.get("client_id"), form.get("client_secret")) != (CLIENT_ID, CLIENT_SECRET):
            return 401, {}, {"error": "invalid_client"}
        grant = form.get("grant_type")
        if grant == "authorization_code" and form.get("code") in self.codes:
            self.codes.remove(form["code"])
        elif grant == "refresh_token" and form.get("refresh_token") in self.refresh_tokens:
            self.refresh_tokens.remove(form["refresh_token"])  # rotated: works once
        else:
            return 400, {}, {"error": "invalid_grant"}
        access = secrets.token_hex(16)
        self.access_tokens[access] = time.monotonic() + (self.lifetime or math.inf)
        answer = {
            "access_token": access,
            "token_type": "bearer",
            "expires_in": self.lifetime,
            "scope": self.scope,
        }
        if self.refresh:
            answer["refresh_token"] = secrets.token_hex(16)
            self.refresh_tokens.add(answer["refresh_token"])
        return 200, {}, answer

    def api(self, method: str, path: str, bearer: str) -> tuple[int, dict[str, str], object]:
        expiry = self.access_tokens.get(bearer)
        if expiry is None or expiry <= time.monotonic():
            return 401, {}, {"message": "Unauthorized"}
        if method == "GET" and path in ("/flows/find", "/flows"):
            return 200, {}, FLOW if path == "/flows/find" else [FLOW]
        if method == "POST" and path == "/flows/acme/main/sources":
            return 201, {}, {"id": 7, "name": "Helpdesk", "flow_token": secrets.token_hex(16)}
        return 404, {}, {"message": "Not found"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self, method: str) -> None:
                parts = urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                with server.lock:
                    if parts.path == "/oauth/authorize":
                        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                        status, headers, payload = server.authorize(query)
                    elif parts.path == "/oauth/token":
                        form = {k: v[0] for k, v in parse_qs(body).items()}
                        status, headers, payload = server.token(form)
                    elif method == "PUT" and parts.path == "/sources":
                        status, headers, payload = 200, {}, {}
                    else:
                        bearer = self.headers.get("Authorization", "").removeprefix("Bearer ")
                        status, headers, payload = server.api(method, parts.path, bearer)
                    server.requests.append((method, parts.path, status))
                data = json.dumps(payload).encode() if payload is not None else b""
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._answer("GET")

            def do_POST(self):
                self._answer("POST")

            def do_PUT(self):
                self._answer("PUT")

            def log_message(self, *args):
                pass

        return Handler
