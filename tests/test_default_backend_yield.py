"""The default backend's thread delivers between the requests of its process: it waits
while one is in progress (they share the GIL and the database), but never longer than
``REQUEST_YIELD`` per post, so constant traffic does not starve delivery."""

import threading
import time

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started

from django_flowdock.delivery import get_backend, immediate
from django_flowdock.delivery.immediate import ImmediateBackend, Requests
from django_flowdock.models import Message
from tests.testapp.models import Ticket

pytestmark = pytest.mark.django_db(transaction=True)


class Request:
    """A request in progress on a serving thread of its own, as a WSGI server runs it:
    ``request_started`` now, ``request_finished`` when :meth:`finish` is called."""

    def __init__(self) -> None:
        self._finish = threading.Event()
        started = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(started,), daemon=True)
        self._thread.start()
        started.wait()

    def _serve(self, started: threading.Event) -> None:
        request_started.send(sender=WSGIHandler, environ={})
        started.set()
        self._finish.wait()
        request_finished.send(sender=WSGIHandler)

    def finish(self) -> None:
        self._finish.set()
        self._thread.join()


@pytest.fixture
def backend(sandbox, source, settings):
    def configure(request_yield: float) -> ImmediateBackend:
        settings.FLOWDOCK = {**settings.FLOWDOCK, "REQUEST_YIELD": request_yield}
        backend = get_backend()
        assert isinstance(backend, ImmediateBackend)
        return backend

    return configure


def test_message_saved_during_a_request_is_posted_once_the_request_has_finished(backend, sandbox):
    delivery = backend(request_yield=30)
    Ticket.objects.create(subject="Before")  # starts the thread, which counts requests
    assert delivery.wait_idle(10)
    request = Request()
    try:
        Ticket.objects.create(subject="Saved while a request is served")
        assert not delivery.wait_idle(0.5)  # woken, waiting for the request
        # Read without sandbox.messages(), which would wait for the delivery thread.
        assert Message.objects.filter(state=Message.State.SENT).count() == 1
    finally:
        request.finish()
    finished = time.monotonic()
    assert delivery.wait_idle(10)
    assert time.monotonic() - finished < 5  # at once, not after REQUEST_YIELD
    assert [m["thread"]["title"] for m in sandbox.messages()][-1] == (
        "Saved while a request is served"
    )


def test_requests_that_never_end_delay_each_post_by_request_yield_at_most(backend, sandbox):
    delivery = backend(request_yield=0.3)
    Ticket.objects.create(subject="Before")
    assert delivery.wait_idle(10)
    request = Request()  # never finishes while the messages go out
    try:
        started = time.monotonic()
        for n in range(3):
            Ticket.objects.create(subject=f"Under load {n}")
        assert delivery.wait_idle(20)
        took = time.monotonic() - started
    finally:
        request.finish()
    assert len(sandbox.messages()) == 4
    # Waited REQUEST_YIELD at each step (fanning out, each post: a few steps per wake-up),
    # then went on without the request finishing.
    assert 0.3 <= took < 6


def test_quiet_comes_after_the_last_request_of_every_serving_thread_has_finished():
    requests = Requests()
    serving = threading.Barrier(3)
    finished, other = threading.Event(), threading.Event()

    def serve(done: threading.Event) -> None:
        requests.started()
        serving.wait()
        done.wait()
        requests.finished()

    threads = [threading.Thread(target=serve, args=(e,)) for e in (finished, other)]
    for thread in threads:
        thread.start()
    serving.wait()
    assert not requests.wait_quiet(0.05)
    finished.set()
    threads[0].join()
    assert not requests.wait_quiet(0.05)  # the other thread still serves
    other.set()
    threads[1].join()
    assert requests.wait_quiet(1)


def test_requests_close_together_wait_longer_for_quiet_than_one_after_a_gap(monkeypatch):
    # Scaled up from milliseconds, so the machine's stalls cannot blur the two.
    monkeypatch.setattr(immediate, "QUIET", 0.5)
    monkeypatch.setattr(immediate, "QUIET_AFTER_GAP", 0.05)
    requests = Requests()
    requests.started()
    requests.finished()
    requests.started()  # at once: the process is busy
    requests.finished()
    assert not requests.wait_quiet(0.2)
    time.sleep(0.6)
    requests.started()  # after a gap longer than QUIET
    requests.finished()
    assert requests.wait_quiet(0.4)


def test_requests_that_overlap_after_a_gap_wait_the_longer_quiet(monkeypatch):
    monkeypatch.setattr(immediate, "QUIET", 0.5)
    monkeypatch.setattr(immediate, "QUIET_AFTER_GAP", 0.05)
    requests = Requests()
    serving, done = threading.Event(), threading.Event()

    def serve() -> None:
        requests.started()  # after a gap longer than QUIET
        serving.set()
        done.wait()
        requests.finished()

    time.sleep(0.6)
    first = threading.Thread(target=serve)
    first.start()
    serving.wait()
    requests.started()  # another serving thread, while the first still serves
    done.set()
    first.join()
    requests.finished()
    assert not requests.wait_quiet(0.2)


def test_request_never_finished_is_forgotten_at_its_threads_next_request():
    # A response never closed sends no request_finished; the serving thread's next
    # request replaces it instead of counting twice.
    requests = Requests()
    requests.started()
    requests.started()
    requests.finished()
    assert requests.wait_quiet(1)


@pytest.mark.parametrize("value", [-1, "0.1", None])
def test_request_yield_that_is_not_seconds_is_e031(settings, value):
    from django_flowdock.checks import check_setting_values

    settings.FLOWDOCK = {**settings.FLOWDOCK, "REQUEST_YIELD": value}
    [error] = check_setting_values()
    assert error.id == "django_flowdock.E031"
    assert 'FLOWDOCK["REQUEST_YIELD"]' in error.msg
