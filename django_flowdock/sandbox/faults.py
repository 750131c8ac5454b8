"""Fault injection: make requests fail the way a real Flowdock sometimes does.

Faults live in the server process's memory and act in front of Django, at the WSGI
layer, so that a dropped connection really is a closed socket with no answer.
"""

import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from fractions import Fraction
from http import HTTPStatus
from math import ceil
from typing import Any

#: The WSGI environ key of the server's callable that drops the client connection.
DROP_KEY = "flowdock_sandbox.drop_connection"

# Never faulted, so a test or a person can always see and clear the faults.
EXEMPT_PREFIXES = ("/_sandbox/", "/app/faults")

logger = logging.getLogger(__name__)


@dataclass
class Fault:
    """One rule. Next-N mode (``ratio`` is None) fires on the next ``count`` matches.

    Ratio mode fires on a fixed share of matching requests until cleared, and does so
    deterministically (0.5 fires on the 1st, 3rd, 5th...), so that a test of retries
    gives the same result every run.
    """

    id: int
    path: str = "/messages"
    status: int | None = None
    latency: float = 0.0
    drop: bool = False
    count: int = 1
    ratio: float | None = None
    retry_after: int | None = None
    matched: int = 0
    fired: int = 0

    def matches(self, path: str) -> bool:
        prefix = self.path.rstrip("/")
        return path == self.path or path.startswith(prefix + "/")

    def fires_on(self, nth: int) -> bool:
        """Whether the ``nth`` match fires; in next-N mode every match does."""
        if self.ratio is None:
            return True
        share = Fraction(self.ratio).limit_denominator(1000)
        return ceil(nth * share) > ceil((nth - 1) * share)


class FaultRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)

    def add(self, **options: Any) -> Fault:
        fault = Fault(id=next(self._ids), **options)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def remove(self, fault_id: int) -> None:
        with self._lock:
            self._faults = [fault for fault in self._faults if fault.id != fault_id]

    def as_list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(fault) for fault in self._faults]

    def take(self, path: str) -> Fault | None:
        """The fault that this request meets, if any, counting it as fired."""
        with self._lock:
            for fault in self._faults:
                if not fault.matches(path):
                    continue
                fault.matched += 1
                if not fault.fires_on(fault.matched):
                    continue
                fault.fired += 1
                if fault.ratio is None:
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                return replace(fault)
        return None


registry = FaultRegistry()


class InFlight:
    """Counts API requests being handled, so a reset can wait for them: a request slowed
    by injected latency (its client long gone) must not land after the reset."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = threading.Condition()

    def __enter__(self) -> None:
        with self._idle:
            self._count += 1

    def __exit__(self, *exc_info: object) -> None:
        with self._idle:
            self._count -= 1
            self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._count == 0, timeout=timeout)


in_flight = InFlight()

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class FaultInjectionMiddleware:
    def __init__(self, app: WSGIApp, faults: FaultRegistry = registry) -> None:
        self.app = app
        self.faults = faults

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]):
        path = environ.get("PATH_INFO", "")
        if path.startswith(EXEMPT_PREFIXES):
            return self.app(environ, start_response)
        with in_flight:
            return self._handle(path, environ, start_response)

    def _handle(self, path: str, environ: dict[str, Any], start_response: Callable[..., Any]):
        fault = self.faults.take(path)
        if fault is None:
            return self.app(environ, start_response)
        if fault.latency:
            time.sleep(fault.latency)
        if fault.drop:
            logger.info("%s %s dropped by an injected fault", environ["REQUEST_METHOD"], path)
            environ[DROP_KEY]()
            # The WSGI server treats this as a client that went away: no answer is written.
            raise ConnectionAbortedError("connection dropped by an injected fault")
        if fault.status:
            return self._answer(fault, start_response)
        return self.app(environ, start_response)

    def _answer(self, fault: Fault, start_response: Callable[..., Any]) -> list[bytes]:
        assert fault.status is not None
        try:
            reason = HTTPStatus(fault.status).phrase
        except ValueError:
            reason = "Injected Fault"
        body = json.dumps({"message": f"Injected fault: HTTP {fault.status}"}).encode()
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        if fault.retry_after is not None:
            headers.append(("Retry-After", str(fault.retry_after)))
        start_response(f"{fault.status} {reason}", headers)
        return [body]
