"""HTTP access to the Flowdock API.

One keep-alive ``requests.Session`` per thread (sessions are not documented as
thread-safe), timeouts on every request, and answers turned into the exception
hierarchy: the delivery engine decides retry vs. give up by exception class alone.
Tokens travel in bodies and headers only, never in URLs or log lines.
"""

from __future__ import annotations

import datetime
import email.utils
import functools
import logging
import math
import os
import threading
import time
from typing import TYPE_CHECKING, Any

import requests

from django_flowdock.conf import flowdock_settings
from django_flowdock.exceptions import (
    FlowdockError,
    FlowdockRejectedError,
    FlowdockSourceGoneError,
    FlowdockTransientError,
)

if TYPE_CHECKING:
    from django_flowdock.models import Source

logger = logging.getLogger("django_flowdock.api.client")

_local = threading.local()


def get_session() -> requests.Session:
    """This thread's session. It reads the environment (proxies, CA bundle, ``.netrc``)
    once per API URL (``environment()``), not on every request as ``trust_env`` does:
    that costs about a millisecond per post with a few dozen variables set."""
    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
        session.headers["User-Agent"] = "django-flowdock"
        session.trust_env = False
    return session


@functools.lru_cache(maxsize=64)
def environment(url: str) -> dict[str, Any]:
    """What ``requests`` would read from the environment for ``url``, read once."""
    settings: dict[str, Any] = {
        "proxies": requests.utils.get_environ_proxies(url),
        "verify": os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True,
    }
    auth = requests.utils.get_netrc_auth(url)
    if auth:
        settings["auth"] = auth
    return settings


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(value)
            if moment.tzinfo is None:  # "-0000": UTC with no zone given, not local time
                moment = moment.replace(tzinfo=datetime.UTC)
            seconds = moment.timestamp() - time.time()
        except (TypeError, ValueError, OverflowError):
            return None  # unparsable: fall back to the usual backoff
    return max(0.0, seconds) if math.isfinite(seconds) else None


def describe_error(response: requests.Response) -> str:
    """The API's error text: ``Validation error: thread.title: can't be blank``."""
    try:
        data = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:500]}".strip()
    if not isinstance(data, dict):
        return f"HTTP {response.status_code}: {data}"
    message = data.get("message") or data.get("error") or f"HTTP {response.status_code}"
    errors = data.get("errors")
    if isinstance(errors, dict):
        details = "; ".join(
            f"{field}: {', '.join(map(str, problems)) if isinstance(problems, list) else problems}"
            for field, problems in errors.items()
        )
        return f"{message}: {details}"
    return str(message)


class FlowdockClient:
    """A client for one API base URL (``FLOWDOCK["API_URL"]`` by default)."""

    def __init__(
        self,
        api_url: str | None = None,
        *,
        session: requests.Session | None = None,
        timeout: float | tuple[float, float] | None = None,
    ) -> None:
        self.api_url = (api_url or flowdock_settings.API_URL).rstrip("/")
        # A session of the caller's reads the environment as it was set up to.
        self.own_session = session is None
        self.session = session or get_session()
        configured = flowdock_settings.TIMEOUT
        # (connect, read) or one number for both, as requests takes it.
        self.timeout = timeout or (
            tuple(configured) if isinstance(configured, (list, tuple)) else configured
        )

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Send a request; return the 2xx response or raise a ``FlowdockError``."""
        url = f"{self.api_url}/{path.lstrip('/')}"
        payload = kwargs.get("json")
        token = None
        if isinstance(payload, dict) and "flow_token" in payload:
            # Errors keep the payload for handlers to log: never with the secret in it.
            token = payload["flow_token"]
            payload = {k: v for k, v in payload.items() if k != "flow_token"}
        if self.own_session:
            for name, value in environment(self.api_url).items():
                kwargs.setdefault(name, value)
        try:
            response = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.Timeout as exc:
            raise FlowdockTransientError(f"Timed out: {method} {url}", payload=payload) from exc
        except requests.ConnectionError as exc:
            raise FlowdockTransientError(
                f"Could not connect: {method} {url}", payload=payload
            ) from exc
        except requests.RequestException as exc:
            # E.g. a response cut off mid-body: the engine must get a FlowdockError to
            # count the attempt, not a crash that leaves the message claimed.
            raise FlowdockTransientError(
                f"Request failed: {method} {url}: {type(exc).__name__}", payload=payload
            ) from exc
        status = response.status_code
        if status < 300:
            return response
        text = describe_error(response)
        if token:
            # An error page may echo the request; the text is stored and shown in the admin.
            text = text.replace(token, "[flow token]")
        details: dict[str, Any] = {"status_code": status, "response": response, "payload": payload}
        if status == 410:
            raise FlowdockSourceGoneError(text, **details)
        # A request timeout (408), a rate limit (429) or a server error: try again later.
        if status in (408, 429) or status >= 500:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            raise FlowdockTransientError(text, retry_after=retry_after, **details)
        if status >= 400:
            raise FlowdockRejectedError(text, **details)
        raise FlowdockError(text, **details)

    def post_message(
        self, payload: dict[str, Any], *, wait_for_message: bool = False
    ) -> requests.Response:
        """``POST /messages``; ``payload`` carries its ``flow_token``. With
        ``wait_for_message`` Flowdock answers ``200`` with the stored message (its
        ``id`` and ``thread_id``) when it can, else ``202`` as usual."""
        headers = {"X-flowdock-wait-for-message": "true"} if wait_for_message else None
        return self.request("POST", "/messages", json=payload, headers=headers)

    def put_source(self, flow_token: str, **changes: str) -> dict[str, Any]:
        """``PUT /sources``: set ``error_message`` and/or ``configuration_url``."""
        return self.request("PUT", "/sources", json={"flow_token": flow_token, **changes}).json()


def client_for(source: Source, default: FlowdockClient | None = None) -> FlowdockClient:
    """The client that reaches ``source``: at its OAuth application's own API URL when
    one is set, else ``default`` (``FLOWDOCK["API_URL"]``)."""
    default = default or FlowdockClient()
    if source.application is None or not source.application.api_url:
        return default
    session = None if default.own_session else default.session
    return FlowdockClient(source.get_api_url(), session=session, timeout=default.timeout)
