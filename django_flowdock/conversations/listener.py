"""Reading the connected flows: a catch-up pass through the REST API, then the
Streaming API, resumed from the flow's cursor after every disconnect or restart.

Each flow is read by one thread with the OAuth grant of one of its sources (scope
``flow``), through the accessor that refreshes it (:func:`.oauth.access_token`), and
refreshed once more when Flowdock answers ``401``. The listener reads the connected
sources again every ``FLOW_REFRESH`` seconds, so flows connected, deactivated or
removed while it runs are followed without a restart. Every message is applied in its
own transaction with the cursor (see :mod:`.replies`), so a listener killed at any
point loses nothing and applies nothing twice when it starts again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, close_old_connections, connections

from django_flowdock.api import oauth
from django_flowdock.api.client import FlowdockClient
from django_flowdock.conf import flowdock_settings
from django_flowdock.conversations.identity import learn_from_own_message
from django_flowdock.conversations.leases import FlowLeases
from django_flowdock.conversations.models import FlowCursor
from django_flowdock.conversations.replies import receive, retry_due
from django_flowdock.delivery.engine import backoff
from django_flowdock.delivery.leases import Lease
from django_flowdock.exceptions import FlowdockError, FlowdockOAuthError, FlowdockTransientError
from django_flowdock.models import OAuthToken, Source

logger = logging.getLogger("django_flowdock.conversations")

#: Messages asked for per REST page (the API's maximum).
PAGE = 100
#: Seconds without a byte (Flowdock sends keep-alives) before the stream is reopened.
STREAM_IDLE_TIMEOUT = 60.0
#: Seconds between two reads of the connected sources (new, deactivated, removed).
FLOW_REFRESH = 10.0
#: Seconds before a flow whose grant Flowdock refused is tried again (a grant renewed
#: by connecting the flow again is picked up at once, as a changed flow).
REFUSED_RETRY = 300.0
HOSTED_API = "https://api.flowdock.com"
HOSTED_STREAM = "https://stream.flowdock.com"
#: The prefix of the ``error_message`` the listener sets on a source, so that it
#: clears only its own message once the flow is read again.
ERROR_PREFIX = "Conversations: "


@dataclass(frozen=True)
class Flow:
    """One flow to read: its id and ``org/flow`` path, the sources shown in it, and
    the OAuth grant it is read with (loaded for every connection, so a refresh made
    by another process or thread is used)."""

    flow_id: str
    path: str
    api_url: str
    token_id: int
    source_ids: tuple[int, ...] = ()


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
            flows[source.flow_id] = Flow(
                flow.flow_id, flow.path, flow.api_url, flow.token_id, (*flow.source_ids, source.pk)
            )
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
        flows[source.flow_id] = Flow(
            source.flow_id,
            source.flow_path.strip("/"),
            source.get_api_url().rstrip("/"),
            token.pk,
            (source.pk,),
        )
    return list(flows.values())


class GrantRefused(Exception):
    """Flowdock refused the flow's OAuth grant and a refresh did not help: a person
    must connect the flow again."""


def authorized(flow: Flow, send: Callable[[dict[str, str]], requests.Response]) -> Any:
    """``send(headers)`` with the flow's grant, through the accessor that refreshes it
    (:func:`.oauth.authorized_call`). A refusal a person must fix (refresh refused,
    ``401`` after a refresh) is a :class:`GrantRefused`; Flowdock out of reach is not."""
    token = OAuthToken.objects.select_related("application").get(pk=flow.token_id)
    try:
        return oauth.authorized_call(token, send)
    except FlowdockOAuthError as exc:
        if isinstance(exc.__cause__, requests.RequestException):
            raise  # Flowdock could not be reached: back off and try again
        raise GrantRefused(str(exc)) from exc
    except FlowdockError as exc:
        if exc.status_code == 401:
            raise GrantRefused(f"Flowdock refused the OAuth token (401): {exc}") from exc
        raise


def _messages_path(flow: Flow) -> str:
    organization, _, name = flow.path.partition("/")
    return f"/flows/{quote(organization)}/{quote(name)}/messages"


def _get_json(flow: Flow, client: FlowdockClient, params: dict[str, Any]) -> Any:
    return authorized(
        flow,
        lambda headers: client.request("GET", _messages_path(flow), params=params, headers=headers),
    ).json()


class ThreadDiscovery:
    """Traces a thread the app knows no link for, the first time a reply is read in
    it: its first inbox messages (``GET …/threads/:id/messages``) name our post when
    the thread is ours, posted before conversations was switched on (or answered
    ``202`` before the cursor). Each thread is looked up once per process (readers
    restarted and ``catch_up()`` passes in one worker process share the memory)."""

    #: Thread ids remembered per flow before the memory starts again.
    REMEMBERED = 10_000
    _looked_up: dict[str, set[str]] = {}

    def __init__(self, flow: Flow, client: FlowdockClient) -> None:
        self.flow = flow
        self.client = client
        self.looked_up = self._looked_up.setdefault(flow.flow_id, set())

    def __call__(self, thread_id: str) -> bool:
        if thread_id in self.looked_up:
            return False
        if len(self.looked_up) >= self.REMEMBERED:
            self.looked_up.clear()
        organization, _, name = self.flow.path.partition("/")
        path = f"/flows/{quote(organization)}/{quote(name)}/threads/{quote(thread_id)}/messages"
        params = {"event": "activity,discussion", "sort": "asc", "limit": PAGE}
        found = authorized(
            self.flow,
            lambda headers: self.client.request("GET", path, params=params, headers=headers),
        ).json()
        self.looked_up.add(thread_id)
        sources = list(self.flow.source_ids)
        learnt = any(learn_from_own_message(sources, item) for item in found)
        if learnt:
            logger.info(
                "Flow %s: thread %s traced from its own messages", self.flow.path, thread_id
            )
        return learnt


def cursor_of(flow: Flow, client: FlowdockClient) -> int:
    """The flow's cursor; on the very first read, the flow's latest message (history
    from before conversations were set up is not imported)."""
    found = FlowCursor.objects.filter(flow_id=flow.flow_id).values_list(
        "last_message_id", flat=True
    )
    if found:
        return found[0]
    latest = _get_json(flow, client, {"limit": 1})
    start = max((int(item["id"]) for item in latest), default=0)
    cursor, _ = FlowCursor.objects.get_or_create(
        flow_id=flow.flow_id, defaults={"last_message_id": start}
    )
    return cursor.last_message_id


def catch_up_flow(
    flow: Flow, client: FlowdockClient | None = None, discover: ThreadDiscovery | None = None
) -> int:
    """Apply the flow's messages after its cursor, a page at a time; return how many
    were read."""
    client = client or FlowdockClient(flow.api_url)
    discover = discover or ThreadDiscovery(flow, client)
    read = 0
    while True:
        since = cursor_of(flow, client)
        page = _get_json(flow, client, {"since_id": since, "sort": "asc", "limit": PAGE})
        for data in page:
            receive(flow.flow_id, flow.source_ids, data, discover)
        read += len(page)
        if len(page) < PAGE:
            return read


def catch_up() -> int:
    """One catch-up pass over every connected flow, and the failed replies that are
    due again, for a periodic Celery or Django Tasks task; returns how many messages
    were read. Errors propagate (let the task queue retry); a flow whose grant
    Flowdock refused is marked on its sources and skipped."""
    read = 0
    for flow in connected_flows():
        try:
            read += catch_up_flow(flow)
        except GrantRefused as exc:
            mark_refused(flow, exc)
            continue
        clear_refused(flow)
    retry_due()
    return read


def mark_refused(flow: Flow, error: Exception) -> None:
    """Show why the flow is not read on its sources (the admin's error column) and in
    the log."""
    message = (
        f"{ERROR_PREFIX}Flowdock refused the OAuth grant used to read flow {flow.path}: "
        f"{error} Connect the flow again to read its replies."
    )
    logger.error("%s", message)
    Source.objects.filter(pk__in=flow.source_ids).exclude(error_message=message).update(
        error_message=message
    )


def clear_refused(flow: Flow) -> None:
    Source.objects.filter(pk__in=flow.source_ids, error_message__startswith=ERROR_PREFIX).update(
        error_message=""
    )


def stream_url(flow: Flow) -> str:
    base = flowdock_settings.STREAM_URL
    if not base:
        base = HOSTED_STREAM if flow.api_url == HOSTED_API else f"{flow.api_url}/stream"
    return base.rstrip("/")


def stream_path(flow: Flow) -> str:
    organization, _, name = flow.path.partition("/")
    return f"/flows/{quote(organization)}/{quote(name)}"


def events(chunks: Iterator[bytes]) -> Iterator[dict[str, Any]]:
    """The messages of an Event-Stream read as ``chunks`` arrive (keep-alive comments
    skipped)."""
    buffer = b""
    data: list[str] = []
    for chunk in chunks:
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            text = line.decode("utf-8").rstrip("\r")
            if not text:
                if data:
                    yield json.loads("\n".join(data))
                data = []
            elif text.startswith("data:"):
                data.append(text[5:].removeprefix(" "))


def _arriving(response: requests.Response) -> Iterator[bytes]:
    """The response's bytes as soon as they arrive (``read1``: whatever is there,
    without waiting for a full buffer), until the server closes the stream."""
    raw = response.raw
    while chunk := raw.read1(65536):
        yield chunk


class FlowReader:
    """Reads one flow until stopped: catch up, stream, back off after an error."""

    def __init__(self, flow: Flow, stopping: threading.Event | None = None) -> None:
        self.flow = flow
        self.stopping = stopping or threading.Event()
        #: The open stream, for :meth:`interrupt`.
        self.response: requests.Response | None = None
        self.failures = 0
        #: Made in the reader's thread: HTTP sessions are per thread.
        self.discover: ThreadDiscovery | None = None

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                delay = self.read_once()
                if delay:
                    self.stopping.wait(delay)
        finally:
            connections.close_all()

    def read_once(self) -> float:
        """Catch up and stream until the stream ends; return how long to wait before
        the next read (0 after a stream that ended normally)."""
        try:
            close_old_connections()
            if self.discover is None:
                self.discover = ThreadDiscovery(self.flow, FlowdockClient(self.flow.api_url))
            catch_up_flow(self.flow, self.discover.client, self.discover)
            clear_refused(self.flow)
            self.stream()
            return 0.0
        except GrantRefused as exc:
            if self.stopping.is_set():
                return 0.0
            mark_refused(self.flow, exc)
            return REFUSED_RETRY
        except Exception as exc:
            if self.stopping.is_set():
                return 0.0
            self.failures += 1
            delay = max(1.0, backoff(self.failures))
            expected = isinstance(exc, (FlowdockTransientError, requests.RequestException))
            logger.warning(
                "Reading flow %s failed (%s: %s); again in %.1fs",
                self.flow.path,
                type(exc).__name__,
                exc,
                delay,
                exc_info=not expected,
            )
            return delay

    def stream(self) -> None:
        """Read the flow's stream from its cursor until it ends or fails."""
        if self.stopping.is_set():
            return
        since = FlowCursor.objects.get(flow_id=self.flow.flow_id).last_message_id
        connect_timeout = FlowdockClient().timeout
        if isinstance(connect_timeout, tuple):
            connect_timeout = connect_timeout[0]
        client = FlowdockClient(
            stream_url(self.flow), timeout=(connect_timeout, STREAM_IDLE_TIMEOUT)
        )
        response = authorized(
            self.flow,
            lambda headers: client.request(
                "GET",
                stream_path(self.flow),
                stream=True,
                headers={**headers, "Accept": "text/event-stream", "Last-Event-ID": str(since)},
            ),
        )
        self.response = response
        try:
            if self.stopping.is_set():
                return
            logger.info("Streaming flow %s after message %s", self.flow.path, since)
            self.failures = 0
            for data in events(_arriving(response)):
                if "id" in data:
                    receive(self.flow.flow_id, self.flow.source_ids, data, self.discover)
        finally:
            self.response = None
            response.close()

    def stop(self) -> None:
        self.stopping.set()
        self.interrupt()

    def interrupt(self) -> None:
        """Unblock a stream waiting for its next bytes (called from another thread):
        shut its socket down through a duplicate of its descriptor (``http.client``
        drops its own reference to the socket of a response read until close)."""
        response = self.response
        if response is None:
            return
        try:
            descriptor = os.dup(response.raw.fileno())
        except (AttributeError, OSError, ValueError):
            return  # closed meanwhile (its file is gone): nothing left to unblock
        with contextlib.suppress(OSError), socket.socket(fileno=descriptor) as sock:
            sock.shutdown(socket.SHUT_RDWR)


class Listener:
    """Reads the connected flows it holds a lease on (one reader per flow across
    hosts), one thread each, until :meth:`stop`. Every ``refresh`` seconds (at most a
    third of a lease) it renews its leases, reads the connected sources again, starts,
    restarts or stops readers to match, and applies again the failed replies that are
    due."""

    def __init__(
        self,
        flows: Callable[[], list[Flow]] = connected_flows,
        refresh: float = FLOW_REFRESH,
        leases: FlowLeases | None = None,
    ) -> None:
        self.flows = flows
        self.leases = leases or FlowLeases()
        self.refresh = min(refresh, Lease.duration().total_seconds() / 3)
        self.stopping = threading.Event()
        self.readers: dict[str, tuple[FlowReader, threading.Thread]] = {}

    def stop(self) -> None:
        self.stopping.set()
        for reader, _thread in list(self.readers.values()):
            reader.stop()

    def follow(self, flows: list[Flow]) -> None:
        """Start a reader for each new flow; stop those of flows gone or changed (a
        source added or removed, another grant, a lease lost)."""
        wanted = {flow.flow_id: flow for flow in flows}
        for flow_id, (reader, thread) in list(self.readers.items()):
            if wanted.get(flow_id) != reader.flow or not thread.is_alive():
                logger.info("Flow %s: its reader stops (flow changed, gone or leased)", flow_id)
                reader.stop()
                # Not waited for: the leases of the other flows are renewed meanwhile.
                # A moment with two readers of the flow still applies each reply once.
                thread.join(timeout=1.0)
                del self.readers[flow_id]
        for flow_id, flow in wanted.items():
            if flow_id in self.readers or self.stopping.is_set():
                continue
            reader = FlowReader(flow)
            thread = threading.Thread(
                target=reader.run, name=f"flowdock-listen-{flow.path}", daemon=True
            )
            self.readers[flow_id] = (reader, thread)
            thread.start()
            logger.info("Reading flow %s", flow.path)

    def run(self) -> None:
        warned = False
        try:
            while not self.stopping.is_set():
                try:
                    close_old_connections()
                    flows = self.flows()
                    if not flows and not warned:
                        logger.warning(
                            "No flow to read: no active source has an OAuth token with the "
                            "scope 'flow'. Waiting for one to be connected."
                        )
                    warned = not flows
                    held = self.leases.hold(flow.flow_id for flow in flows)
                    self.follow([flow for flow in flows if flow.flow_id in held])
                    retry_due()
                except ImproperlyConfigured:
                    raise
                except Exception:
                    logger.exception("Conversations: following the connected flows failed")
                # Waiting on the event keeps the main thread free for signals.
                self.stopping.wait(self.refresh)
        finally:
            self.stop()
            for _reader, thread in self.readers.values():
                thread.join(timeout=STREAM_IDLE_TIMEOUT)
            with contextlib.suppress(DatabaseError):  # the database may be what stopped us
                self.leases.release()
            connections.close_all()
