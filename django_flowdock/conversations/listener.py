"""Reading the connected flows: a catch-up pass through the REST API, then the
Streaming API, resumed from the flow's cursor after every disconnect or restart.

Each flow is read by one thread with the OAuth token of one of its sources (scope
``flow``). Every message is applied in its own transaction with the cursor (see
:mod:`.replies`), so a listener killed at any point loses nothing and applies nothing
twice when it starts again.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from django.db import close_old_connections, connections

from django_flowdock.api.client import FlowdockClient
from django_flowdock.conf import flowdock_settings
from django_flowdock.conversations.models import FlowCursor
from django_flowdock.conversations.replies import receive
from django_flowdock.delivery.engine import backoff
from django_flowdock.models import Source

logger = logging.getLogger("django_flowdock.conversations")

#: Messages asked for per REST page (the API's maximum).
PAGE = 100
#: Seconds without a byte (Flowdock sends keep-alives) before the stream is reopened.
STREAM_IDLE_TIMEOUT = 60.0
HOSTED_API = "https://api.flowdock.com"
HOSTED_STREAM = "https://stream.flowdock.com"


@dataclass
class Flow:
    """One flow to read: its id and ``org/flow`` path, the sources shown in it, and
    the token it is read with."""

    flow_id: str
    path: str
    api_url: str
    access_token: str = field(repr=False)
    source_ids: list[int] = field(default_factory=list)


def connected_flows() -> list[Flow]:
    """The flows of active sources whose OAuth token has the scope ``flow``."""
    flows: dict[str, Flow] = {}
    sources = (
        Source.objects.filter(active=True, token__isnull=False)
        .exclude(flow_id="")
        .select_related("token", "application")
        .order_by("pk")
    )
    for source in sources:
        token = source.token
        if token is None:  # the query asks for sources with a token
            continue
        flow = flows.get(source.flow_id)
        if flow is not None:
            flow.source_ids.append(source.pk)
            continue
        scopes = set(token.scope.replace(",", " ").split())
        if scopes and "flow" not in scopes:
            logger.warning(
                "Source %s: its OAuth token lacks the scope 'flow' (has %s); its flow is "
                "not read. Connect the flow again with 'flow' in OAUTH_SCOPES.",
                source.pk,
                token.scope,
            )
            continue
        if not source.flow_path:
            logger.warning("Source %s has no flow path; its flow is not read.", source.pk)
            continue
        api_url = source.get_api_url()
        flows[source.flow_id] = Flow(
            source.flow_id,
            source.flow_path.strip("/"),
            api_url.rstrip("/"),
            token.access_token,
            [source.pk],
        )
    return list(flows.values())


def _authorization(flow: Flow) -> dict[str, str]:
    return {"Authorization": f"Bearer {flow.access_token}"}


def _messages_path(flow: Flow) -> str:
    organization, _, name = flow.path.partition("/")
    return f"/flows/{quote(organization)}/{quote(name)}/messages"


def cursor_of(flow: Flow, client: FlowdockClient) -> int:
    """The flow's cursor; on the very first read, the flow's latest message (history
    from before conversations were set up is not imported)."""
    found = FlowCursor.objects.filter(flow_id=flow.flow_id).values_list(
        "last_message_id", flat=True
    )
    if found:
        return found[0]
    latest = client.request(
        "GET", _messages_path(flow), params={"limit": 1}, headers=_authorization(flow)
    ).json()
    start = max((int(item["id"]) for item in latest), default=0)
    cursor, _ = FlowCursor.objects.get_or_create(
        flow_id=flow.flow_id, defaults={"last_message_id": start}
    )
    return cursor.last_message_id


def catch_up_flow(flow: Flow, client: FlowdockClient | None = None) -> int:
    """Apply the flow's messages after its cursor, a page at a time; return how many
    were read."""
    client = client or FlowdockClient(flow.api_url)
    read = 0
    while True:
        since = cursor_of(flow, client)
        page = client.request(
            "GET",
            _messages_path(flow),
            params={"since_id": since, "sort": "asc", "limit": PAGE},
            headers=_authorization(flow),
        ).json()
        for data in page:
            receive(flow.flow_id, flow.source_ids, data)
        read += len(page)
        if len(page) < PAGE:
            return read


def catch_up() -> int:
    """One catch-up pass over every connected flow, for a periodic Celery or Django
    Tasks task; returns how many messages were read. Errors propagate (let the task
    queue retry)."""
    return sum(catch_up_flow(flow) for flow in connected_flows())


def stream_url(flow: Flow) -> str:
    base = flowdock_settings.STREAM_URL
    if not base:
        base = HOSTED_STREAM if flow.api_url == HOSTED_API else f"{flow.api_url}/stream"
    organization, _, name = flow.path.partition("/")
    return f"{base.rstrip('/')}/flows/{quote(organization)}/{quote(name)}"


def events(response: http.client.HTTPResponse) -> Iterator[dict[str, Any]]:
    """The messages of an Event-Stream (keep-alive comments skipped)."""
    data: list[str] = []
    while True:
        line = response.readline()
        if not line:
            return  # the server closed the stream
        text = line.decode("utf-8").rstrip("\r\n")
        if not text:
            if data:
                yield json.loads("\n".join(data))
            data = []
        elif text.startswith("data:"):
            data.append(text[5:].removeprefix(" "))


class StreamError(Exception):
    pass


class FlowReader:
    """Reads one flow until stopped: catch up, stream, back off after an error."""

    def __init__(self, flow: Flow, stopping: threading.Event) -> None:
        self.flow = flow
        self.stopping = stopping
        #: The open stream's socket (http.client lets go of it once the response is
        #: read until the server closes), for :meth:`interrupt`.
        self.socket: socket.socket | None = None
        self.failures = 0

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                try:
                    close_old_connections()
                    catch_up_flow(self.flow)
                    self.stream()
                except Exception as exc:
                    if self.stopping.is_set():
                        break
                    self.failures += 1
                    delay = max(1.0, backoff(self.failures))
                    logger.warning(
                        "Reading flow %s failed (%s); again in %.1fs", self.flow.path, exc, delay
                    )
                    self.stopping.wait(delay)
        finally:
            connections.close_all()

    def stream(self) -> None:
        """Read the flow's stream from its cursor until it ends or fails."""
        url = urlsplit(stream_url(self.flow))
        connection_class = (
            http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        )
        connection = connection_class(url.hostname or "", url.port, timeout=STREAM_IDLE_TIMEOUT)
        try:
            connection.connect()
            self.socket = connection.sock
            if self.stopping.is_set():
                return
            since = FlowCursor.objects.get(flow_id=self.flow.flow_id).last_message_id
            connection.request(
                "GET",
                url.path,
                headers={
                    **_authorization(self.flow),
                    "Accept": "text/event-stream",
                    "Last-Event-ID": str(since),
                    "User-Agent": "django-flowdock",
                },
            )
            response = connection.getresponse()
            if response.status != 200:
                raise StreamError(f"the stream answered {response.status}")
            logger.info("Streaming flow %s after message %s", self.flow.path, since)
            self.failures = 0
            for data in events(response):
                if "id" in data:
                    receive(self.flow.flow_id, self.flow.source_ids, data)
        finally:
            self.socket = None
            connection.close()

    def interrupt(self) -> None:
        """Unblock a stream waiting for its next line (called from another thread)."""
        sock = self.socket
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class Listener:
    """Reads every connected flow, one thread each, until :meth:`stop`."""

    def __init__(self, flows: Callable[[], list[Flow]] = connected_flows) -> None:
        self.flows = flows
        self.stopping = threading.Event()
        self.readers: list[FlowReader] = []

    def stop(self) -> None:
        self.stopping.set()
        for reader in self.readers:
            reader.interrupt()

    def run(self) -> None:
        flows = self.flows()
        close_old_connections()
        if not flows:
            logger.warning(
                "No flow to read: no active source has an OAuth token with the scope 'flow'."
            )
        self.readers = [FlowReader(flow, self.stopping) for flow in flows]
        threads = [
            threading.Thread(target=reader.run, name=f"flowdock-listen-{reader.flow.path}")
            for reader in self.readers
        ]
        for thread in threads:
            thread.daemon = True
            thread.start()
        # Join with a timeout so the main thread keeps handling signals.
        while any(thread.is_alive() for thread in threads):
            for thread in threads:
                thread.join(timeout=0.2)
