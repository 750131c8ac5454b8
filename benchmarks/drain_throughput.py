"""Drain throughput: the delivery engine against hand-written drains doing the same work.

Part 1, one connection (``CONCURRENCY`` 1), an endpoint that answers at once,
interleaved rounds of N messages (N tickets, each with an assignee and a project,
updated once each, so N threads of one message):

- engine: ``drain()`` as a worker runs it (per round: fan out (trace, describe,
  resolve sources), claim, render, repair, validate, post, record each outcome);
- hand-written: what a project would write for itself: ``SELECT`` 50 unsent outbox
  rows, load their tickets (one query, foreign keys joined), build each message's JSON
  (title, body, status, fields, author, thread id), post it on a ``requests.Session``,
  ``UPDATE`` the row as sent; the comparator, run twice per round (the second is the
  control arm: what the machine's noise alone makes of a ratio);
- lower bound: the same posts of pre-built JSON on a ``requests.Session``, no database;
- on PostgreSQL with psycopg 3 binding on the client, the engine writing each outcome
  and its head's hand-over as two statements in a transaction (what psycopg2 and
  server-side binding do) rather than in one query.

Part 2, the endpoint answering after 20 ms (a remote API), M messages per round:

- engine, default settings (``CONCURRENCY`` 16), against the engine posting one at a
  time (``CONCURRENCY`` 1);
- a bare pooled ``requests`` loop at the same concurrency (16 threads, each its own
  keep-alive session, pre-built JSON, no database): the lower bound.

Part 3 (``--widths``): the engine at 20 ms with ``CONCURRENCY`` 1, 2, 4, 8, 16 and 32,
interleaved, to choose the default.

Prints messages per second and min / median / max of the per-round ratios.
Run: ``.venv/bin/python -m benchmarks.drain_throughput [MESSAGES] [ROUNDS] [--widths]``;
set ``DATABASE_URL`` for PostgreSQL (see ``setup_django``).
"""

from __future__ import annotations

import gc
import json
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from benchmarks import endpoint
from benchmarks.setup_django import setup, spread

LATENCY = 0.020
LATENCY_MESSAGES = 400
TWO_STATEMENTS = "engine, outcome in a transaction of two statements"


def main(n: int, rounds: int) -> None:
    fast_url, fast = endpoint.start()
    slow_url, slow = endpoint.start(latency=LATENCY)
    database = setup(API_URL=fast_url, DELIVERY="worker")
    import requests
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.db import connection

    from benchmarks.benchapp.models import OutboxRow
    from django_flowdock.conf import DEFAULTS
    from django_flowdock.delivery import engine as engine_module
    from django_flowdock.delivery.engine import drain
    from django_flowdock.models import Message, Source
    from tests.testapp.models import Project, Ticket

    Source.objects.create(name="Bench", flow_token="bench-token")
    agent = User.objects.create(username="agent", first_name="Ada", last_name="Agent")
    project = Project.objects.create(name="Website")
    tickets = [
        Ticket.objects.create(subject=f"Ticket {i}", assignee=agent, project=project)
        for i in range(max(n, LATENCY_MESSAGES))
    ]
    drain()
    serial = iter(range(10**9))

    def capture(count: int) -> None:
        for ticket in tickets[:count]:
            ticket.subject = f"Ticket {ticket.pk} ({next(serial)})"
            ticket.state = "pending" if ticket.state == "open" else "open"
            ticket.save()

    table = connection.ops.quote_name(OutboxRow._meta.db_table)
    select = f"SELECT id, payload FROM {table} WHERE NOT sent ORDER BY id LIMIT 50"
    update = f"UPDATE {table} SET sent = %s WHERE id = %s"
    session = requests.Session()
    headers = {"Content-Type": "application/json"}
    colors = {"open": "green", "pending": "yellow", "solved": "grey"}

    def build(ticket: Ticket) -> str:
        assignee = ticket.assignee
        return json.dumps(
            {
                "event": "activity",
                "flow_token": "bench-token",
                "author": {"name": "Django"},
                "title": "updated ticket",
                "external_thread_id": f"testapp.ticket:{ticket.pk}",
                "thread": {
                    "title": ticket.subject,
                    "body": ticket.description,
                    "external_url": f"https://helpdesk.example/tickets/{ticket.pk}/",
                    "status": {"value": ticket.state, "color": colors.get(ticket.state, "grey")},
                    "fields": [
                        {"label": "Priority", "value": ticket.priority},
                        {
                            "label": "Assignee",
                            "value": assignee.get_full_name() if assignee else "",
                        },
                        {
                            "label": "Project",
                            "value": ticket.project.name if ticket.project else "",
                        },
                    ],
                },
            }
        )

    def hand_written() -> int:
        sent = 0
        while True:
            with connection.cursor() as cursor:
                cursor.execute(select)
                rows = cursor.fetchall()
            if not rows:
                return sent
            loaded = Ticket.objects.select_related("assignee", "project").in_bulk(
                [int(ticket_pk) for _pk, ticket_pk in rows]
            )
            for pk, ticket_pk in rows:
                body = build(loaded[int(ticket_pk)])
                session.post(f"{fast_url}/messages", data=body, headers=headers, timeout=10)
                with connection.cursor() as cursor:
                    cursor.execute(update, [True, pk])
                sent += 1

    def engine(count: int) -> float:
        capture(count)
        gc.collect()
        started = time.perf_counter()
        result = drain()  # fans out as it goes, as a worker does
        elapsed = time.perf_counter() - started
        assert result.sent == count, result
        return elapsed

    prebuilt = [build(t) for t in tickets]

    def lower_bound(url: str, count: int) -> float:
        started = time.perf_counter()
        for body in prebuilt[:count]:
            session.post(f"{url}/messages", data=body, headers=headers, timeout=10)
        return time.perf_counter() - started

    settings.FLOWDOCK["CONCURRENCY"] = 1
    arms = ["engine", "hand-written", "hand-written (control)", "lower bound"]
    one_query = engine_module._one_query
    if connection.vendor == "postgresql" and one_query(connection):
        # What psycopg2 or server-side binding pay: an outcome and its head's hand-over
        # as two statements in a transaction rather than one query.
        arms.insert(1, TWO_STATEMENTS)
    times: dict[str, list[float]] = {arm: [] for arm in arms}
    for r in range(rounds):
        for arm in arms if r % 2 == 0 else arms[::-1]:
            if arm == "engine":
                times[arm].append(engine(n))
            elif arm == TWO_STATEMENTS:
                engine_module._one_query = lambda connection: False
                try:
                    times[arm].append(engine(n))
                finally:
                    engine_module._one_query = one_query
            elif arm.startswith("hand-written"):
                OutboxRow.objects.bulk_create(OutboxRow(payload=str(t.pk)) for t in tickets[:n])
                gc.collect()
                started = time.perf_counter()
                assert hand_written() == n
                times[arm].append(time.perf_counter() - started)
            else:
                times[arm].append(lower_bound(fast_url, n))

    print(f"{database}; part 1: {rounds} rounds x {n} messages, one connection, answers at once")
    print("| arm | msg/s (median) | x hand-written drain, per round |")
    print("|---|---:|---:|")
    for name, values in times.items():
        ratios = [h / v for v, h in zip(values, times["hand-written"], strict=True)]
        print(f"| {name} | {n / statistics.median(values):.0f} | {spread(ratios)} |")
    payloads = Message.objects.order_by("-pk").values_list("payload", flat=True)[:50]
    size = statistics.median(len(json.dumps(payload)) for payload in payloads)
    print(f"engine payload size: {size:.0f} bytes (median); hand-written: {len(prebuilt[0])}")

    settings.FLOWDOCK["API_URL"] = slow_url
    m = LATENCY_MESSAGES
    width = DEFAULTS["CONCURRENCY"]
    pool = ThreadPoolExecutor(width)
    local = threading.local()

    def pooled_post(body: str) -> None:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        local.session.post(f"{slow_url}/messages", data=body, headers=headers, timeout=10)

    def pooled(count: int) -> float:
        started = time.perf_counter()
        list(pool.map(pooled_post, prebuilt[:count]))
        return time.perf_counter() - started

    def engine_at(concurrency: int) -> float:
        settings.FLOWDOCK["CONCURRENCY"] = concurrency
        return engine(m)

    default, bare = f"engine, default ({width})", f"pooled requests x{width}"
    slow_arms = [default, "engine, one at a time", bare]
    slow_times: dict[str, list[float]] = {arm: [] for arm in slow_arms}
    for r in range(max(rounds // 2, 2)):
        for arm in slow_arms if r % 2 == 0 else slow_arms[::-1]:
            if arm == default:
                slow_times[arm].append(engine_at(width))
            elif arm == "engine, one at a time":
                slow_times[arm].append(engine_at(1))
            else:
                slow_times[arm].append(pooled(m))
    print(
        f"\npart 2: {len(slow_times[slow_arms[0]])} rounds x {m} messages, "
        f"endpoint answers after {LATENCY * 1000:.0f} ms"
    )
    print(f"| arm | msg/s (median) | x one at a time | x {bare} |")
    print("|---|---:|---:|---:|")
    for name, values in slow_times.items():
        one = [o / v for v, o in zip(values, slow_times["engine, one at a time"], strict=True)]
        pooled = [b / v for v, b in zip(values, slow_times[bare], strict=True)]
        rate = m / statistics.median(values)
        print(f"| {name} | {rate:.0f} | {spread(one)} | {spread(pooled)} |")
    if "--widths" in sys.argv:
        widths = [1, 2, 4, 8, 16, 32]
        by_width: dict[int, list[float]] = {w: [] for w in widths}
        for r in range(max(rounds // 2, 2)):
            for width in widths if r % 2 == 0 else widths[::-1]:
                by_width[width].append(engine_at(width))
        print(f"\npart 3: {len(by_width[1])} rounds x {m} messages, 20 ms, by CONCURRENCY")
        print("| CONCURRENCY | msg/s (median) | x CONCURRENCY 1, per round |")
        print("|---:|---:|---:|")
        for width, values in by_width.items():
            ratios = [o / v for v, o in zip(values, by_width[1], strict=True)]
            print(f"| {width} | {m / statistics.median(values):.0f} | {spread(ratios)} |")
    fast.terminate()
    slow.terminate()


if __name__ == "__main__":
    numbers = [int(a) for a in sys.argv[1:] if not a.startswith("--")]
    main(numbers[0] if numbers else 300, numbers[1] if len(numbers) > 1 else 8)
