"""One reader per flow across hosts: a lease per flow in the database, timed by the
database's clock (delivery's :class:`~django_flowdock.delivery.leases.Clock`) and
lasting ``CLAIM_TIMEOUT`` seconds unless renewed, so the flows of a listener that died
are read by another one that long after its last renewal.

A lease saves work, it is not what keeps replies from being applied twice: two readers
of one flow for a moment (a holder paused past its lease) still apply each reply once,
through the unique :class:`.ReceivedMessage` row.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterable

from django.db import IntegrityError, router, transaction
from django.db.models import Q

from django_flowdock.conversations.models import FlowLease
from django_flowdock.delivery.leases import Clock, Lease


def holder_name() -> str:
    """This listener, as the admin shows it: host, process and a unique suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class FlowLeases:
    """The leases one listener holds."""

    def __init__(self, holder: str | None = None) -> None:
        self.holder = holder or holder_name()
        self.using = router.db_for_write(FlowLease)

    def hold(self, flow_ids: Iterable[str]) -> set[str]:
        """Renew the leases held among ``flow_ids``, take those free or expired, and
        give up the others; return the flow ids this listener may read now."""
        wanted = set(flow_ids)
        now = Clock.of(self.using).now()
        until = now + Lease.duration()
        leases = FlowLease.objects.using(self.using)
        leases.filter(holder=self.holder).exclude(flow_id__in=wanted).delete()
        held = set()
        for flow_id in sorted(wanted):
            taken = leases.filter(
                Q(holder=self.holder) | Q(held_until__lt=now), flow_id=flow_id
            ).update(holder=self.holder, held_until=until)
            if not taken:
                try:
                    with transaction.atomic(using=self.using):
                        leases.create(flow_id=flow_id, holder=self.holder, held_until=until)
                except IntegrityError:
                    continue  # another listener holds it
            held.add(flow_id)
        return held

    def release(self) -> None:
        """Give every lease up (a clean stop): other listeners take the flows at once."""
        FlowLease.objects.using(self.using).filter(holder=self.holder).delete()
