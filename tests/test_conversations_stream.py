"""The stream is read with requests, like every other call: through the proxy the
environment names, and parsed as it arrives, whatever the chunks."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler

import pytest
import requests

from django_flowdock.conversations.listener import Flow, FlowReader, connected_flows, events
from django_flowdock.conversations.models import FlowCursor
from tests.conversations_api import FlowdockStandIn, connect
from tests.local_api import LocalServer

pytestmark = pytest.mark.django_db(transaction=True)


class RecordingProxy(LocalServer):
    """A plain-HTTP forward proxy that answers every request itself with one
    Event-Stream message, and records the request lines it was sent."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                proxy.lines.append(self.requestline)
                body = f"id: 5\ndata: {json.dumps({'id': 5, 'event': 'message'})}\n\n".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        super().__init__(Handler)


@pytest.fixture
def stand_in(settings):
    server = FlowdockStandIn()
    settings.FLOWDOCK = {**settings.FLOWDOCK, "API_URL": server.url}
    yield server
    server.stop()


def test_the_stream_goes_through_the_proxy_named_by_the_environment(stand_in, monkeypatch):
    connect(stand_in, "acme/main")
    [flow] = connected_flows()
    FlowCursor.objects.create(flow_id=flow.flow_id, last_message_id=0)
    proxy = RecordingProxy()
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    try:
        FlowReader(flow).stream()
    finally:
        proxy.stop()

    assert proxy.lines == [f"GET {stand_in.url}/stream/flows/acme/main HTTP/1.1"]
    assert FlowCursor.objects.get().last_message_id == 5  # its message was read


def test_events_are_parsed_whatever_the_chunks():
    stream = (
        b": keep-alive\n\n"
        b'id: 1\ndata: {"id": 1,\ndata:  "text": "h\xc3\xa9"}\n\n'
        b'id: 2\r\ndata: {"id": 2}\r\n\r\n'
    )
    chunks = [stream[i : i + 3] for i in range(0, len(stream), 3)]

    assert list(events(iter(chunks))) == [{"id": 1, "text": "hé"}, {"id": 2}]


def test_stopping_a_reader_whose_stream_just_closed_is_harmless(sandbox):
    reader = FlowReader(Flow("flow", "acme/main", sandbox.url, token_id=0))
    response = requests.get(f"{sandbox.url}/_sandbox/faults", stream=True, timeout=5)
    response.close()  # what a stream that ended leaves behind, still referenced
    reader.response = response
    reader.stop()  # stopped twice by a worker: once by its signal, once on its way out
    reader.stop()
    assert reader.stopping.is_set()
