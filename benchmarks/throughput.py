"""Delivery throughput: outbox → a fast local endpoint, in one run.

Compares ``drain()`` (claims, posts, records outcomes) with a bare
``requests.Session`` loop posting the same payloads (the ceiling for one Python
client) and with a new connection per message; then ``flowdock_worker``'s threads.
Run: ``.venv/bin/python -m benchmarks.throughput [MESSAGES] [LATENCY_MS]``; a
latency makes the endpoint answer like a remote API, where threads pay off.
"""

from __future__ import annotations

import sys
import time

from benchmarks import endpoint
from benchmarks.setup_django import setup


def main(n: int, latency: float) -> None:
    url, server = endpoint.start(latency)
    setup("worker", API_URL=url, TIMEOUT=(3.05, 10.0))
    import requests
    from django.db import connections

    from django_flowdock.delivery.engine import drain
    from django_flowdock.delivery.worker import Worker
    from django_flowdock.models import Message, Source
    from tests.testapp.models import Ticket

    source = Source.objects.create(name="Bench", flow_token="bench-token")

    def fill() -> list[dict]:
        Message.objects.all().delete()
        ticket = Ticket.objects.create(subject="Benchmark")
        template = Message.objects.filter(thread_key=ticket.get_flowdock_thread_id()).first()
        payload = template.payload
        Message.objects.all().delete()
        Message.objects.bulk_create(
            [
                Message(source=source, thread_key=f"bench:{i}", event="activity", payload=payload)
                for i in range(n)
            ],
            batch_size=500,
        )
        return [m.api_payload() for m in Message.objects.select_related("source")]

    results = {}
    payloads = fill()
    session = requests.Session()
    started = time.perf_counter()
    for payload in payloads:
        session.post(f"{url}/messages", json=payload, timeout=10).raise_for_status()
    results["bare requests.Session loop"] = n / (time.perf_counter() - started)

    started = time.perf_counter()
    for payload in payloads:
        requests.post(
            f"{url}/messages", json=payload, timeout=10, headers={"Connection": "close"}
        ).raise_for_status()
    results["new connection per message"] = n / (time.perf_counter() - started)

    fill()
    started = time.perf_counter()
    result = drain()
    results["drain(), 1 thread"] = n / (time.perf_counter() - started)
    assert result.sent == n, result

    for threads in (2, 4, 8):
        fill()
        connections.close_all()
        worker = Worker(threads=threads, once=True)
        started = time.perf_counter()
        worker.run()
        results[f"flowdock_worker --threads {threads}"] = n / (time.perf_counter() - started)
        assert worker.result.sent == n, worker.result

    ceiling = results["bare requests.Session loop"]
    print(
        f"database: {connections['default'].vendor}; {n} messages; "
        f"endpoint latency {latency * 1000:.0f} ms"
    )
    print(f"{'case':36} {'msg/s':>8} {'x bare loop':>12}")
    for name, rate in results.items():
        print(f"{name:36} {rate:8.0f} {rate / ceiling:12.2f}")
    server.terminate()


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 2000,
        float(sys.argv[2]) / 1000 if len(sys.argv) > 2 else 0.0,
    )
