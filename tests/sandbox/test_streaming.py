"""The Streaming API: JSON stream and Event-Stream, held open, delivering new messages
within seconds, without holding up other requests."""

import base64
import http.client
import json
from urllib.parse import urlencode, urlsplit

import pytest
import requests


@pytest.fixture
def stream(sandbox, api_auth):
    """``stream(path, params=..., headers=...)``: an open stream's HTTP response, read
    line by line with ``next_data``; a line that takes over 5 s fails the test."""
    host, port = urlsplit(sandbox.url).hostname, urlsplit(sandbox.url).port
    credentials = base64.b64encode(f"{api_auth[0]}:".encode()).decode()
    opened = []

    def open_stream(path, params=None, headers=None):
        connection = http.client.HTTPConnection(host, port, timeout=5)
        opened.append(connection)
        target = f"{path}?{urlencode(params)}" if params else path
        connection.request(
            "GET", target, headers={"Authorization": f"Basic {credentials}", **(headers or {})}
        )
        return connection.getresponse()

    yield open_stream
    for connection in opened:
        connection.close()


def next_data(response, prefix=b""):
    """The next non-empty line starting with ``prefix``, without it."""
    while True:
        line = response.readline()
        assert line, "the stream ended"
        line = line.strip()
        if line and line.startswith(prefix):
            return line.removeprefix(prefix)


def post_chat(sandbox, api_auth, content):
    response = requests.post(
        f"{sandbox.url}/messages",
        auth=api_auth,
        json={"flow": sandbox.credentials["flow"]["id"], "event": "message", "content": content},
        timeout=10,
    )
    assert response.status_code == 201
    return response.json()


def test_json_stream_delivers_a_message_posted_after_connecting(sandbox, api_auth, stream):
    response = stream("/stream/flows", params={"filter": "acme/main"})
    assert response.status == 200
    assert response.getheader("Content-Type").startswith("application/json")

    sent = post_chat(sandbox, api_auth, "Great Scott!")

    received = json.loads(next_data(response))
    assert received["id"] == sent["id"]
    assert received["content"] == "Great Scott!"


def test_event_stream_sends_events_with_the_message_id(sandbox, api_auth, stream):
    response = stream("/stream/flows/acme/main", headers={"Accept": "text/event-stream"})
    assert response.getheader("Content-Type") == "text/event-stream"

    sent = post_chat(sandbox, api_auth, "1.21 gigawatts")

    assert next_data(response, b"id: ") == str(sent["id"]).encode()
    assert json.loads(next_data(response, b"data: "))["content"] == "1.21 gigawatts"


def test_event_stream_resumes_after_last_event_id(sandbox, api_auth, stream):
    first = post_chat(sandbox, api_auth, "missed one")
    second = post_chat(sandbox, api_auth, "missed two")

    response = stream(
        "/stream/flows",
        params={"filter": sandbox.credentials["flow"]["id"], "accept": "text/event-stream"},
        headers={"Last-Event-ID": str(first["id"] - 1)},
    )

    assert [json.loads(next_data(response, b"data: "))["id"] for _ in range(2)] == [
        first["id"],
        second["id"],
    ]


def test_inbox_messages_reach_the_stream_with_their_thread(sandbox, message, stream):
    response = stream("/stream/flows", params={"filter": "acme/main"})

    requests.post(f"{sandbox.url}/messages", json=message, timeout=10).raise_for_status()

    received = json.loads(next_data(response))
    assert received["event"] == "activity"
    assert received["thread"]["title"] == "Polish the flux capacitor"
    assert received["thread"]["source"]["application"] == "My Integration"


def test_open_streams_do_not_hold_up_other_requests(sandbox, api_auth, stream):
    for _ in range(4):
        stream("/stream/flows", params={"filter": "acme/main"})

    response = requests.get(f"{sandbox.url}/flows", auth=api_auth, timeout=5)

    assert response.status_code == 200


def test_stream_without_filter_or_user_is_a_validation_error(sandbox, api_auth):
    response = requests.get(f"{sandbox.url}/stream/flows", auth=api_auth, timeout=10)

    assert response.status_code == 400
    assert response.json()["errors"] == {"filter": ["can't be blank"]}


def test_stream_of_an_unknown_flow_is_404(sandbox, api_auth):
    response = requests.get(
        f"{sandbox.url}/stream/flows", params={"filter": "acme/nope"}, auth=api_auth, timeout=10
    )

    assert response.status_code == 404


def test_stream_needs_credentials(sandbox):
    response = requests.get(
        f"{sandbox.url}/stream/flows", params={"filter": "acme/main"}, timeout=10
    )

    assert response.status_code == 401
