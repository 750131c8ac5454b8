"""``manage.py flowdock_status``: what is waiting, what failed, and each source's circuit.

Three queries whatever the number of sources: the sources, the pending and failed
messages grouped by source and state, and the changes not fanned out yet.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count, Min
from django.utils import timezone

from django_flowdock.models import Change, Message, Source


@dataclass
class SourceStatus:
    source: Source
    circuit: str
    waiting: int = 0
    failed: int = 0
    oldest_waiting: datetime | None = None


class Command(BaseCommand):
    help = (
        "Show each Flowdock source's waiting and failed messages, the oldest waiting "
        "one's age and its delivery circuit. With --max-age, exit with status 1 when "
        "anything has waited longer (for cron and monitoring)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--max-age",
            type=float,
            default=None,
            metavar="SECONDS",
            help=(
                "Exit with status 1 when a message of an active source, or a change not "
                "fanned out yet, has waited longer than this."
            ),
        )
        parser.add_argument(
            "--json",
            action="store_true",
            dest="as_json",
            help="Print the status as JSON, for monitoring.",
        )

    def handle(self, *args, max_age: float | None, as_json: bool, **options):
        if max_age is not None and max_age < 0:
            raise CommandError("--max-age must be a number of seconds >= 0.")
        now = timezone.now()
        statuses = source_statuses(now)
        changes = Change.objects.filter(fanned_out=False).aggregate(
            count=Count("pk"), oldest=Min("created_at")
        )
        if as_json:
            self.stdout.write(self._json(now, statuses, changes, max_age))
        else:
            self._text(now, statuses, changes)
        if max_age is not None:
            late = _late(now, statuses, changes, max_age)
            if late:
                raise CommandError(f"{', '.join(late)} waited longer than {max_age:g} s.")

    def _text(self, now: datetime, statuses: list[SourceStatus], changes: dict) -> None:
        header = ("SOURCE", "STATUS", "CIRCUIT", "WAITING", "OLDEST", "FAILED")
        rows = [
            (
                str(s.source),
                "active" if s.source.active else "deactivated",
                s.circuit,
                str(s.waiting),
                _age(now, s.oldest_waiting),
                str(s.failed),
            )
            for s in statuses
        ]
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        numeric = {3, 5}

        def line(row: tuple[str, ...]) -> str:
            cells = (
                cell.rjust(width) if i in numeric else cell.ljust(width)
                for i, (cell, width) in enumerate(zip(row, widths, strict=True))
            )
            return "  ".join(cells).rstrip()

        self.stdout.write(line(header))
        for status, row in zip(statuses, rows, strict=True):
            self.stdout.write(line(row))
            for detail in _details(status):
                self.stdout.write(f"    {detail}")
        self.stdout.write(
            f"Total: {sum(s.waiting for s in statuses)} waiting "
            f"(oldest {_age(now, _oldest(statuses))}), "
            f"{sum(s.failed for s in statuses)} failed; {_count(changes['count'], 'change')} "
            f"not fanned out (oldest {_age(now, changes['oldest'])})."
        )

    def _json(
        self, now: datetime, statuses: list[SourceStatus], changes: dict, max_age: float | None
    ) -> str:
        data: dict[str, Any] = {
            "now": now.isoformat(),
            "sources": [
                {
                    "id": s.source.pk,
                    "name": s.source.name,
                    "flow": s.source.flow_name,
                    "active": s.source.active,
                    "error": s.source.error_message,
                    "waiting": s.waiting,
                    "failed": s.failed,
                    "oldest_waiting_seconds": _seconds(now, s.oldest_waiting),
                    "circuit": s.circuit,
                    "failing_since": _iso(s.source.failing_since),
                    "held_until": _iso(s.source.held_until),
                    "failures": s.source.failures,
                    "last_failure": s.source.last_failure,
                }
                for s in statuses
            ],
            "changes_waiting": changes["count"],
            "oldest_change_seconds": _seconds(now, changes["oldest"]),
            "waiting": sum(s.waiting for s in statuses),
            "oldest_waiting_seconds": _seconds(now, _oldest(statuses)),
            "failed": sum(s.failed for s in statuses),
        }
        if max_age is not None:
            data["max_age"] = max_age
            data["late"] = _late(now, statuses, changes, max_age)
        return json.dumps(data, indent=2)


def source_statuses(now: datetime) -> list[SourceStatus]:
    """Every source with its pending and failed messages counted: two queries."""
    # The flow token is not shown, so not decrypted either.
    statuses = {
        source.pk: SourceStatus(source, source.circuit_state(now))
        for source in Source.objects.defer("flow_token").order_by("name", "pk")
    }
    # Only pending and failed rows are read (the state index), not the sent history.
    groups = (
        Message.objects.filter(state__in=[Message.State.PENDING, Message.State.FAILED])
        .order_by()
        .values("source_id", "state")
        .annotate(count=Count("pk"), oldest=Min("created_at"))
    )
    for group in groups:
        status = statuses.get(group["source_id"])
        if status is None:
            continue  # a source created after the first query
        if group["state"] == Message.State.PENDING:
            status.waiting, status.oldest_waiting = group["count"], group["oldest"]
        else:
            status.failed = group["count"]
    return list(statuses.values())


def _oldest(statuses: list[SourceStatus]) -> datetime | None:
    return min((s.oldest_waiting for s in statuses if s.oldest_waiting), default=None)


def _details(status: SourceStatus) -> list[str]:
    source, details = status.source, []
    if source.error_message:
        details.append(f"error: {source.error_message}")
    if status.circuit == "open":
        details.append(
            f"failing since {_when(source.failing_since)}, {source.failures} failed probes, "
            f"next probe {_when(source.held_until) if source.held_until else 'when due'}"
        )
        if source.last_failure:
            details.append(f"last failure: {source.last_failure}")
    elif status.circuit == "held":
        details.append(f"held until {_when(source.held_until)} (Retry-After)")
    return details


def _late(now: datetime, statuses: list[SourceStatus], changes: dict, max_age: float) -> list[str]:
    """What has waited longer than ``max_age`` seconds. A deactivated source's messages
    wait on purpose, so they raise no alarm."""
    late = [
        f"{_count(s.waiting, 'message')} to {s.source}"
        for s in statuses
        if s.source.active and (_seconds(now, s.oldest_waiting) or 0) > max_age
    ]
    if (_seconds(now, changes["oldest"]) or 0) > max_age:
        late.append(f"{_count(changes['count'], 'change')} not fanned out")
    return late


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _seconds(now: datetime, since: datetime | None) -> float | None:
    return None if since is None else round(max((now - since).total_seconds(), 0.0), 1)


def _age(now: datetime, since: datetime | None) -> str:
    """``"2d 3h"``, ``"1h 5m"``, ``"4m 10s"``, ``"12s"``; ``"—"`` for nothing."""
    seconds = _seconds(now, since)
    if seconds is None:
        return "—"
    total = int(seconds)
    units = [("d", 86400), ("h", 3600), ("m", 60), ("s", 1)]
    for (name, size), (next_name, next_size) in pairwise(units):
        if total >= size:
            return f"{total // size}{name} {total % size // next_size}{next_name}"
    return f"{total}s"


def _when(value: datetime | None) -> str:
    if value is None:
        return "—"
    # Naive when the project runs with USE_TZ = False.
    shown = timezone.localtime(value) if timezone.is_aware(value) else value
    return shown.strftime("%Y-%m-%d %H:%M:%S %Z").rstrip()


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
