"""The drain: claim deliverable messages, post them, record the outcome.

Claims are leases (``claimed_until``) written while the claimer holds the rows
exclusively: ``SELECT ... FOR UPDATE SKIP LOCKED`` where the database has it, and on
SQLite by taking the database's single write lock before choosing rows. Two drains
therefore never hold one message at once, and a killed worker's messages become
claimable again when the lease runs out (at-least-once delivery; the ``uuid`` makes
repeats recognisable). A message is only posted while its lease outlives the request,
so a slow batch cannot let a second worker take a message that is still in flight.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connections, router, transaction
from django.db.models import F
from django.utils import timezone

from ..client import FlowdockClient, client_for
from ..conf import flowdock_settings
from ..exceptions import (
    FlowdockConfigurationError,
    FlowdockError,
    FlowdockSourceGoneError,
    FlowdockTransientError,
)
from ..models import Message, Source
from ..signals import message_failed, message_sent
from ..sources import report_delivery_error

logger = logging.getLogger("django_flowdock.delivery")

RETRYING = "retrying"


@dataclass
class DrainResult:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    cancelled: int = 0

    @property
    def handled(self) -> int:
        return self.sent + self.retrying + self.failed + self.cancelled

    def add(self, outcome: str, count: int = 1) -> None:
        setattr(self, outcome, getattr(self, outcome) + count)

    def merge(self, other: DrainResult) -> None:
        for name in ("sent", "retrying", "failed", "cancelled"):
            self.add(name, getattr(other, name))


def backoff(attempts: int, retry_after: float | None = None) -> float:
    """Seconds before attempt ``attempts + 1``: full-jitter exponential backoff, never
    sooner than the server's ``Retry-After``."""
    cap = min(flowdock_settings.BACKOFF_MAX, flowdock_settings.BACKOFF_BASE * 2 ** (attempts - 1))
    delay = random.uniform(0, cap)  # noqa: S311 - jitter, not security
    return max(delay, retry_after or 0.0)


def request_seconds() -> float:
    """The longest one post may take before the client gives up on it."""
    timeout = flowdock_settings.TIMEOUT
    return float(sum(timeout)) if isinstance(timeout, (list, tuple)) else 2.0 * timeout


def claim(
    limit: int, message_ids: list[int] | None = None, exclude: set[int] | None = None
) -> list[Message]:
    """Lease up to ``limit`` deliverable messages (at most one per thread and source),
    oldest first, leaving out the ids in ``exclude``."""
    using = router.db_for_write(Message)
    features = connections[using].features
    with transaction.atomic(using=using):
        now = timezone.now()
        candidates = Message.objects.using(using).deliverable(now)
        if message_ids is not None:
            candidates = candidates.filter(pk__in=message_ids)
        if exclude:
            candidates = candidates.exclude(pk__in=exclude)
        if features.has_select_for_update_skip_locked:
            candidates = candidates.select_for_update(skip_locked=True)
        elif features.has_select_for_update:
            candidates = candidates.select_for_update()
        else:
            _take_write_lock(using)
        pks = list(candidates.values_list("pk", flat=True)[:limit])
        if not pks:
            return []
        lease = now + timedelta(seconds=flowdock_settings.CLAIM_TIMEOUT)
        Message.objects.using(using).filter(pk__in=pks).update(claimed_until=lease)
    return list(
        Message.objects.using(using)
        .filter(pk__in=pks, claimed_until=lease)
        .select_related("source__application")
        .order_by("pk")
    )


def _take_write_lock(using: str) -> None:
    """SQLite has one writer at a time: writing first makes this transaction that
    writer (waiting for the busy timeout if needed), so no other drain can lease the
    rows chosen next, and no read lock has to be upgraded later (which fails at once
    instead of waiting)."""
    table = connections[using].ops.quote_name(Message._meta.db_table)
    with connections[using].cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET id = id WHERE 0 = 1")  # noqa: S608 - no user input


def release(messages: list[Message]) -> None:
    """Give back claimed messages that were not attempted, for another round."""
    for message in messages:
        Message.objects.filter(pk=message.pk, claimed_until=message.claimed_until).update(
            claimed_until=None
        )


@dataclass
class Attempt:
    """The result of posting one message, not yet written to the database."""

    message: Message
    outcome: str
    error: Exception | None = None
    response: object = None


def attempt(message: Message, client: FlowdockClient) -> Attempt:
    """Post one claimed message and set its new state on the instance (not saved)."""
    message.attempts += 1
    message.claimed_until = None
    try:
        response = client_for(message.source, client).post_message(message.api_payload())
    except FlowdockSourceGoneError as exc:
        return _finish(
            message, Message.State.CANCELLED, exc, f"Source removed in Flowdock (410): {exc}"
        )
    except FlowdockTransientError as exc:
        if message.attempts >= flowdock_settings.MAX_ATTEMPTS:
            return _finish(
                message,
                Message.State.FAILED,
                exc,
                f"Gave up after {message.attempts} attempts: {exc}",
            )
        delay = backoff(message.attempts, exc.retry_after)
        message.next_attempt_at = timezone.now() + timedelta(seconds=delay)
        logger.info("Flowdock message %s will be retried in %.2fs: %s", message.uuid, delay, exc)
        return _finish(message, RETRYING, exc)
    except FlowdockError as exc:  # refused (400/401/403/404), or an undocumented answer
        return _finish(message, Message.State.FAILED, exc)
    message.state, message.status_code, message.last_error = (
        Message.State.SENT,
        response.status_code,
        "",
    )
    message.sent_at = timezone.now()
    return Attempt(message, Message.State.SENT, response=response)


def _finish(message: Message, outcome: str, exc: FlowdockError, text: str = "") -> Attempt:
    """Record an unsuccessful post on the instance; a retry keeps the message pending."""
    if outcome != RETRYING:
        message.state = outcome
    message.status_code, message.last_error = exc.status_code, text or str(exc)
    return Attempt(message, outcome, exc)


_FIELDS = ["attempts", "claimed_until", "state", "status_code", "last_error"]


def record(attempts: list[Attempt]) -> None:
    """Write outcomes, then send the public signals. Sent messages are written with one
    ``UPDATE`` per status code: the common case costs one query per batch."""
    sent: dict[int, list[Message]] = defaultdict(list)
    for item in attempts:
        message = item.message
        if item.outcome == Message.State.SENT:
            sent[message.status_code].append(message)
        elif item.outcome == RETRYING:
            message.save(update_fields=[*_FIELDS, "next_attempt_at"])
        else:
            message.save(update_fields=_FIELDS)
    for status_code, messages in sent.items():
        Message.objects.filter(pk__in=[m.pk for m in messages]).update(
            attempts=F("attempts") + 1,
            claimed_until=None,
            state=Message.State.SENT,
            status_code=status_code,
            last_error="",
            sent_at=messages[-1].sent_at,
        )
    for item in attempts:
        if item.outcome == Message.State.CANCELLED:
            item.message.source.deactivate(item.message.last_error)
        elif item.outcome == Message.State.FAILED and item.error is not None:
            _mark_refused_source(item.message.source, item.error)
        if item.outcome == Message.State.SENT:
            message_sent.send(sender=Message, message=item.message, response=item.response)
        elif item.outcome != RETRYING:
            message_failed.send(sender=Message, message=item.message, error=item.error)


def _mark_refused_source(source: Source, error: Exception) -> None:
    status = getattr(error, "status_code", None)
    if status in (401, 403):
        message = f"Flowdock refused the flow token ({status}): {error}"
        if source.error_message == message:
            return  # already recorded and reported for an earlier message
        source.error_message = message
        source.save(update_fields=["error_message"])
        report_delivery_error(source)


def drain(
    *,
    message_ids: list[int] | None = None,
    limit: int | None = None,
    client: FlowdockClient | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> DrainResult:
    """Deliver deliverable messages until none is left, ``limit`` were handled, or
    ``should_stop()`` turns true (checked before each post, so the message in hand is
    always finished and recorded).

    Each round claims at most one message per thread and source, so later messages of
    a thread go out in a later round, after the earlier one was sent. A message is
    attempted at most once per call: a retry waits for the next drain.
    """
    client = client or FlowdockClient()
    result = DrainResult()
    margin = request_seconds()
    retried: set[int] = set()
    if margin >= flowdock_settings.CLAIM_TIMEOUT:
        raise FlowdockConfigurationError(
            f'FLOWDOCK["CLAIM_TIMEOUT"] ({flowdock_settings.CLAIM_TIMEOUT}s) must be longer '
            f'than one request may take (FLOWDOCK["TIMEOUT"], {margin}s in all): raise it.'
        )
    while limit is None or result.handled < limit:
        if should_stop is not None and should_stop():
            break
        batch_size = flowdock_settings.BATCH_SIZE
        if limit is not None:
            batch_size = min(batch_size, limit - result.handled)
        batch = claim(batch_size, message_ids, retried)
        if not batch:
            break
        done: list[Attempt] = []
        try:
            for index, message in enumerate(batch):
                if (should_stop is not None and should_stop()) or _lease_too_short(
                    message.claimed_until, margin
                ):
                    release(batch[index:])
                    break
                done.append(attempt(message, client))
        finally:
            record(done)
        for item in done:
            result.add(item.outcome)
            if item.outcome == RETRYING:
                retried.add(item.message.pk)
        if len(done) < len(batch) and should_stop is not None and should_stop():
            break
    return result


def _lease_too_short(lease: datetime | None, margin: float) -> bool:
    return lease is None or lease - timezone.now() < timedelta(seconds=margin)
