"""Flowdock's own Node client and a Python client from PyPI, pointed at the sandbox.

Both are installed by the test itself into ``.cache/`` (ignored by git); the tests
skip, saying why, only when the package registry or its client is out of reach.
"""

import fcntl
import json
import os
import shutil
import subprocess
import sys
import textwrap
from contextlib import contextmanager
from pathlib import Path

import pytest

CACHE = Path(__file__).resolve().parents[2] / ".cache"
NODE_FLOWDOCK = CACHE / "node-flowdock"
API_WRAPPER = CACHE / "flowdock-api-wrapper"
CLIENT_SCRIPT = Path(__file__).parent / "clients" / "node_flowdock.js"
NPM_INSTALL = ["npm", "install", "--no-audit", "--no-fund", "--prefix"]
PIP_INSTALL = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target"]


@contextmanager
def install_lock(name):
    """One installer at a time across pytest-xdist workers."""
    CACHE.mkdir(exist_ok=True)
    with open(CACHE / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def installed_version(package_json):
    try:
        return json.loads(package_json.read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


@pytest.fixture(scope="session")
def node_flowdock():
    """node-flowdock 0.9.1 from npm, in .cache/node-flowdock."""
    if not shutil.which("node") or not shutil.which("npm"):
        pytest.skip("node and npm are not installed: cannot run node-flowdock")
    package = NODE_FLOWDOCK / "node_modules" / "flowdock" / "package.json"
    with install_lock("node-flowdock"):
        if installed_version(package) != "0.9.1":
            NODE_FLOWDOCK.mkdir(parents=True, exist_ok=True)
            result = subprocess.run(
                [*NPM_INSTALL, str(NODE_FLOWDOCK), "flowdock@0.9.1"],
                capture_output=True,
                text=True,
                timeout=300,
            )
            if result.returncode != 0:
                pytest.skip(f"npm could not install flowdock@0.9.1:\n{result.stderr[-2000:]}")
    return NODE_FLOWDOCK / "node_modules"


@pytest.fixture(scope="session")
def api_wrapper():
    """flowdock-api-wrapper 1.1 from PyPI, in .cache/flowdock-api-wrapper."""
    with install_lock("flowdock-api-wrapper"):
        if not (API_WRAPPER / "flowdock.py").exists():
            result = subprocess.run(
                [*PIP_INSTALL, str(API_WRAPPER), "flowdock-api-wrapper==1.1"],
                capture_output=True,
                text=True,
                timeout=300,
            )
            if result.returncode != 0:
                pytest.skip(f"pip could not install flowdock-api-wrapper:\n{result.stderr[-2000:]}")
    return API_WRAPPER


def test_node_flowdock_posts_messages_comments_statuses_streams_and_activities(
    sandbox, node_flowdock
):
    flow_id = sandbox.credentials["flow"]["id"]
    env = {
        **os.environ,
        "NODE_PATH": str(node_flowdock),
        "FLOWDOCK_API_URL": sandbox.url,
        "FLOWDOCK_STREAM_URL": f"{sandbox.url}/stream/flows",
        "SANDBOX_API_TOKEN": sandbox.credentials["user"]["api_token"],
        "SANDBOX_FLOW_ID": flow_id,
        "SANDBOX_FLOW_TOKEN": sandbox.flow_token,
    }

    result = subprocess.run(
        ["node", str(CLIENT_SCRIPT)], capture_output=True, text=True, timeout=60, env=env
    )

    report = json.loads(result.stdout or "{}")
    assert result.returncode == 0, (report.get("failure"), result.stderr[-2000:])
    assert report["errors"] == []
    assert report["flows"] == [flow_id]
    message, threaded = report["message"], report["threadMessage"]
    assert message["content"] == "Hello from node-flowdock"
    assert "node" in message["tags"]
    assert threaded["thread_id"] == message["thread_id"]
    assert report["comment"]["content"] == {
        "title": "Hello from node-flowdock",
        "text": "A comment",
    }
    assert report["status"]["event"] == "status"
    assert report["stream"]["event"] == "message"
    assert report["stream"]["reconnects"] == 0
    assert report["stream"]["seconds"] < 5
    # Session.post() with a flow token: the token wins over Session's Basic header.
    assert report["integrationPost"] == report["anonymousPost"] == {}
    created, updated = sandbox.messages(event="activity")
    assert (created["title"], updated["title"]) == ("created item", "updated item")
    assert created["source_id"] == updated["source_id"] == sandbox.credentials["source"]["id"]
    assert created["thread_id"] == updated["thread_id"]


README_EXAMPLE = """
import threading

import flowdock

# The only change to the README's examples: the base URLs.
flowdock.API = {url!r}
flowdock.STREAM = {url!r} + "/stream"
TOKEN, FLOW_TOKEN = {token!r}, {flow_token!r}

# Create chatbots
flow = flowdock.connect(token=TOKEN, org='acme', flow='main')
msg = flow.send('Message')  # send a message
thread = flow.thread(msg['thread']['id'])
reply = thread.send('Reply')  # reply the message
# The README indexes the list itself ("flow.list(limit=1)['content']"), which fails
# against any Flowdock: the API answers a list. Its first item is meant.
assert flow.list(limit=1)[0]['content'] == 'Reply'

# Integrate external services
from flowdock import constructors as new
apua = new.author('Apua', avatar='http://gravatar.com/apua.jpg')
item = new.thread(
    'Item 42',
    external_url = 'https://external.service/item/42',
    body = '<strong>The detail of Item 01</strong>',
    fields = [
        new.field(label='Project', value='F.A.W.'),
        new.field(label='<em>Creator</em>', value='<em>Apua</em>'),
    ],
    status = new.status(color='green', value='WIP'),
)
service = flowdock.connect(flow_token=FLOW_TOKEN)  # the README misspells it "serivce"
# The README passes the item as the fourth argument, which is ``body``: it would post a
# discussion whose body is an object and that has no thread, which no Flowdock takes.
# ``thread=`` is what it means.
service.present('42', apua, 'created item 42', thread=item)

# Monitor Flowdock flows
events = []
listener = threading.Thread(target=lambda: events.append(next(flow.events())), daemon=True)
listener.start()
while not events:
    flow.send('New message!!')
    listener.join(timeout=1)
ev = events[0]
assert ev['content'] == 'New message!!'
print("ok")
"""


def test_flowdock_api_wrapper_readme_example_runs(sandbox, api_wrapper):
    script = README_EXAMPLE.format(
        url=sandbox.url,
        token=sandbox.credentials["user"]["api_token"],
        flow_token=sandbox.flow_token,
    )
    env = {**os.environ, "PYTHONPATH": str(api_wrapper)}

    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "ok"
    [thread] = [t for t in sandbox.threads() if t["title"] == "Item 42"]
    assert thread["status"] == {"value": "WIP", "color": "green"}
    assert thread["fields"][1] == {"label": "<em>Creator</em>", "value": "<em>Apua</em>"}
