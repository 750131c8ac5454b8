"""The inbox in a real browser: status colours, fields, and an UpdateAction round trip."""

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import jwt
import pytest
import requests

from tests.screenshots import screenshot_path

pytestmark = [
    pytest.mark.browser,
]


@pytest.fixture
def action_endpoint():
    """A tiny integration endpoint on 127.0.0.1 that records what it receives."""
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"path": self.path, "headers": dict(self.headers), "body": body})
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"Assigned to Sandbox User")

        def log_message(self, format, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", received
    server.shutdown()
    server.server_close()
    thread.join()


def test_update_action_sends_a_verifiable_flowdock_token(
    sandbox, message, action_endpoint, browser_page
):
    endpoint, received = action_endpoint
    assign = {
        "@type": "UpdateAction",
        "name": "Assign to me",
        "target": {"@type": "EntryPoint", "urlTemplate": f"{endpoint}/actions/assign/1234567"},
    }
    message["thread"]["actions"] = [
        {"@type": "ViewAction", "name": "Diff", "url": "https://example.com/diff/1"},
        assign,
    ]
    message["thread"]["fields"].append({"label": "Assignee", "value": "nobody"})
    other = {
        **message,
        "external_thread_id": "7654321",
        "thread": {
            "title": "Install the Mr. Fusion",
            "status": {"value": "blocked", "color": "red"},
            "fields": [{"label": "Owner", "value": "Doc"}],
            "body": "<p>Waiting for <strong>parts</strong>.</p>",
        },
    }
    discussion = {
        "flow_token": sandbox.flow_token,
        "event": "discussion",
        "author": {"name": "Doc"},
        "title": "commented",
        "body": "<p>Use the <em>good</em> polish, Marty.</p>",
        "external_thread_id": "1234567",
        "thread": message["thread"],
    }
    for payload in (message, other, discussion):
        response = requests.post(f"{sandbox.url}/messages", json=payload, timeout=10)
        assert response.status_code == 202, response.text

    page = browser_page
    page.goto(sandbox.credentials["flow"]["web_url"])
    thread = page.locator("article.thread", has_text="Polish the flux capacitor")
    badge = thread.locator(".status")
    assert badge.get_attribute("data-status-color") == "green"
    assert badge.inner_text() == "open"
    assert badge.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(48, 164, 108)"
    assert thread.locator('tr.field[data-label="Dustiness"] td').inner_text() == "5 - severe"
    assert thread.locator("a.view-action").get_attribute("href") == "https://example.com/diff/1"
    page.screenshot(path=str(screenshot_path("sandbox-inbox.png")), full_page=True)

    thread.locator("button.update-action", has_text="Assign to me").click()
    page.wait_for_load_state()

    [request] = received
    assert request["path"] == "/actions/assign/1234567"
    body = json.loads(request["body"])
    assert body["name"] == "Assign to me"
    assert body["target"]["urlTemplate"] == assign["target"]["urlTemplate"]
    assert body["agent"] == {"@type": "Person", "name": "Sandbox User", "image": ""}
    assert request["headers"]["Content-Type"] == "application/json"
    claims = jwt.decode(
        request["headers"]["FLOWDOCK-TOKEN"],
        sandbox.client_secret,
        algorithms=["HS256"],
        options={"require": ["exp", "sub", "signature"]},
    )
    assert claims["sub"] == str(sandbox.credentials["user"]["id"])
    assert hmac.compare_digest(claims["signature"], hashlib.sha256(request["body"]).hexdigest())
    result = page.locator("article.thread", has_text="Polish the flux capacitor").locator(
        ".action-result"
    )
    assert "Assigned to Sandbox User" in result.inner_text()
    assert result.get_attribute("data-status-code") == "200"


def test_sign_in_challenge_is_shown_as_a_link(sandbox, message, browser_page):
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(401)
            self.send_header(
                "WWW-Authenticate", "Flowdock-Token url=https://app.example/authenticate?claim=c1"
            )
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        message["thread"]["actions"] = [
            {
                "@type": "UpdateAction",
                "name": "Close",
                "target": {
                    "@type": "EntryPoint",
                    "urlTemplate": f"http://127.0.0.1:{server.server_port}/close",
                    "httpMethod": "POST",
                },
            }
        ]
        requests.post(f"{sandbox.url}/messages", json=message, timeout=10).raise_for_status()
        page = browser_page
        page.goto(sandbox.credentials["flow"]["web_url"])
        page.locator("button.update-action", has_text="Close").click()
        page.wait_for_load_state()

        link = page.locator("a.sign-in-link")
        assert link.get_attribute("href") == "https://app.example/authenticate?claim=c1"
        assert len(received) == 1
    finally:
        server.shutdown()
        server.server_close()
