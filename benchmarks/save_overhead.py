"""Save overhead: what the mixin adds to ``save()``.

Compares, in one run, saves of ``Ticket`` (FlowdockThread, outbox written, not
delivered: the worker backend) with 1 and 10 sources against ``Plain`` (no mixin)
and against a save that posts to Flowdock synchronously (a local endpoint), as an
integration without an outbox would. Every save is its own transaction: in autocommit
mode, and wrapped in ``atomic()`` as under ``ATOMIC_REQUESTS`` (compared with a bare
save wrapped the same way). Run: ``.venv/bin/python -m benchmarks.save_overhead [N]``.
"""

from __future__ import annotations

import statistics
import sys
import time

from benchmarks import endpoint
from benchmarks.setup_django import setup

ROUNDS = 5


def main(n: int) -> None:
    url, server = endpoint.start()
    setup("worker")
    import requests
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext
    from django_flowdock.payloads import activity_message

    from django_flowdock.models import Message, Source
    from tests.testapp.models import Plain, Ticket

    plains = [Plain.objects.create(subject=f"P{i}") for i in range(n)]
    tickets = [Ticket.objects.create(subject=f"T{i}") for i in range(n)]
    payload = activity_message(tickets[0], "updated")
    session = requests.Session()

    def bare_update(i: int) -> None:
        obj = plains[i]
        obj.subject = f"P{i} {time.perf_counter_ns()}"
        obj.save()

    def ticket_update(i: int) -> None:
        obj = tickets[i]
        obj.subject = f"T{i} {time.perf_counter_ns()}"
        obj.save()

    def sync_post_update(i: int) -> None:
        bare_update(i)
        session.post(f"{url}/messages", json=payload, timeout=5).raise_for_status()

    def in_transaction(fn):
        def run(i: int) -> None:
            with transaction.atomic():
                fn(i)

        return run

    def bare_create(i: int) -> None:
        Plain.objects.create(subject=f"new {i}")

    def ticket_create(i: int) -> None:
        Ticket.objects.create(subject=f"new {i}")

    def timed(fn) -> float:
        best = []
        for _ in range(ROUNDS):
            started = time.perf_counter()
            for i in range(n):
                fn(i)
            best.append((time.perf_counter() - started) / n)
        return statistics.median(best)

    def queries(fn) -> int:
        with CaptureQueriesContext(connection) as captured:
            fn(0)
        return len(captured)

    def sources(count: int) -> None:
        Source.objects.all().delete()
        Source.objects.bulk_create(Source(name=f"S{i}", flow_token=f"tok{i}") for i in range(count))

    results = {}
    sources(1)
    results["bare update (Plain)"] = (timed(bare_update), queries(bare_update))
    results["bare create (Plain)"] = (timed(bare_create), queries(bare_create))
    results["bare update, atomic (Plain)"] = (timed(in_transaction(bare_update)), 1)
    results["sync post in save (Plain + POST)"] = (timed(sync_post_update), queries(bare_update))
    results["Ticket update, 1 source"] = (timed(ticket_update), queries(ticket_update))
    results["Ticket update, atomic, 1 source"] = (
        timed(in_transaction(ticket_update)),
        queries(ticket_update),
    )
    results["Ticket create, 1 source"] = (timed(ticket_create), queries(ticket_create))
    sources(10)
    results["Ticket update, 10 sources"] = (timed(ticket_update), queries(ticket_update))
    results["Ticket update, atomic, 10 sources"] = (
        timed(in_transaction(ticket_update)),
        queries(ticket_update),
    )
    results["Ticket create, 10 sources"] = (timed(ticket_create), queries(ticket_create))
    assert Message.objects.exists()

    bare_u = results["bare update (Plain)"][0]
    bare_c = results["bare create (Plain)"][0]
    bare_a = results["bare update, atomic (Plain)"][0]
    print(f"database: {connection.vendor}; {n} saves x {ROUNDS} rounds (median)")
    print(f"{'case':38} {'µs/save':>9} {'x bare':>7} {'queries':>8}")
    for name, (seconds, count) in results.items():
        base = bare_c if "create" in name else bare_a if "atomic" in name else bare_u
        print(f"{name:38} {seconds * 1e6:9.0f} {seconds / base:7.2f} {count:8d}")
    server.terminate()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
