"""A saving view under real gunicorn servers, Flowdock healthy: what the web process pays.

One gunicorn server per arm (``--workers 1``, gunicorn's default ``sync`` worker unless
``--worker-class gthread``), all on one database, serving ``benchmarks.benchapp.wsgi``:

- ``plain``: ``PlainTicket`` (no mixin) in a server without the app's effect (no author
  middleware, no delivery thread): the same view without the integration;
- ``plain, control``: a second such server, the same view: the noise floor;
- ``Ticket, default``: ``Ticket`` (the mixin) with the package's defaults: the
  ``immediate`` backend delivers from a thread of the serving process to a local
  endpoint that answers at once;
- ``Ticket, immediate never yielding``: the same with ``REQUEST_YIELD`` 0, the thread
  delivering without waiting for the requests in progress (the backend before it
  yielded);
- ``Ticket, worker backend`` (reference): the mixin's save without delivery in the
  server (what a separate ``flowdock_worker`` would leave to the web process).

This process is the client: one connection per server, re-opened when the server closes
it (the sync worker closes after each answer, so a request's time includes its TCP
connection, as behind a proxy; gthread keeps it alive). Each round runs
every arm at a steady rate (``--rate`` requests per second for ``--seconds``), then every
arm flat out (``--requests`` back to back), arms in a rotated order every round. Each
request saves one object with a new subject. After each arm, untimed, the outbox is let
drain (the time it took is printed), so every arm starts with an idle delivery thread.

Prints p50 / p90 / p99 per arm (ms, over all rounds) and min / median / max of the
per-round p50 ratio to ``plain``.

Run: ``.venv/bin/python -m benchmarks.view_latency_gunicorn [--rounds 8]``; SQLite (a
temporary file the servers share) by default, or
``DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench``.
"""

from __future__ import annotations

import argparse
import gc
import http.client
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import endpoint
from benchmarks.setup_django import ROOT, setup, spread

PLAIN = "plain"
#: name → (BENCH_ARM of its server, model label of the view).
ARMS = {
    PLAIN: ("plain", "benchapp.plainticket"),
    "plain, control": ("plain", "benchapp.plainticket"),
    "Ticket, default (immediate)": ("default", "testapp.ticket"),
    "Ticket, immediate never yielding": ("no-yield", "testapp.ticket"),
    "Ticket, worker backend (reference)": ("worker", "testapp.ticket"),
}
OBJECTS = 100


class Server:
    """One gunicorn server and the client's connection to it."""

    def __init__(self, arm: str, api_url: str, worker_class: str, threads: int) -> None:
        self.port = endpoint.free_port()
        gunicorn = Path(sys.executable).with_name("gunicorn")
        argv = [str(gunicorn), "--workers", "1", "--worker-class", worker_class]
        argv += ["--threads", str(threads), "--bind", f"127.0.0.1:{self.port}"]
        # Several servers at once: no shared control socket; only warnings on stderr.
        argv += ["--no-control-socket", "--log-level", "warning"]
        env = {**os.environ, "BENCH_API_URL": api_url, "BENCH_ARM": arm, "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(
            [*argv, "benchmarks.benchapp.wsgi:application"], cwd=ROOT, env=env
        )
        self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        for _ in range(300):
            try:
                self.get("/")
                return
            except OSError:
                self.connection.close()
                time.sleep(0.1)
        raise RuntimeError(f"gunicorn ({arm}) did not answer")

    def get(self, path: str) -> None:
        self.connection.request("GET", path)
        self.connection.getresponse().read()

    def post(self, path: str, body: bytes) -> float:
        """Seconds from sending the request to the end of the answer."""
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        started = time.perf_counter()
        try:
            self.connection.request("POST", path, body, headers)
            response = self.connection.getresponse()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            # A keep-alive connection the server closed meanwhile: the request never ran.
            self.connection.close()
            started = time.perf_counter()
            self.connection.request("POST", path, body, headers)
            response = self.connection.getresponse()
        response.read()
        took = time.perf_counter() - started
        assert response.status == 204, response.status
        if response.will_close:
            self.connection.close()  # the next request connects again, as it would have to
        return took

    def stop(self) -> None:
        self.connection.close()
        self.process.terminate()
        self.process.wait(30)


def wait_for_outbox() -> float:
    """Seconds until nothing waits for delivery: the default arm's thread catching up."""
    from django.db import connection

    from django_flowdock.models import Change, Message

    started = time.perf_counter()
    deadline = started + 120
    while time.perf_counter() < deadline:
        pending = Message.objects.pending().exists()
        unsent = Change.objects.filter(fanned_out=False, error="").exists()
        if not pending and not unsent:
            connection.close()
            return time.perf_counter() - started
        time.sleep(0.05)
    raise RuntimeError("the outbox did not drain within 120 s")


def percentile(values: list[float], q: float) -> float:
    return (
        statistics.quantiles(values, n=100, method="inclusive")[q - 1] if q < 100 else max(values)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--rate", type=float, default=50.0, help="requests/s, steady mode")
    parser.add_argument("--seconds", type=float, default=4.0, help="per arm, steady mode")
    parser.add_argument("--requests", type=int, default=300, help="per arm, flat-out mode")
    parser.add_argument("--worker-class", default="sync", choices=["sync", "gthread"])
    parser.add_argument("--threads", type=int, default=1, help="gthread threads per worker")
    args = parser.parse_args()

    healthy_url, healthy = endpoint.start()
    database = setup(API_URL=healthy_url)
    from django.db import connections

    from benchmarks.benchapp.models import PlainTicket
    from django_flowdock.delivery import get_backend
    from django_flowdock.models import Change, Source
    from tests.testapp.models import Ticket

    Source.objects.create(name="Bench", flow_token="bench-token")
    pks = {
        "benchapp.plainticket": [
            PlainTicket.objects.create(subject=f"T{i}").pk for i in range(OBJECTS)
        ],
        "testapp.ticket": [Ticket.objects.create(subject=f"T{i}").pk for i in range(OBJECTS)],
    }
    backend = get_backend()
    backend.dispatch()
    assert backend.wait_idle(120)
    connections.close_all()
    servers = {
        name: Server(arm, healthy_url, args.worker_class, args.threads)
        for name, (arm, _model) in ARMS.items()
    }
    serial = iter(range(10**9))

    def run(name: str, count: int, interval: float) -> list[float]:
        server, model = servers[name], ARMS[name][1]
        targets = pks[model]
        latencies = []
        gc.collect()
        gc.disable()  # the client's collections are no server's latency
        next_at = time.perf_counter()
        for i in range(count):
            if interval:
                next_at += interval
                time.sleep(max(0.0, next_at - time.perf_counter()))
            path = f"/rename/{model}/{targets[i % len(targets)]}/"
            latencies.append(server.post(path, f"subject=S{next(serial)}".encode()))
        gc.enable()
        return latencies

    modes = {
        f"steady, {args.rate:g} req/s": (round(args.rate * args.seconds), 1 / args.rate),
        "flat out": (args.requests, 0.0),
    }
    latencies = {(m, a): [] for m in modes for a in ARMS}
    p50s = {(m, a): [] for m in modes for a in ARMS}
    drains: dict[str, list[float]] = {a: [] for a in ARMS}
    names = list(ARMS)
    try:
        for r in range(args.rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for mode, (count, interval) in modes.items():
                for name in order:
                    values = run(name, count, interval)
                    latencies[mode, name] += values
                    p50s[mode, name].append(statistics.median(values))
                    if ARMS[name][0] == "worker":
                        # No server of this run delivers them: put aside, untimed.
                        Change.objects.filter(fanned_out=False).update(fanned_out=True)
                    drains[name].append(wait_for_outbox())
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        for server in servers.values():
            server.stop()
        healthy.terminate()

    print(
        f"{database}; gunicorn 1 worker, {args.worker_class}"
        + (f" ({args.threads} threads)" if args.worker_class == "gthread" else "")
        + f"; {args.rounds} rounds"
    )
    for mode, (count, _interval) in modes.items():
        print(f"\n{mode}, {count} requests per arm per round")
        print("| arm | p50 ms | p90 ms | p99 ms | p50 x plain, per round |")
        print("|---|---:|---:|---:|---:|")
        for name in ARMS:
            values = latencies[mode, name]
            ratios = [v / b for v, b in zip(p50s[mode, name], p50s[mode, PLAIN], strict=True)]
            cells = [percentile(values, q) * 1e3 for q in (50, 90, 99)]
            print(f"| {name} | {' | '.join(f'{c:.2f}' for c in cells)} | {spread(ratios)} |")
    print("\nseconds for the outbox to drain after an arm (median / max):")
    for name, values in drains.items():
        print(f"- {name}: {statistics.median(values):.2f} / {max(values):.2f}")


if __name__ == "__main__":
    main()
