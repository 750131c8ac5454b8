"""Reads: loading thread objects against the same fields on a plain model.

    python -m benchmarks.read_overhead [ROWS] [ROUNDS] [LOADS]

Each round loads every row of ``testapp.Ticket`` (the mixin) and of
``benchapp.PlainTicket`` (the same columns, no mixin: the least any design could cost)
with ``list(Model.objects.all())``, plus a second plain load as the control arm (what
the machine's noise alone makes of a ratio). The three arms take turns ``LOADS`` times
per round (3 by default), in an order that changes every round, and each arm counts its
fastest load of the round: on a shared machine a load that another process preempted
says nothing about the code. Every load starts from a collected heap (``gc.collect()``,
not timed) so that a full collection lands in no arm by chance, and is timed in CPU time
of this process (``time.process_time``), which other processes disturb less than wall
time. Reported: min / median / max of the per-round ratios to the first plain arm.
"""

from __future__ import annotations

import gc
import sys
import time

from benchmarks.setup_django import setup, spread


def main(rows: int = 5000, rounds: int = 30, loads: int = 3) -> None:
    described = setup()
    from benchmarks.benchapp.models import PlainTicket
    from tests.testapp.models import Ticket

    fields = {"subject": "Printer on fire", "description": "x" * 200, "state": "open"}
    PlainTicket.objects.bulk_create(PlainTicket(**fields) for _ in range(rows))
    Ticket.objects.bulk_create(Ticket(**fields) for _ in range(rows))
    # Loaded once untimed: what any process does once per model is not a read's cost.
    list(Ticket.objects.all()[:1])

    def load(model: type) -> float:
        gc.collect()
        started = time.process_time()
        list(model.objects.all())
        return time.process_time() - started

    arms = {"plain": PlainTicket, "thread": Ticket, "control": PlainTicket}
    ratios: dict[str, list[float]] = {"thread model": [], "plain model again (control)": []}
    for round_ in range(rounds):
        order = list(arms) if round_ % 2 == 0 else list(reversed(arms))
        times = {arm: float("inf") for arm in arms}
        for _ in range(loads):
            for arm in order:
                times[arm] = min(times[arm], load(arms[arm]))
        ratios["thread model"].append(times["thread"] / times["plain"])
        ratios["plain model again (control)"].append(times["control"] / times["plain"])
    print(f"{described}; {rows} rows, {rounds} rounds, fastest of {loads} loads per arm")
    print("| arm | ratio to the plain model (min / median / max) |")
    print("|---|---|")
    for name, values in ratios.items():
        print(f"| {name} | {spread(values)} |")


if __name__ == "__main__":
    main(*(int(arg) for arg in sys.argv[1:]))
