"""The default backend: deliver right after commit, in a background thread of this
process, and retry by itself while the process lives.

What else it does depends on what the process is (:func:`process_role`):

- a web server starts delivering as soon as Django is ready, so messages an earlier
  process left (killed, or a script that exited) go out without waiting for a save;
- any other process that saved something (a management command, ``manage.py shell``, a
  script) delivers before it exits, for at most ``EXIT_TIMEOUT`` seconds;
- test runs deliver after commits only; schema and tooling commands (``migrate``,
  ``check``…) never deliver: what they saved waits for a process that does.

The thread shares the interpreter (its GIL) and the database with the requests of its
process, so it delivers between them: before each post, and before each of its queries
outside a transaction, it waits while a request is in progress, for at most
``REQUEST_YIELD`` seconds per post in all (:class:`Requests`).
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, Literal

from django.apps import apps
from django.core.signals import request_finished, request_started
from django.db import connections
from django.db.models import QuerySet
from django.utils.autoreload import DJANGO_AUTORELOAD_ENV

from django_flowdock.conf import flowdock_settings
from django_flowdock.delivery.base import BaseBackend
from django_flowdock.delivery.engine import POST_THREADS, drain, request_seconds
from django_flowdock.delivery.lines import check_lines
from django_flowdock.exceptions import FlowdockConfigurationError
from django_flowdock.models import Change, Message

logger = logging.getLogger("django_flowdock.delivery")

#: Shortest sleep between rounds, so a message that cannot be taken yet never makes the
#: thread spin.
MIN_SLEEP = 0.2
#: Quiet after a request before the thread goes on, while requests come close together:
#: a keep-alive client's next request (or the next one a sync worker accepts) arrives
#: within a few milliseconds.
QUIET = 0.005
#: The quiet waited for after a request that started alone, ``QUIET`` or more after
#: the last one finished: the next one is likely as far off, and a round begun at once
#: ends before it comes.
QUIET_AFTER_GAP = 0.001
#: Seconds a polling thread keeps its database connections after a round, for a wake
#: that comes soon (a busy site saves again within it): a new PostgreSQL connection
#: costs a few milliseconds of the web process's time, as much as delivering a message.
LINGER = 1.0
#: Longest a parked thread waits without any fork ending: the hook after each fork
#: resumes it, this bounds a fork whose hook never came back.
PARK_LIMIT = 60.0
#: First sleep after a round that failed (database restarting, not migrated yet);
#: doubled after each failure in a row, up to ``POLL_INTERVAL``.
ERROR_SLEEP = 5.0

Role = Literal["server", "script", "test", "never"]

#: Processes recognised as web servers by their program (``argv[0]``, or ``python -m``).
SERVER_PROGRAMS = frozenset({"gunicorn", "uwsgi", "uvicorn", "daphne", "hypercorn"})
#: Management commands that serve (daphne and channels replace ``runserver`` itself).
SERVER_COMMANDS = frozenset({"runserver", "runserver_plus"})
#: Management commands that run tests (the test database is gone when they exit).
TEST_COMMANDS = frozenset({"test", "testserver"})
#: Management commands that never deliver: they build, inspect or migrate the project,
#: possibly before the outbox tables exist.
NEVER_COMMANDS = frozenset(
    {
        "check",
        "collectstatic",
        "compilemessages",
        "createcachetable",
        "dbshell",
        "diffsettings",
        "flush",
        "inspectdb",
        "makemessages",
        "makemigrations",
        "migrate",
        "optimizemigration",
        "showmigrations",
        "sqlflush",
        "sqlmigrate",
        "sqlsequencereset",
        "squashmigrations",
    }
)


def _program() -> str:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name:  # python -m NAME
        return spec.name.split(".")[0]
    argv = getattr(sys, "argv", None) or [""]
    return os.path.basename(argv[0])


def _command() -> str | None:
    """The management command this process runs (``manage.py NAME``), if any."""
    argv = getattr(sys, "argv", None) or []
    return argv[1] if len(argv) > 1 else None


def _in_uwsgi() -> bool:
    try:
        import uwsgi  # noqa: F401 - importable only inside uWSGI
    except ImportError:
        return False
    return True


def detected_server() -> bool:
    """Whether this process looks like a web server: ``runserver`` (its serving child, not
    the autoreloader watching it), gunicorn, uWSGI, uvicorn, daphne or hypercorn."""
    command = _command()
    if command in SERVER_COMMANDS:
        argv = getattr(sys, "argv", None) or []
        return "--noreload" in argv or os.environ.get(DJANGO_AUTORELOAD_ENV) == "true"
    return _program() in SERVER_PROGRAMS or _in_uwsgi()


def process_role() -> Role:
    """What this process does with the outbox: ``"server"`` delivers from start-up on,
    ``"script"`` after its commits and before it exits, ``"test"`` after its commits
    only, ``"never"`` not at all. ``FLOWDOCK["DELIVER_ON_START"]`` (True or False)
    overrides the server detection, never a test run or a command that must not
    deliver."""
    command = _command()
    if "pytest" in sys.modules or command in TEST_COMMANDS:
        return "test"
    if command in NEVER_COMMANDS:
        return "never"
    if command in SERVER_COMMANDS and not detected_server():
        return "never"  # the autoreloader's watching parent: its child serves
    forced = flowdock_settings.DELIVER_ON_START
    serving = detected_server() if forced is None else forced
    return "server" if serving else "script"


class Requests:
    """The requests in progress in this process (``request_started`` to
    ``request_finished``), for the delivery thread to wait on.

    Kept per serving thread, so a request whose ``request_finished`` never came (a
    response never closed) is forgotten at that thread's next request.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition(threading.Lock())
        self._in_progress: set[int] = set()
        self._last_finished = float("-inf")
        self._quiet = QUIET_AFTER_GAP

    def started(self) -> None:
        me = threading.get_ident()
        with self._changed:
            # Overlapping requests mean a busy process (a stale entry of this thread's
            # own, whose response was never closed, does not count).
            alone = not self._in_progress - {me}
            gap = time.monotonic() - self._last_finished
            self._quiet = QUIET_AFTER_GAP if alone and gap >= QUIET else QUIET
            self._in_progress.add(me)

    def finished(self) -> None:
        with self._changed:
            self._in_progress.discard(threading.get_ident())
            self._last_finished = time.monotonic()
            self._changed.notify_all()

    def wait_quiet(self, timeout: float) -> bool:
        """Wait until no request has been in progress for ``QUIET`` seconds (or
        ``QUIET_AFTER_GAP`` when the last request started alone, ``QUIET`` or more after
        the one before finished), or for ``timeout`` seconds at most; False if it was not
        quiet by then."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                now = time.monotonic()
                quiet_at = None if self._in_progress else self._last_finished + self._quiet
                if quiet_at is not None and now >= quiet_at:
                    return True
                if now >= deadline:
                    return False
                wake_at = deadline if quiet_at is None else min(deadline, quiet_at)
                self._changed.wait(wake_at - now)


#: This process's requests; replaced in a forked child (its lock may be held).
requests_in_progress = Requests()


def _request_started(**kwargs: object) -> None:
    requests_in_progress.started()


def _request_finished(**kwargs: object) -> None:
    requests_in_progress.finished()


class ForkGate:
    """Parks the delivery thread while its process forks, so that no child inherits
    the thread's open database connections (closing them in the child ends MySQL's
    session for the parent too) or a module it was importing (half imported in the
    child for ever: the URLconf, and every request of that child fails)."""

    def __init__(self) -> None:
        self._changed = threading.Condition(threading.Lock())
        #: The threads forking now (several request threads may fork at once).
        self._forkers: set[int] = set()
        #: Whether the delivery thread is parked; only that thread clears it.
        self._parked = False
        #: Set while a fork is under way (read by the thread without the lock).
        self.forking = threading.Event()

    def enter(self, wake: Callable[[], None], timeout: float) -> None:
        """Before a fork, in the forking thread: ask the delivery thread to park, and
        wait for it for at most ``timeout`` seconds."""
        with self._changed:
            self._forkers.add(threading.get_ident())
            self.forking.set()  # before the wake: the thread checks it after each
        wake()
        with self._changed:
            parked = self._changed.wait_for(lambda: self._parked, timeout)
        if not parked:
            logger.warning(
                "Forking while the delivery thread is still busy after %.0fs: the child "
                "may inherit its database connections",
                timeout,
            )

    def leave(self) -> None:
        """After a fork, in the parent's forking thread: the last fork to end resumes
        the delivery thread."""
        with self._changed:
            self._forkers.discard(threading.get_ident())
            if not self._forkers:
                self.forking.clear()
            self._changed.notify_all()

    def park(self) -> None:
        """In the delivery thread, its connections closed: wait while forks last."""
        with self._changed:
            self._parked = True
            self._changed.notify_all()
            while self._forkers:
                if not self._changed.wait(PARK_LIMIT):
                    # No fork ended for PARK_LIMIT seconds: its hook never came back.
                    self._forkers.clear()
                    self.forking.clear()
            self._parked = False


class ImmediateBackend(BaseBackend):
    """No HTTP on the request thread and no extra process to run.

    A commit wakes one daemon thread per process, which drains the outbox and then
    sleeps until the earliest retry is due, or for ``POLL_INTERVAL`` seconds, after
    which it looks for what other processes left. A web server starts the thread when
    Django is ready; another process that saved something delivers before it exits.
    """

    def __init__(self) -> None:
        self._reset()
        self._serving = False
        self._exit_registered = False
        _backends.add(self)

    def _reset(self) -> None:
        """Fresh synchronisation state: a forked child inherits the parent's locks (held,
        maybe) and thread object, but not the thread."""
        self._lock = threading.Lock()
        self._wake = threading.Event()
        #: A commit came since the thread's last round began (``_wake`` is also set to
        #: interrupt its wait before a fork).
        self._dispatched = False
        self._stopping = threading.Event()
        self._fork_gate = ForkGate()
        #: The thread's round was stopped by a fork, to be taken up again at once.
        self._cut_short = False
        self._idle = threading.Condition(self._lock)
        self._busy = False
        #: Seconds the thread may still wait for requests before its next post.
        self._patience = 0.0
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def dispatch(self) -> None:
        role = process_role()
        if role == "never":
            return
        self._wake_thread(polling=role != "test")
        if role == "script" and not self._exit_registered:
            self._exit_registered = True
            atexit.register(self.deliver_before_exit)

    def serve(self) -> None:
        """Start delivering now, and poll while idle: for web server processes, whose
        thread must send what earlier processes left without waiting for a save."""
        self._serving = True
        self._wake_thread(polling=True)

    def _wake_thread(self, polling: bool) -> None:
        if self._pid != os.getpid():
            # Forked without Python's fork hooks (uWSGI's own fork, say).
            self._reset()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                # Only a process that delivers pays for counting its requests.
                request_started.connect(_request_started, dispatch_uid=__name__)
                request_finished.connect(_request_finished, dispatch_uid=__name__)
                self._thread = threading.Thread(
                    target=self._run, args=(polling,), name="flowdock-delivery", daemon=True
                )
                self._thread.start()
            self._busy = True
            # Under the lock: a round that just ended must see this wake before it
            # reports idle, or wait_idle() could return before this commit's delivery.
            self._dispatched = True
            self._wake.set()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until the thread has drained everything it was woken for (tests and
        scripts); False if it was still busy after ``timeout`` seconds."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._busy, timeout)

    def _run(self, polling: bool) -> None:
        # Started from AppConfig.ready(), the thread must not query before every app is.
        apps.ready_event.wait()
        sleep: float | None = None
        idle = False
        failures = 0
        connected = False
        while not self._stopping.is_set():
            waiting_since = time.monotonic()
            woken = self._wait(sleep, connected)
            if self._fork_gate.forking.is_set():
                connections.close_all()
                connected = False
                while self._fork_gate.forking.is_set():
                    self._fork_gate.park()
                    with self._lock:
                        if not self._dispatched:
                            self._wake.clear()  # only the fork's: back to the wait it cut
                    # A fork that began meanwhile set ``forking`` before its wake.
                if sleep is not None:
                    sleep = max(0.0, sleep - (time.monotonic() - waiting_since))
                continue
            with self._lock:
                self._wake.clear()
                self._dispatched = False
            self._cut_short = False
            poll = flowdock_settings.POLL_INTERVAL
            try:
                # Idle, a timeout only looks for work left by other processes.
                if woken or not idle or _outbox_waiting():
                    with self._giving_way_at_queries():
                        check_lines()
                        drain(should_stop=self._yield_to_requests)
                    until_due: float | None = 0.0
                    if self._cut_short:
                        # By a fork: the thread parks, then goes on at once, still busy.
                        with self._lock:
                            self._dispatched = True
                    else:
                        until_due = _seconds_until_due()
                else:
                    until_due = None
                idle = until_due is None
                if idle:
                    sleep = poll if polling else None
                else:
                    sleep = min(until_due, poll) if polling else until_due
                failures = 0
                connected = polling
            except Exception:
                sleep = min(ERROR_SLEEP * 2**failures, max(poll, ERROR_SLEEP))
                failures = min(failures + 1, 10)  # the cap is reached long before
                idle = False
                connected = False
                logger.exception("Delivery round failed; trying again in %.0fs", sleep)
            finally:
                # Nothing held between rounds of a test run (its database is dropped at
                # the end) or after an error (a restarted server is reconnected to); a
                # server's or script's thread keeps them for LINGER seconds.
                if not connected:
                    connections.close_all()
            with self._idle:
                if not self._dispatched or self._stopping.is_set():
                    self._busy = False
                    self._idle.notify_all()
        connections.close_all()

    def before_fork(self) -> None:
        """Park the thread before this process forks: its posts in flight finish, what it
        has not posted is given back, its connections are closed. Waits for the posts in
        flight at most (the ``TIMEOUT`` pair, plus a second)."""
        thread = self._thread
        if (
            thread is None
            or not thread.is_alive()
            or self._pid != os.getpid()
            # Before Django is ready the thread has not begun; and a thread of the
            # delivery (the round's own code forking) cannot wait for itself.
            or not apps.ready_event.is_set()
            or threading.current_thread() is thread
            or threading.current_thread().name.startswith(POST_THREADS)
        ):
            return
        self._fork_gate.enter(self._wake.set, request_seconds() + 1.0)

    def after_fork_in_parent(self) -> None:
        self._fork_gate.leave()

    def _wait(self, sleep: float | None, connected: bool) -> bool:
        """Wait for a wake, or ``sleep`` seconds (None: for ever); the connections
        kept from the last round are closed if no wake came within ``LINGER``."""
        if connected:
            if sleep is not None and sleep <= LINGER:
                return self._wake.wait(timeout=sleep)
            if self._wake.wait(timeout=LINGER):
                return True
            connections.close_all()
            sleep = None if sleep is None else sleep - LINGER
        return self._wake.wait(timeout=sleep)

    def _yield_to_requests(self) -> bool:
        """``drain()``'s ``should_stop``, asked before each post: let the requests in
        progress finish first, for at most ``REQUEST_YIELD`` seconds with the waits at
        the queries up to the next post, so delivery goes on under constant load; True
        when the thread must stop."""
        self._patience = flowdock_settings.REQUEST_YIELD
        self._give_way()
        if self._fork_gate.forking.is_set():
            self._cut_short = True
        return self._stopping.is_set() or self._cut_short

    def _interrupted(self) -> bool:
        """The thread must stop, or park for a fork: no more waiting for requests."""
        return self._stopping.is_set() or self._fork_gate.forking.is_set()

    def _give_way(self) -> None:
        if self._patience > 0 and not self._interrupted():
            started = time.monotonic()
            requests_in_progress.wait_quiet(self._patience)
            self._patience -= time.monotonic() - started

    @contextmanager
    def _giving_way_at_queries(self) -> Iterator[None]:
        """A request that starts during a post (rendering, recording) pauses the thread at
        its next query: one post is several milliseconds of Python holding the GIL. Not
        inside a transaction, whose locks the request may be waiting for."""

        def wrapper(
            execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict
        ) -> Any:
            if not context["connection"].in_atomic_block:
                self._give_way()
            return execute(sql, params, many, context)

        with ExitStack() as stack:
            for connection in connections.all():
                stack.enter_context(connection.execute_wrapper(wrapper))
            yield

    def deliver_before_exit(self) -> None:
        """Registered with ``atexit`` by the first dispatch of a process that is neither a
        server nor a test run: deliver what is waiting, retrying what becomes due, for at
        most ``EXIT_TIMEOUT`` seconds (plus the post in flight then), and say on stderr
        what is left for the next process."""
        if self._thread is None or self._pid != os.getpid():
            return  # a forked child that saved nothing: nothing of its own to wait for
        deadline = time.monotonic() + flowdock_settings.EXIT_TIMEOUT
        # The thread hands its batch back and ends; this thread takes over (no new thread
        # can start at interpreter shutdown).
        self._stopping.set()
        self._wake.set()
        self._thread.join(max(0.0, deadline - time.monotonic()))
        try:
            while True:
                drain(should_stop=lambda: time.monotonic() >= deadline)
                due_in = Message.objects.seconds_until_due()
                if due_in is None:
                    break
                wait = max(MIN_SLEEP, due_in)
                if time.monotonic() + wait >= deadline:
                    break
                time.sleep(wait)  # nothing announces a due retry
            messages = Message.objects.pending().count()
            changes = _unsent_changes().count()
            left = " and ".join(
                f"{count} {noun}{'s' if count > 1 else ''}"
                for count, noun in ((messages, "message"), (changes, "unprocessed change"))
                if count
            )
        except Exception:
            logger.exception("Delivery before exit failed")
            left = "what was saved"
        finally:
            connections.close_all()
        if left:
            sys.stderr.write(
                f"django-flowdock: {left} not delivered to Flowdock before exit; left in "
                "the outbox for the next process that delivers (a web server, or "
                "manage.py flowdock_worker).\n"
            )


#: Every backend of this process, reset in a forked child.
_backends: weakref.WeakSet[ImmediateBackend] = weakref.WeakSet()


def _before_fork() -> None:
    for backend in list(_backends):
        backend.before_fork()


def _after_fork_in_parent() -> None:
    for backend in list(_backends):
        backend.after_fork_in_parent()


def _after_fork_in_child() -> None:
    global requests_in_progress
    requests_in_progress = Requests()
    for backend in list(_backends):
        backend._reset()
        if backend._serving:
            backend._wake_thread(polling=True)


os.register_at_fork(
    before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
)


def deliver_on_start() -> None:
    """Called from ``AppConfig.ready()``: a web server process (see
    :func:`process_role`) starts delivering what earlier processes left."""
    if process_role() != "server":
        return
    from django_flowdock.delivery import get_backend

    try:
        backend = get_backend()
    except FlowdockConfigurationError:
        return  # check django_flowdock.E007 says what to fix
    if isinstance(backend, ImmediateBackend):
        backend.serve()


def _unsent_changes() -> QuerySet[Change]:
    # One whose objects could not be read keeps its error and is never fanned out.
    return Change.objects.filter(fanned_out=False, error="")


def _outbox_waiting() -> bool:
    """Whether anything waits for delivery: one query, stopping at the first row."""
    changes = _unsent_changes().values_list("pk")
    return changes.union(Message.objects.pending().values_list("pk"), all=True).exists()


def _seconds_until_due() -> float | None:
    # Only messages first in line count: the ones behind a message waiting for its retry
    # wait with it, and one another process holds waits for the end of its lease.
    due_in = Message.objects.seconds_until_due()
    return None if due_in is None else max(MIN_SLEEP, due_in)
