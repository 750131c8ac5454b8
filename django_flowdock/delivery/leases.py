"""Claims on messages, timed by the database's clock and renewed while the worker works.

Every host reads and writes lease times against one clock, the database's: a host
whose own clock runs ahead cannot take a message whose lease another host still holds.
A worker renews its claim while it posts, so the lease can be short: the messages of a
worker that was killed are free again ``CLAIM_TIMEOUT`` seconds after its last renewal.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connections
from django.utils import timezone

from django_flowdock.conf import flowdock_settings

#: The database's own time, for the servers that are not on this host.
_NOW_SQL = {
    "postgresql": "SELECT STATEMENT_TIMESTAMP()",
    "mysql": "SELECT UTC_TIMESTAMP(6)",
    "oracle": "SELECT SYS_EXTRACT_UTC(SYSTIMESTAMP) FROM DUAL",
}


def database_now(using: str) -> datetime:
    """The database server's current time (this host's for SQLite, which has no server)."""
    sql = _NOW_SQL.get(connections[using].vendor)
    if sql is None or not settings.USE_TZ:
        return timezone.now()
    with connections[using].cursor() as cursor:
        cursor.execute(sql)
        (value,) = cursor.fetchone()
    return value.replace(tzinfo=UTC) if timezone.is_naive(value) else value.astimezone(UTC)


@dataclass
class Clock:
    """The database's time, read once and then followed on this host's clock."""

    offset: timedelta

    @classmethod
    def of(cls, using: str) -> Clock:
        return cls(database_now(using) - timezone.now())

    def now(self) -> datetime:
        return timezone.now() + self.offset


@dataclass
class Lease:
    """The claim one drain holds on a batch: its token, and until when (on this host's
    monotonic clock, so no clock setting can stretch it) it surely lasts."""

    using: str
    token: str
    clock: Clock
    deadline: float

    @staticmethod
    def duration() -> timedelta:
        return timedelta(seconds=flowdock_settings.CLAIM_TIMEOUT)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def renew(self) -> bool:
        """Extend the claim on the batch's messages not yet recorded; False if none is
        still held (the lease ran out and another worker took them)."""
        from django_flowdock.models import Message, Source

        started = time.monotonic()
        until = self.clock.now() + self.duration()
        held = Message.objects.using(self.using).filter(
            claim_token=self.token, state=Message.State.PENDING
        )
        renewed = held.update(claimed_until=until)
        if renewed:
            self.deadline = started + flowdock_settings.CLAIM_TIMEOUT
            # A probe's source stays held for as long as the probe is claimed.
            Source.objects.using(self.using).filter(
                pk__in=held.values("source_id"), failing_since__isnull=False, held_until__lt=until
            ).update(held_until=until)
        return bool(renewed)
