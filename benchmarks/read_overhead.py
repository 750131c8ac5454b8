"""Reads: loading thread objects against the same fields on a plain model.

    python -m benchmarks.read_overhead [ROWS] [ROUNDS]

Each round loads every row of ``testapp.Ticket`` (the mixin) and of
``benchapp.PlainTicket`` (the same columns, no mixin: the least any design could cost)
with ``list(Model.objects.all())``, in alternating order, plus a second plain load as
the control arm (what the machine's noise alone makes of a ratio). Each load is timed
in CPU time of this process (``time.process_time``), which other processes on a busy
machine disturb less than wall time. Reported: min / median / max of the per-round
ratios to the first plain load.
"""

from __future__ import annotations

import sys
import time

from benchmarks.setup_django import setup, spread


def main(rows: int = 5000, rounds: int = 30) -> None:
    described = setup()
    from benchmarks.benchapp.models import PlainTicket
    from tests.testapp.models import Ticket

    fields = {"subject": "Printer on fire", "description": "x" * 200, "state": "open"}
    PlainTicket.objects.bulk_create(PlainTicket(**fields) for _ in range(rows))
    Ticket.objects.bulk_create(Ticket(**fields) for _ in range(rows))

    def load(model: type) -> float:
        started = time.process_time()
        list(model.objects.all())
        return time.process_time() - started

    ratios: dict[str, list[float]] = {"thread model": [], "plain model again (control)": []}
    for round_ in range(rounds):
        arms = [PlainTicket, Ticket, PlainTicket]
        if round_ % 2:
            arms = [PlainTicket, PlainTicket, Ticket]
        times = {}
        for position, model in enumerate(arms):
            key = "plain" if position == 0 else ("thread" if model is Ticket else "control")
            times[key] = load(model)
        ratios["thread model"].append(times["thread"] / times["plain"])
        ratios["plain model again (control)"].append(times["control"] / times["plain"])
    print(f"{described}; {rows} rows, {rounds} rounds")
    print("| arm | ratio to the plain model (min / median / max) |")
    print("|---|---|")
    for name, values in ratios.items():
        print(f"| {name} | {spread(values)} |")


if __name__ == "__main__":
    main(*(int(arg) for arg in sys.argv[1:]))
