"""Claim cost: the time of ``engine.claim(50)`` against the number of pending messages.

For 1k, 10k and 100k pending messages (one source), in three layouts:

- interleaved: N/10 threads, message i in thread ``i mod N/10`` (the first N/10
  messages by id are each first in their thread);
- blocks: N/10 threads of 10 consecutive messages (one message in 10 is deliverable);
- one thread: a single thread's backlog (only the oldest message is deliverable).

Each layout and size deletes the previous messages and fills the table again (the churn
of a real outbox; no manual VACUUM or ANALYZE: autovacuum decides), heads marked as
fan-out marks them. On PostgreSQL the table is ANALYZEd after filling, as autovacuum
does within a minute of such a change (``--no-analyze`` measures the minute before); the
dead rows of the deleted messages stay (no VACUUM). Then, untimed, ``os.sync()`` (Unix;
PostgreSQL's own buffers are its checkpointer's): a claim commits, and a commit's sync
to disk would otherwise wait for the operating system to write back the pages of the
fill just before it (100,000 rows' worth against 1,000's), which is the fill's cost, not
the claim's (``--no-sync`` keeps it in). Each claim is timed, then released (untimed),
REPEAT times; the median is printed, and the ratio of the largest size to 1k. On
PostgreSQL a claim still running after TIMEOUT seconds is cancelled and shown as such.
A second table times the delivery loops' check of the lines (``lines.repair_lines()``,
run by each delivery process every ``CHECK_SECONDS``) on the same tables after the
claims, median of CHECKS runs.
Run: ``.venv/bin/python -m benchmarks.claim_cost [MAX_PENDING] [--no-analyze]
[--no-sync]``; set ``DATABASE_URL`` for PostgreSQL (see ``setup_django``).
"""

from __future__ import annotations

import os
import statistics
import sys
import time

from benchmarks.setup_django import setup

REPEAT = 7
CHECKS = 3
#: PostgreSQL only: a claim still running after this many seconds is cancelled.
TIMEOUT = 20
LAYOUTS = {
    "interleaved": lambda i, n: i % (n // 10),
    "blocks of 10": lambda i, n: i // 10,
    "one thread": lambda i, n: 0,
}


def main(largest: int, analyze: bool = True, sync: bool = True) -> None:
    database = setup(DELIVERY="worker")
    from django.db import OperationalError, connection

    from django_flowdock.delivery.engine import claim, release
    from django_flowdock.delivery.lines import CHECK_SECONDS, repair_lines
    from django_flowdock.models import Message, Source

    source = Source.objects.create(name="Bench", flow_token="bench-token")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"SET statement_timeout = '{TIMEOUT}s'")
    sizes = [n for n in (1_000, 10_000, 100_000) if n <= largest]
    rows: dict[str, list[str]] = {layout: [] for layout in LAYOUTS}
    medians: dict[str, list[float]] = {layout: [] for layout in LAYOUTS}
    checks: dict[str, list[str]] = {layout: [] for layout in LAYOUTS}
    for n in sizes:
        for layout, thread_of in LAYOUTS.items():
            Message.objects.all().delete()
            seen: set[int] = set()
            messages = []
            for i in range(n):
                thread = thread_of(i, n)
                messages.append(
                    Message(
                        source=source,
                        thread_key=f"bench:{thread}",
                        event="activity",
                        head=thread not in seen,
                    )
                )
                seen.add(thread)
            Message.objects.bulk_create(messages, batch_size=2000)
            if connection.vendor == "postgresql" and analyze:
                with connection.cursor() as cursor:
                    cursor.execute(f"ANALYZE {Message._meta.db_table}")
            if sync:
                os.sync()
            timings, claimed = [], 0
            try:
                for _ in range(REPEAT):
                    started = time.perf_counter()
                    batch = claim(50)
                    timings.append(time.perf_counter() - started)
                    claimed = len(batch.messages)
                    release(batch, batch.messages)
            except OperationalError:  # cancelled by statement_timeout
                rows[layout].append(f"> {TIMEOUT} s (cancelled)")
                medians[layout].append(float(TIMEOUT))
                continue
            medians[layout].append(statistics.median(timings))
            rows[layout].append(f"{statistics.median(timings) * 1000:.1f} ms ({claimed})")
            # After the claims, so that its reads do not warm the cache for them.
            checked = []
            for _ in range(CHECKS):
                started = time.perf_counter()
                assert repair_lines() == 0
                checked.append(time.perf_counter() - started)
            checks[layout].append(f"{statistics.median(checked) * 1000:.1f} ms")

    analyzed = "" if analyze or connection.vendor != "postgresql" else ", not ANALYZEd"
    analyzed += "" if sync else ", no sync after filling"
    print(f"{database}{analyzed}; median of {REPEAT} claims of up to 50 (messages claimed)")
    print("| layout | " + " | ".join(f"{n:,} pending" for n in sizes) + " | largest / 1k |")
    print("|---|" + "---:|" * (len(sizes) + 1))
    for layout, cells in rows.items():
        ratio = medians[layout][-1] / medians[layout][0]
        print(f"| {layout} | " + " | ".join(cells) + f" | {ratio:.2f}x |")
    every = f"every {CHECK_SECONDS:.0f} s per delivery process"
    print(f"\nthe lines' check ({every}), median of {CHECKS}")
    print("| layout | " + " | ".join(f"{n:,} pending" for n in sizes) + " |")
    print("|---|" + "---:|" * len(sizes))
    for layout, cells in checks.items():
        print(f"| {layout} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    numbers = [a for a in sys.argv[1:] if not a.startswith("--")]
    main(
        int(numbers[0]) if numbers else 100_000,
        analyze="--no-analyze" not in sys.argv,
        sync="--no-sync" not in sys.argv,
    )
