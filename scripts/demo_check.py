"""``scripts/demo --check``: use the running demo as a newcomer would, through its pages,
and prove the ticket's thread reached the sandbox inbox.

Exits non-zero with the reason when a step fails.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import requests

TIMEOUT = 10


class CheckFailed(Exception):
    pass


def post_form(session: requests.Session, url: str, data: dict[str, str]) -> requests.Response:
    """GET the page for its CSRF cookie, then POST the form as a browser would."""
    session.get(url, timeout=TIMEOUT).raise_for_status()
    data = {"csrfmiddlewaretoken": session.cookies["csrftoken"], **data}
    response = session.post(url, data=data, headers={"Referer": url}, timeout=TIMEOUT)
    response.raise_for_status()
    return response


def wait_for(what: str, find: Callable[[], Any], seconds: float = 15.0) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = find()
        if found:
            return found
        time.sleep(0.2)
    raise CheckFailed(f"timed out after {seconds:.0f} s waiting for {what}")


def check(site: str, sandbox: str, username: str, password: str, flow_path: str) -> None:
    session = requests.Session()
    response = post_form(
        session, f"{site}/accounts/login/", {"username": username, "password": password}
    )
    if "/accounts/login/" in response.url:
        raise CheckFailed(f"could not log in to {site} as {username!r}")
    print(f"demo check: logged in to {site} as {username}")

    subject = f"Printer on fire ({uuid.uuid4().hex[:6]})"
    response = post_form(
        session,
        f"{site}/tickets/new/",
        {
            "subject": subject,
            "description": "Smoke is coming out of the <b>second-floor</b> printer.",
            "status": "open",
            "priority": "high",
            "assignee": "",
        },
    )
    match = re.search(r"/tickets/(\d+)/$", response.url)
    if match is None:
        raise CheckFailed(f"creating a ticket did not lead to its page (ended at {response.url})")
    thread_id = f"helpdesk.ticket:{match[1]}"
    print(f"demo check: created ticket {subject!r} at {response.url}")

    def thread() -> dict[str, Any] | None:
        threads = requests.get(f"{sandbox}/_sandbox/threads", timeout=TIMEOUT).json()
        return next((t for t in threads if t["external_thread_id"] == thread_id), None)

    found = wait_for(f"thread {thread_id} in the sandbox", thread)
    expected = {
        "title": subject,
        "status": {"value": "Open", "color": "green"},
        "external_url": response.url,
    }
    wrong = {key: found[key] for key, value in expected.items() if found[key] != value}
    if wrong:
        raise CheckFailed(f"thread {thread_id} arrived with {wrong}, expected {expected}")
    if "&lt;b&gt;second-floor&lt;/b&gt;" not in found["body"]:
        raise CheckFailed(f"the description arrived unescaped: {found['body']!r}")
    print(
        f"demo check: thread {thread_id} is in the sandbox inbox: {found['title']!r} (Open, green)"
    )

    post_form(
        session,
        f"{site}/tickets/{match[1]}/edit/",
        {
            "subject": subject,
            "description": "Smoke is coming out of the <b>second-floor</b> printer.",
            "status": "pending",
            "priority": "urgent",
            "assignee": "",
        },
    )
    pending = {"value": "Pending", "color": "yellow"}
    wait_for(
        f"thread {thread_id} to show the edit", lambda: (thread() or {}).get("status") == pending
    )
    print(f"demo check: edited the ticket; the thread now shows {pending}")

    post_form(session, f"{site}/tickets/{match[1]}/reply/", {"text": "On it, bringing water."})

    def discussion() -> list[dict[str, Any]]:
        return requests.get(
            f"{sandbox}/_sandbox/messages",
            params={"external_thread_id": thread_id, "event": "discussion"},
            timeout=TIMEOUT,
        ).json()

    reply = wait_for("the reply as a discussion in the thread", discussion)[0]
    if reply["author"].get("name") != username:
        raise CheckFailed(f"the reply's author arrived as {reply['author']}, expected {username}")
    print(f"demo check: reply arrived as a discussion by {reply['author']['name']}")

    # The other way: a reply typed in the thread's reply box in the sandbox inbox becomes
    # a reply on the ticket (manage.py flowdock_listen, started by scripts/demo).
    inbox = requests.Session()
    page = inbox.get(f"{sandbox}/app/{flow_path}", params={"thread": found["id"]}, timeout=TIMEOUT)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    if csrf is None:
        raise CheckFailed("the sandbox inbox has no reply box")
    # Link the sandbox's user to this site's user as a person would: press "Assign to
    # me" in the inbox, follow the sign-in link it answers with, confirm.
    actions = [a.get("name") for a in found.get("actions") or []]
    if "Assign to me" not in actions:
        raise CheckFailed(f"the thread offers no “Assign to me” (it offers {actions})")
    pressed = inbox.post(
        f"{sandbox}/app/{flow_path}/threads/{found['id']}/actions/{actions.index('Assign to me')}",
        data={"csrfmiddlewaretoken": csrf[1]},
        headers={"Referer": page.url, "Accept": "application/json"},
        timeout=TIMEOUT,
    ).json()
    if pressed.get("sign_in_url"):
        post_form(session, pressed["sign_in_url"], {})
        print("demo check: linked the sandbox's Flowdock user to this site's user")
    elif pressed.get("kind") == "ok":  # linked by an earlier run of the demo
        print("demo check: the sandbox's Flowdock user was already linked; the ticket is theirs")
    else:
        raise CheckFailed(f"pressing “Assign to me” gave {pressed}")

    chat = f"Water is on its way ({uuid.uuid4().hex[:6]})"
    inbox.post(
        f"{sandbox}/app/{flow_path}/threads/{found['id']}/reply",
        data={"content": chat, "csrfmiddlewaretoken": csrf[1]},
        headers={"Referer": page.url},
        timeout=TIMEOUT,
    ).raise_for_status()
    ticket_page = f"{site}/tickets/{match[1]}/"

    def ticket_page_with_chat() -> str | None:
        text = session.get(ticket_page, timeout=TIMEOUT).text
        return text if chat in text else None

    page_text = wait_for("the chat reply on the ticket's page", ticket_page_with_chat)
    # The reply's own author line is the last one before its text.
    before = page_text[: page_text.index(chat)]
    author_line = before[before.rindex('class="muted">') :].split("<", 1)[0]
    if not author_line.removeprefix('class="muted">').startswith(f"{username} "):
        raise CheckFailed(f"the chat reply is not shown as written by {username}: {author_line!r}")
    print(f"demo check: a reply typed in the sandbox inbox appeared on the ticket by {username}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--site", required=True, help="The example project's URL.")
    parser.add_argument("--sandbox", required=True, help="The sandbox's URL.")
    parser.add_argument("--username", default="admin")
    parser.add_argument("--password", default="admin")
    parser.add_argument("--flow-path", default="acme/main", help="The sandbox flow's path.")
    args = parser.parse_args()
    try:
        check(
            args.site.rstrip("/"),
            args.sandbox.rstrip("/"),
            args.username,
            args.password,
            args.flow_path,
        )
    except (CheckFailed, requests.RequestException) as error:
        print(f"demo check FAILED: {error}", file=sys.stderr)
        return 1
    print("demo check: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
