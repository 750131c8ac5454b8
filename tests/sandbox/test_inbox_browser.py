"""The inbox in a real browser: live updates from the stream, status colours, fields,
attachments, long bodies, and an UpdateAction round trip."""

import base64
import hashlib
import hmac
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import jwt
import pytest
import requests

from tests.sandbox.images import png
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


def post(sandbox, payload, **kwargs):
    response = requests.post(f"{sandbox.url}/messages", timeout=10, **kwargs, json=payload)
    assert response.status_code == 202, response.text


def open_inbox(page, sandbox):
    """Open the inbox and wait until its stream is connected."""
    page.goto(sandbox.credentials["flow"]["web_url"])
    page.locator('#live-state[data-state="live"]').wait_for()
    # Set on the page itself: a reload would lose it.
    page.evaluate("window.loadedOnce = true")


def not_reloaded(page):
    return page.evaluate("window.loadedOnce === true")


def test_new_thread_and_status_change_appear_in_an_open_inbox_without_reload(
    sandbox, message, browser_page
):
    from playwright.sync_api import expect

    page = browser_page
    post(sandbox, message)
    open_inbox(page, sandbox)
    polish = page.locator(".thread-item", has_text="Polish the flux capacitor")
    expect(polish.locator(".status")).to_have_text("open")

    post(
        sandbox,
        {
            **message,
            "external_thread_id": "7654321",
            "title": "created ticket",
            "thread": {
                "title": "Install the Mr. Fusion",
                "status": {"value": "blocked", "color": "red"},
            },
        },
    )
    fusion = page.locator(".thread-item", has_text="Install the Mr. Fusion")
    expect(fusion).to_be_visible(timeout=5_000)
    expect(fusion).to_have_class("thread-item unread")
    assert (
        fusion.locator(".status").evaluate("e => getComputedStyle(e).backgroundColor")
        == "rgb(229, 72, 77)"
    )

    message["thread"]["status"] = {"value": "closed", "color": "grey"}
    post(sandbox, message)
    expect(polish.locator(".status")).to_have_text("closed", timeout=5_000)
    expect(page.locator("article.thread .status")).to_have_attribute("data-status-color", "grey")
    expect(page.locator("article.thread li.message")).to_have_count(2)
    assert not_reloaded(page)
    page.screenshot(path=str(screenshot_path("sandbox-inbox.png")), full_page=True)

    fusion.click()
    expect(page.locator("article.thread .thread-title")).to_have_text("Install the Mr. Fusion")
    expect(fusion).not_to_have_class("thread-item unread")
    assert not_reloaded(page)


def test_long_bodies_start_collapsed_and_expand(sandbox, message, browser_page):
    from playwright.sync_api import expect

    message["thread"]["body"] = "".join(f"<p>Paragraph {n} of the manual.</p>" for n in range(60))
    post(sandbox, message)
    page = browser_page
    open_inbox(page, sandbox)
    body = page.locator("article.thread .thread-body")

    assert body.evaluate("e => e.getBoundingClientRect().height") < 260
    page.locator("article.thread .toggle-body").click()
    expect(body).not_to_have_class("body thread-body collapsible collapsed")
    assert body.evaluate("e => e.getBoundingClientRect().height") > 1000


def test_a_title_shows_the_same_text_in_the_thread_list_and_the_thread(
    sandbox, message, browser_page
):
    # Escaped as django-flowdock escapes user text: the title holds "<b>" as text.
    message["thread"]["title"] = "Polish the &lt;b&gt;flux&lt;/b&gt; capacitor &amp; more"
    message["thread"]["fields"] = [{"label": "&lt;em&gt;Dust&lt;/em&gt;", "value": "5"}]
    post(sandbox, message)
    page = browser_page
    open_inbox(page, sandbox)

    shown = "Polish the <b>flux</b> capacitor & more"
    assert page.locator(".thread-item .item-title").inner_text() == shown
    assert page.locator("article.thread .thread-title").inner_text() == shown
    assert page.locator("article.thread tr.field th").inner_text() == "<em>Dust</em>"


def test_image_attachment_renders_inline_and_through_cid(sandbox, message, browser_page):
    from playwright.sync_api import expect

    image = png()
    message["thread"]["body"] = '<p>Before and after:</p><img src="cid:after">'
    message["attachments"] = [
        {
            "content_id": "after",
            "file_name": "after.png",
            "content_type": "image/png",
            "data": base64.b64encode(image).decode(),
        }
    ]
    post(sandbox, message)
    page = browser_page
    open_inbox(page, sandbox)

    inline = page.locator("article.thread .thread-body img")
    expect(inline).to_have_attribute("src", stored_png_url("after.png"))
    assert inline.evaluate("e => e.complete && e.naturalWidth") == 24
    attached = page.locator("article.thread img.attachment-image")
    assert attached.evaluate("e => e.complete && e.naturalWidth") == 24
    page.locator("article.thread").screenshot(path=str(screenshot_path("sandbox-attachment.png")))
    stored = requests.get(f"{sandbox.url}{attached.get_attribute('src')}", timeout=10)
    assert stored.content == image
    assert stored.headers["Content-Type"] == "image/png"


def stored_png_url(name):
    return re.compile(rf"^/storage/[0-9a-f]{{32}}/{re.escape(name)}$")


def test_update_action_sends_a_verifiable_flowdock_token_and_says_what_happened(
    sandbox, message, action_endpoint, browser_page
):
    from playwright.sync_api import expect

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
    post(sandbox, message)

    page = browser_page
    open_inbox(page, sandbox)
    thread = page.locator("article.thread", has_text="Polish the flux capacitor")
    badge = thread.locator(".status")
    assert badge.get_attribute("data-status-color") == "green"
    assert badge.inner_text() == "open"
    assert badge.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(48, 164, 108)"
    assert thread.locator('tr.field[data-label="Dustiness"] td').inner_text() == "5 - severe"
    assert thread.locator("a.view-action").get_attribute("href") == "https://example.com/diff/1"

    thread.locator("button.update-action", has_text="Assign to me").click()
    result = thread.locator(".action-result")
    expect(result).to_have_text("Assign to me: Assigned to Sandbox User")
    assert result.get_attribute("data-status-code") == "200"
    # Read, then gone: the notice leaves by itself.
    expect(result).to_have_count(0, timeout=12_000)
    assert not_reloaded(page)

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
        open_inbox(page, sandbox)
        page.locator("button.update-action", has_text="Close").click()

        link = page.locator("a.sign-in-link")
        link.wait_for()
        assert link.get_attribute("href") == "https://app.example/authenticate?claim=c1"
        assert link.inner_text() == "Sign in to My Integration to use “Close”."
        assert len(received) == 1
    finally:
        server.shutdown()
        server.server_close()
