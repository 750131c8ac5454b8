"""Drain throughput: the delivery engine against a hand-written minimal drain.

Part 1, one thread, an endpoint that answers at once, interleaved rounds of N
messages (N tickets updated once each, so N threads of one message):

- engine: ``fan_out()`` until done (trace, describe, resolve sources), then
  ``drain()`` (claim, render, repair, validate, post, record each outcome), timed
  together and, separately, ``drain()`` alone;
- minimal: a loop over a table of pre-rendered JSON payloads (the engine's own, from
  the first round): ``SELECT`` 50 unsent rows, then for each a ``requests.Session``
  post and an ``UPDATE`` marking it sent.

Part 2, the endpoint answering after 20 ms (a remote API): ``flowdock_worker``'s loop
(``Worker(once=True)``, fan-out included) with 4 threads against 1 thread, interleaved.

Prints messages per second and min / median / max of the per-round ratios.
Run: ``.venv/bin/python -m benchmarks.drain_throughput [MESSAGES] [ROUNDS]``; set
``DATABASE_URL`` for PostgreSQL (see ``setup_django``).
"""

from __future__ import annotations

import gc
import json
import statistics
import sys
import time

from benchmarks import endpoint
from benchmarks.setup_django import setup, spread

LATENCY = 0.020
LATENCY_MESSAGES = 100


def main(n: int, rounds: int) -> None:
    fast_url, fast = endpoint.start()
    slow_url, slow = endpoint.start(latency=LATENCY)
    database = setup(API_URL=fast_url, DELIVERY="worker")
    import requests
    from django.conf import settings
    from django.db import connection, connections

    from benchmarks.benchapp.models import OutboxRow
    from django_flowdock.delivery.engine import drain
    from django_flowdock.delivery.fanout import fan_out
    from django_flowdock.delivery.worker import Worker
    from django_flowdock.models import Message, Source
    from tests.testapp.models import Ticket

    Source.objects.create(name="Bench", flow_token="bench-token")
    tickets = [Ticket.objects.create(subject=f"Ticket {i}") for i in range(n)]
    drain()
    serial = iter(range(10**9))

    def capture(count: int) -> None:
        for ticket in tickets[:count]:
            ticket.subject = f"Ticket {ticket.pk} ({next(serial)})"
            ticket.save()

    table = connection.ops.quote_name(OutboxRow._meta.db_table)
    select = f"SELECT id, payload FROM {table} WHERE NOT sent ORDER BY id LIMIT 50"
    update = f"UPDATE {table} SET sent = %s WHERE id = %s"
    session = requests.Session()
    headers = {"Content-Type": "application/json"}

    def minimal_drain() -> int:
        sent = 0
        while True:
            with connection.cursor() as cursor:
                cursor.execute(select)
                rows = cursor.fetchall()
            if not rows:
                return sent
            for pk, payload in rows:
                session.post(f"{fast_url}/messages", data=payload, headers=headers, timeout=10)
                with connection.cursor() as cursor:
                    cursor.execute(update, [True, pk])
                sent += 1

    payloads: list[str] = []
    times: dict[str, list[float]] = {"engine": [], "engine drain() only": [], "minimal": []}
    for r in range(rounds):
        for arm in ("engine", "minimal") if r % 2 == 0 else ("minimal", "engine"):
            if arm == "engine":
                capture(n)
                gc.collect()
                started = time.perf_counter()
                while fan_out():
                    pass
                fanned = time.perf_counter()
                result = drain()
                ended = time.perf_counter()
                assert result.sent == n, result
                times["engine"].append(ended - started)
                times["engine drain() only"].append(ended - fanned)
                if not payloads:  # round 0 runs the engine first
                    sent = Message.objects.select_related("source").order_by("-pk")[:n]
                    payloads = [json.dumps(m.api_payload()) for m in sent]
            else:
                OutboxRow.objects.bulk_create(OutboxRow(payload=p) for p in payloads)
                gc.collect()
                started = time.perf_counter()
                assert minimal_drain() == n
                times["minimal"].append(time.perf_counter() - started)

    print(f"{database}; part 1: {rounds} rounds x {n} messages, endpoint answers at once")
    print("| arm | msg/s (median) | x minimal drain, per round |")
    print("|---|---:|---:|")
    for name, values in times.items():
        ratios = [m / v for v, m in zip(values, times["minimal"], strict=True)]
        print(f"| {name} | {n / statistics.median(values):.0f} | {spread(ratios)} |")
    print(f"payload size: {statistics.median(len(p) for p in payloads):.0f} bytes (median)")

    settings.FLOWDOCK["API_URL"] = slow_url
    threaded: dict[int, list[float]] = {1: [], 4: []}
    for r in range(rounds // 2 or 1):
        for threads in (1, 4) if r % 2 == 0 else (4, 1):
            capture(LATENCY_MESSAGES)
            connections.close_all()
            worker = Worker(threads=threads, once=True)
            started = time.perf_counter()
            worker.run()
            threaded[threads].append(time.perf_counter() - started)
            assert worker.result.sent == LATENCY_MESSAGES, worker.result
    print(
        f"\npart 2: {len(threaded[1])} rounds x {LATENCY_MESSAGES} messages, "
        f"endpoint answers after {LATENCY * 1000:.0f} ms"
    )
    print("| worker threads | msg/s (median) | x 1 thread, per round |")
    print("|---|---:|---:|")
    for threads, values in threaded.items():
        ratios = [one / v for v, one in zip(values, threaded[1], strict=True)]
        rate = LATENCY_MESSAGES / statistics.median(values)
        print(f"| {threads} | {rate:.0f} | {spread(ratios)} |")
    fast.terminate()
    slow.terminate()


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 300,
        int(sys.argv[2]) if len(sys.argv) > 2 else 8,
    )
