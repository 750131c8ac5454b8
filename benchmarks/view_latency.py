"""A view that saves, with Flowdock healthy, slow (answers after 3 s) or down.

Default settings (the ``immediate`` backend). Each request goes through Django's test
client (middleware, URL resolving, the view, request_finished) and saves one object
with a new subject. Arms, interleaved in rounds (order reversed every other round):

- ``PlainTicket`` (no mixin), Flowdock healthy: the same view without the integration;
- ``Ticket`` with one source, ``API_URL`` pointing at a local endpoint that answers at
  once, one that answers after 3 s, and a port where nothing listens.

Between arms, untimed, the delivery thread is let finish; after the slow and down arms
what is still pending is cancelled first, so every arm starts from an empty outbox and
an idle delivery thread.
Prints µs per request and min / median / max of the per-round ratio to the healthy arm.

Run: ``.venv/bin/python -m benchmarks.view_latency [REQUESTS_PER_ROUND] [ROUNDS]``.
"""

from __future__ import annotations

import gc
import statistics
import sys
import time

from benchmarks import endpoint
from benchmarks.setup_django import setup, spread

SLOW = 3.0


def main(n: int, rounds: int) -> None:
    healthy_url, healthy = endpoint.start()
    slow_url, slow = endpoint.start(latency=SLOW)
    down_url = f"http://127.0.0.1:{endpoint.free_port()}"
    database = setup(API_URL=healthy_url)
    from django.conf import settings
    from django.test import Client

    from benchmarks.benchapp.models import PlainTicket
    from django_flowdock.delivery import get_backend
    from django_flowdock.models import Change, Message, Source
    from tests.testapp.models import Ticket

    Source.objects.create(name="Bench", flow_token="bench-token")
    plains = [PlainTicket.objects.create(subject=f"Ticket {i}").pk for i in range(n)]
    tickets = [Ticket.objects.create(subject=f"Ticket {i}").pk for i in range(n)]
    backend = get_backend()
    backend.dispatch()
    backend.wait_idle(60)
    client = Client()
    serial = iter(range(10**9))

    # name → (model label, pks, API_URL)
    arms = {
        "PlainTicket (no mixin), healthy": ("benchapp.plainticket", plains, healthy_url),
        "Ticket, Flowdock healthy": ("testapp.ticket", tickets, healthy_url),
        f"Ticket, Flowdock answers after {SLOW:.0f} s": ("testapp.ticket", tickets, slow_url),
        "Ticket, Flowdock down (connection refused)": ("testapp.ticket", tickets, down_url),
    }
    seconds: dict[str, list[float]] = {name: [] for name in arms}
    for r in range(rounds):
        for name in list(arms) if r % 2 == 0 else list(reversed(arms)):
            model, pks, url = arms[name]
            settings.FLOWDOCK["API_URL"] = url
            gc.collect()
            started = time.perf_counter()
            for pk in pks:
                response = client.post(f"/rename/{model}/{pk}/", {"subject": f"S{next(serial)}"})
                assert response.status_code == 204, response
            seconds[name].append((time.perf_counter() - started) / n)
            while url != healthy_url:
                Change.objects.filter(fanned_out=False).update(fanned_out=True)
                Message.objects.pending().update(state=Message.State.CANCELLED)
                if backend.wait_idle(SLOW + 1):  # the post in flight has ended
                    break
            assert backend.wait_idle(60), "the delivery thread did not finish"
    settings.FLOWDOCK["API_URL"] = healthy_url

    base = seconds["Ticket, Flowdock healthy"]
    print(f"{database}; {rounds} rounds x {n} requests per arm")
    print("| arm | µs/request (median) | x Ticket healthy, per round |")
    print("|---|---:|---:|")
    for name, values in seconds.items():
        ratios = [v / b for v, b in zip(values, base, strict=True)]
        print(f"| {name} | {statistics.median(values) * 1e6:.0f} | {spread(ratios)} |")
    healthy.terminate()
    slow.terminate()


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 100,
        int(sys.argv[2]) if len(sys.argv) > 2 else 8,
    )
