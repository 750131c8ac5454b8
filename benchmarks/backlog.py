"""A backlog: one ``flowdock_worker --once`` process delivers N captured changes.

N tickets are saved (each save captures its change, as in production after an outage
of the delivery side), then one worker process with the default settings fans them
out and delivers them to a local endpoint that answers at once. Its resident memory
(``VmRSS``) is sampled every second; reported: messages per second, RSS at the start
of delivery, at each quarter, at the end, and the peak.

Run: ``DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench .venv/bin/python -m
benchmarks.backlog [N]`` (SQLite without ``DATABASE_URL``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from benchmarks import endpoint
from benchmarks.setup_django import ROOT, setup


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main(n: int) -> None:
    url, server = endpoint.start()
    database = setup(API_URL=url, DELIVERY="worker")
    from django.db import transaction

    from django_flowdock.models import Message, Source
    from tests.testapp.models import Ticket

    Source.objects.create(name="Bench", flow_token="bench-token")
    started = time.perf_counter()
    for start in range(0, n, 1000):
        with transaction.atomic():
            for i in range(start, min(n, start + 1000)):
                Ticket.objects.create(subject=f"Ticket {i}", description="Backlog " * 20)
    print(f"{database}; {n} changes captured in {time.perf_counter() - started:.0f}s")

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "benchmarks.settings",
        "PYTHONPATH": str(ROOT),
        "BENCH_FLOWDOCK_API_URL": url,
    }
    boot = (
        "import os, django; django.setup(); from django.conf import settings; "
        "settings.FLOWDOCK.update(API_URL=os.environ['BENCH_FLOWDOCK_API_URL'], "
        "DELIVERY='worker'); from django.core.management import call_command; "
        "call_command('flowdock_worker', '--once')"
    )
    worker = subprocess.Popen(
        [sys.executable, "-c", boot],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # a progress line per batch
        text=True,
    )
    samples: list[tuple[float, float, int]] = []
    began = time.perf_counter()
    while worker.poll() is None:
        try:
            rss = rss_mib(worker.pid)
        except FileNotFoundError:
            break
        samples.append(
            (time.perf_counter() - began, rss, Message.objects.filter(state="sent").count())
        )
        time.sleep(1.0)
    out, _ = worker.communicate()
    elapsed = time.perf_counter() - began
    sent = Message.objects.filter(state="sent").count()
    print(out.strip())
    print(f"{sent} sent in {elapsed:.0f}s: {sent / elapsed:.0f} msg/s")
    print("| delivered | RSS (MiB) |")
    print("|---:|---:|")
    marks = [0, 0.25, 0.5, 0.75, 1.0]
    for mark in marks:
        at = min(samples, key=lambda s: abs(s[2] - mark * sent))
        print(f"| {at[2]:,} ({mark:.0%}) | {at[1]:.1f} |")
    print(f"peak RSS {max(s[1] for s in samples):.1f} MiB over {len(samples)} samples")
    server.terminate()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
