"""Save overhead: what the mixin adds to ``save()``, against the least any
transactional outbox could add.

The same fields saved in rounds of N saves per arm. The bare, lower-bound, save-path
and control arms take turns in blocks of 25 saves (in an order reversed every other
round), so that a shared machine's slow drifts fall on all of them alike; the two
``immediate`` arms then run whole, one after the other:

- bare: ``PlainTicket`` (``tests.testapp.Ticket``'s fields, no mixin), autocommit;
- lower bound: the bare save plus one raw ``INSERT`` of a pre-serialised JSON row,
  both in one ``atomic()``; run twice, the second as the control arm (what the
  machine's noise alone makes of a ratio);
- ``Ticket`` (the mixin) with 1 and with 10 sources, default settings (the
  ``immediate`` backend: the commit wakes a delivery thread of this process, which
  posts to a local endpoint while the saves go on);
- ``Ticket`` with the ``worker`` backend (nothing at commit): the save path alone.

Each save changes ``subject``. After each ``immediate`` arm the delivery thread is let
finish (untimed) so its work does not spill into the next arm; the changes the
``worker`` arm captured are marked done, never delivered. Prints per-arm µs per
save and min / median / max of the per-round ratio to the bare save and to the lower
bound, then the statements of one save with 1 and with 10 sources.

Run: ``.venv/bin/python -m benchmarks.save_overhead [SAVES_PER_ROUND] [ROUNDS]``
(SQLite on disk); ``BENCH_TMPDIR=/dev/shm ...`` for SQLite in tmpfs;
``DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench ...`` for PostgreSQL.
"""

from __future__ import annotations

import gc
import json
import re
import statistics
import sys
import time
from collections.abc import Callable

from benchmarks import endpoint
from benchmarks.setup_django import setup, spread

#: Saves per arm before the next arm's turn, in the interleaved arms.
BLOCK = 25


def main(n: int, rounds: int) -> None:
    url, server = endpoint.start()
    database = setup(API_URL=url)
    from django.conf import settings
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from benchmarks.benchapp.models import OutboxRow, PlainTicket
    from django_flowdock.delivery import get_backend
    from django_flowdock.models import Change, Message, Source
    from tests.testapp.models import Ticket

    plains = [PlainTicket.objects.create(subject=f"Ticket {i}") for i in range(n)]
    tickets = [Ticket.objects.create(subject=f"Ticket {i}") for i in range(n)]
    immediate = get_backend("immediate")
    immediate.dispatch()
    immediate.wait_idle(60)
    table = connection.ops.quote_name(OutboxRow._meta.db_table)
    insert = f"INSERT INTO {table} (payload, sent) VALUES (%s, %s)"
    row = json.dumps({"old": {"subject": "Ticket 0"}, "new": {"subject": "Ticket 0 (1)"}})
    serial = iter(range(10**9))

    everywhere = Source.objects.bulk_create(
        Source(name=f"S{i}", flow_token=f"token-{i}") for i in range(10)
    )

    def sources(count: int) -> None:
        Source.objects.update(active=False)
        Source.objects.filter(pk__in=[s.pk for s in everywhere[:count]]).update(active=True)

    def bare(i: int) -> None:
        obj = plains[i]
        obj.subject = f"Ticket {i} ({next(serial)})"
        obj.save()

    def lower_bound(i: int) -> None:
        with transaction.atomic(savepoint=False):
            bare(i)
            with connection.cursor() as cursor:
                cursor.execute(insert, [row, False])

    def mixin(i: int) -> None:
        obj = tickets[i]
        obj.subject = f"Ticket {i} ({next(serial)})"
        obj.save()

    # name → (backend, save): these take turns in blocks of BLOCK saves, so that a
    # shared machine's slow drifts fall on all of them alike.
    interleaved: dict[str, tuple[str, Callable[[int], None]]] = {
        "bare save (PlainTicket)": ("immediate", bare),
        "lower bound: bare + 1 raw INSERT": ("immediate", lower_bound),
        "Ticket, 1 source (worker: save path only)": ("worker", mixin),
        "lower bound again (control)": ("immediate", lower_bound),
    }
    # name → sources: each runs whole, then its delivery thread is let finish.
    whole = {"Ticket, 1 source (immediate)": 1, "Ticket, 10 sources (immediate)": 10}
    seconds: dict[str, list[float]] = {name: [] for name in [*interleaved, *whole]}
    for r in range(rounds):
        sources(1)
        spent = dict.fromkeys(interleaved, 0.0)
        order = list(interleaved) if r % 2 == 0 else list(reversed(interleaved))
        gc.collect()
        for first in range(0, n, BLOCK):
            for name in order:
                backend, save = interleaved[name]
                settings.FLOWDOCK["DELIVERY"] = backend
                started = time.perf_counter()
                for i in range(first, min(first + BLOCK, n)):
                    save(i)
                spent[name] += time.perf_counter() - started
        for name, total in spent.items():
            seconds[name].append(total / n)
        # The worker arm's changes: measured, never to be delivered.
        Change.objects.filter(fanned_out=False).update(fanned_out=True)
        settings.FLOWDOCK["DELIVERY"] = "immediate"
        for name in whole if r % 2 == 0 else reversed(whole):
            sources(whole[name])
            gc.collect()
            started = time.perf_counter()
            for i in range(n):
                mixin(i)
            seconds[name].append((time.perf_counter() - started) / n)
            assert immediate.wait_idle(300), "the delivery thread did not finish"
    settings.FLOWDOCK["DELIVERY"] = "immediate"
    assert not Message.objects.pending().exists()

    base = seconds["bare save (PlainTicket)"]
    low = seconds["lower bound: bare + 1 raw INSERT"]
    posted = Message.objects.filter(state=Message.State.SENT).count()
    print(f"{database}; {rounds} rounds x {n} saves per arm; {posted} messages posted")
    print("| arm | µs/save (median) | x bare, per round | x lower bound, per round |")
    print("|---|---:|---:|---:|")
    for name, values in seconds.items():
        to_bare = [v / b for v, b in zip(values, base, strict=True)]
        to_low = [v / b for v, b in zip(values, low, strict=True)]
        print(
            f"| {name} | {statistics.median(values) * 1e6:.0f} | {spread(to_bare)} "
            f"| {spread(to_low)} |"
        )

    statements = {}
    for count in (1, 10):
        sources(count)
        with CaptureQueriesContext(connection) as captured:
            mixin(0)
        immediate.wait_idle(60)
        statements[count] = [re.sub(r"'[^']*'|\b\d+\b", "?", q["sql"]) for q in captured]
    print(
        f"\nstatements per Ticket save, 1 source: {len(statements[1])}, "
        f"10 sources: {len(statements[10])}, identical: {statements[1] == statements[10]}"
    )
    for sql in statements[1]:
        print(f"  {sql[:110]}")
    server.terminate()


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 150,
        int(sys.argv[2]) if len(sys.argv) > 2 else 8,
    )
