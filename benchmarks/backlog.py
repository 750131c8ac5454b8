"""Backlog: drain 100,000 pending messages with bounded memory.

Fills the outbox (in chunks), resets the process's peak-RSS counter (Linux), then
drains with ``flowdock_worker``'s loop into a fast local endpoint and reports the
time, the rate and the peak RSS during the drain next to the RSS before it.
Run: ``.venv/bin/python -m benchmarks.backlog [MESSAGES] [THREADS]``.
"""

from __future__ import annotations

import gc
import sys
import time
from pathlib import Path

from benchmarks import endpoint
from benchmarks.setup_django import setup

CHUNK = 5000
BATCH_SIZE = 500


def rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def main(n: int, threads: int) -> None:
    url, server = endpoint.start()
    # Bigger batches: on SQLite a claim costs about the same for 50 or 500 rows.
    setup("worker", API_URL=url, BATCH_SIZE=BATCH_SIZE)
    from django.db import connection

    from django_flowdock.delivery.worker import Worker
    from django_flowdock.models import Message, Source
    from tests.testapp.models import Ticket

    source = Source.objects.create(name="Bench", flow_token="bench-token")
    Ticket.objects.create(subject="Backlog")
    payload = Message.objects.get().payload
    Message.objects.all().delete()
    started = time.perf_counter()
    for offset in range(0, n, CHUNK):
        Message.objects.bulk_create(
            Message(
                source=source, thread_key=f"bench:{i % 1000}", event="activity", payload=payload
            )
            for i in range(offset, min(n, offset + CHUNK))
        )
    filled = time.perf_counter() - started
    gc.collect()
    before = rss_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to now
    worker = Worker(threads=threads, once=True)
    started = time.perf_counter()
    worker.run()
    took = time.perf_counter() - started
    peak = rss_kib("VmHWM")
    assert worker.result.sent == n, worker.result
    assert not Message.objects.pending().exists()
    print(
        f"{n} messages (1000 threads of {n // 1000}), {threads} worker threads, "
        f"BATCH_SIZE {BATCH_SIZE}, database {connection.vendor}"
    )
    print(f"filled in {filled:.1f}s; drained in {took:.1f}s = {n / took:.0f} msg/s")
    print(f"RSS before drain {before / 1024:.1f} MiB, peak during drain {peak / 1024:.1f} MiB")
    server.terminate()


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 100_000,
        int(sys.argv[2]) if len(sys.argv) > 2 else 4,
    )
