"""The drain: claim deliverable messages, post them, record the outcome.

Claims are leases (``claimed_until``) taken with a compare-and-set update, so two
drains never send one message at once on any database, and a killed worker's
messages become claimable again when the lease runs out (at-least-once delivery;
the ``uuid`` makes repeats recognisable). On databases with ``SKIP LOCKED`` the
candidates are also row-locked so concurrent workers pick different rows.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import timedelta

from django.db import connections, router, transaction
from django.utils import timezone

from ..client import FlowdockClient
from ..conf import flowdock_settings
from ..exceptions import FlowdockRejectedError, FlowdockSourceGoneError, FlowdockTransientError
from ..models import Message
from ..signals import message_failed, message_sent

logger = logging.getLogger("django_flowdock.delivery")


@dataclass
class DrainResult:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    cancelled: int = 0

    @property
    def handled(self) -> int:
        return self.sent + self.retrying + self.failed + self.cancelled


def backoff(attempts: int, retry_after: float | None = None) -> float:
    """Seconds before attempt ``attempts + 1``: full-jitter exponential backoff, never
    sooner than the server's ``Retry-After``."""
    cap = min(flowdock_settings.BACKOFF_MAX, flowdock_settings.BACKOFF_BASE * 2 ** (attempts - 1))
    delay = random.uniform(0, cap)  # noqa: S311 - jitter, not security
    return max(delay, retry_after or 0.0)


def claim(limit: int, message_ids: list[int] | None = None) -> list[Message]:
    """Lease up to ``limit`` deliverable messages (at most one per thread and source)."""
    now = timezone.now()
    candidates = Message.objects.deliverable(now)
    if message_ids is not None:
        candidates = candidates.filter(pk__in=message_ids)
    using = router.db_for_write(Message)
    lease = now + timedelta(seconds=flowdock_settings.CLAIM_TIMEOUT)
    claimed = []
    with transaction.atomic(using=using):
        if connections[using].features.has_select_for_update_skip_locked:
            candidates = candidates.select_for_update(skip_locked=True)
        rows = list(candidates.values_list("pk", "claimed_until")[:limit])
        for pk, claimed_until in rows:
            won = Message.objects.filter(
                pk=pk, state=Message.State.PENDING, claimed_until=claimed_until
            ).update(claimed_until=lease)
            if won:
                claimed.append(pk)
    return list(Message.objects.filter(pk__in=claimed).select_related("source").order_by("pk"))


def deliver(message: Message, client: FlowdockClient | None = None) -> str:
    """Post one claimed message and record the outcome; returns the new state or
    ``"retrying"``."""
    client = client or FlowdockClient()
    message.attempts += 1
    message.claimed_until = None
    fields = ["attempts", "claimed_until", "state", "status_code", "last_error"]
    try:
        response = client.post_message(message.api_payload())
    except FlowdockSourceGoneError as exc:
        reason = f"Source removed in Flowdock (410): {exc}"
        message.state, message.status_code, message.last_error = (
            Message.State.CANCELLED,
            exc.status_code,
            reason,
        )
        message.save(update_fields=fields)
        message.source.deactivate(reason)
        message_failed.send(sender=Message, message=message, error=exc)
        return message.state
    except FlowdockRejectedError as exc:
        message.state, message.status_code, message.last_error = (
            Message.State.FAILED,
            exc.status_code,
            str(exc),
        )
        message.save(update_fields=fields)
        if exc.status_code in (401, 403):
            source = message.source
            source.error_message = f"Flowdock refused the flow token ({exc.status_code}): {exc}"
            source.save(update_fields=["error_message"])
        message_failed.send(sender=Message, message=message, error=exc)
        return message.state
    except FlowdockTransientError as exc:
        message.status_code, message.last_error = exc.status_code, str(exc)
        if message.attempts >= flowdock_settings.MAX_ATTEMPTS:
            message.state = Message.State.FAILED
            message.last_error = f"Gave up after {message.attempts} attempts: {exc}"
            message.save(update_fields=fields)
            message_failed.send(sender=Message, message=message, error=exc)
            return message.state
        delay = backoff(message.attempts, exc.retry_after)
        message.next_attempt_at = timezone.now() + timedelta(seconds=delay)
        message.save(update_fields=[*fields, "next_attempt_at"])
        logger.info("Flowdock message %s will be retried in %.1fs: %s", message.uuid, delay, exc)
        return "retrying"
    message.state, message.status_code, message.last_error = (
        Message.State.SENT,
        response.status_code,
        "",
    )
    message.sent_at = timezone.now()
    message.save(update_fields=[*fields, "sent_at"])
    message_sent.send(sender=Message, message=message, response=response)
    return message.state


def drain(
    *,
    message_ids: list[int] | None = None,
    limit: int | None = None,
    client: FlowdockClient | None = None,
) -> DrainResult:
    """Deliver deliverable messages until none is left (or ``limit`` were handled).

    Each round claims at most one message per thread and source, so later messages of
    a thread go out in the next round, after the earlier one was sent.
    """
    client = client or FlowdockClient()
    result = DrainResult()
    while limit is None or result.handled < limit:
        batch_size = flowdock_settings.BATCH_SIZE
        if limit is not None:
            batch_size = min(batch_size, limit - result.handled)
        batch = claim(batch_size, message_ids)
        if not batch:
            break
        for message in batch:
            outcome = deliver(message, client)
            setattr(result, outcome, getattr(result, outcome) + 1)
    return result
