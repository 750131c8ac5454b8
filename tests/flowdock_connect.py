"""Helpers for the connect-a-flow tests: answer the sandbox's consent page over HTTP,
drive chromium, keep screenshots for the docs."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urlsplit

import requests

from tests.screenshots import screenshot_path

HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')


def consent(authorize_url: str, decision: str = "allow") -> dict[str, str]:
    """Open the sandbox's consent page, press Allow or Deny, and return the query
    Flowdock sends to the callback (``code``/``error`` and ``state``)."""
    with requests.Session() as browser:
        page = browser.get(authorize_url, timeout=10)
        assert page.status_code == 200, page.text
        form = {name: html.unescape(value) for name, value in HIDDEN.findall(page.text)}
        answer = browser.post(
            authorize_url.split("?")[0],
            data={**form, "decision": decision},
            allow_redirects=False,
            timeout=10,
        )
    assert answer.status_code == 302, answer.text
    query = parse_qs(urlsplit(answer.headers["Location"]).query)
    return {name: values[0] for name, values in query.items()}


def start(client, url: str) -> str:
    """GET one of our entry points; return the sandbox authorize URL it redirects to."""
    response = client.get(url)
    assert response.status_code == 302, response.content
    return response["Location"]


def screenshot(page, name: str) -> None:
    """Save a screenshot for docs/connecting-flows.md."""
    page.screenshot(path=str(screenshot_path(f"connect-{name}.png")), full_page=True)


def admin_login(page, base_url: str, username: str, password: str) -> None:
    page.goto(f"{base_url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_url(f"{base_url}/admin/")
