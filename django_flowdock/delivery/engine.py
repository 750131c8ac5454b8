"""The drain: fan captured changes out, claim deliverable messages, render, post,
record each outcome before the next post.

Claims are leases (``claimed_until``) written while the claimer holds the rows
exclusively: ``SELECT ... FOR UPDATE SKIP LOCKED`` where the database has it, and on
SQLite by taking the database's single write lock before choosing rows. Each claim
also writes a fresh ``claim_token``; an outcome is written only while the row still
carries it, so a worker whose lease ran out (killed, paused, cut off) can never
overwrite what a newer claim recorded. Outcomes are written one by one, right after
each post: after a crash at most the one message in flight is posted again.
"""

from __future__ import annotations

import json
import logging
import random
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, router, transaction
from django.utils import timezone

from django_flowdock.api.client import FlowdockClient, client_for
from django_flowdock.conf import flowdock_settings
from django_flowdock.context import delivering
from django_flowdock.delivery.fanout import fan_out, load, take_write_lock
from django_flowdock.exceptions import (
    FlowdockError,
    FlowdockRenderError,
    FlowdockSourceGoneError,
    FlowdockTransientError,
)
from django_flowdock.models import Change, Message, Source
from django_flowdock.signals import message_failed, message_sent, send_robust
from django_flowdock.threads.options import option
from django_flowdock.threads.render import (
    FieldChange,
    activity_message,
    default_title,
    discussion_message,
)
from django_flowdock.threads.schema import Repairs, repair, validate_message

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
    token = uuid.uuid4().hex
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
            take_write_lock(using, Message)
        pks = list(candidates.values_list("pk", flat=True)[:limit])
        if not pks:
            return []
        lease = now + timedelta(seconds=flowdock_settings.CLAIM_TIMEOUT)
        Message.objects.using(using).filter(pk__in=pks).update(
            claimed_until=lease, claim_token=token
        )
    return list(
        Message.objects.using(using)
        .filter(pk__in=pks, claim_token=token)
        .select_related("source__application", "change")
        .order_by("pk")
    )


def release(messages: list[Message]) -> None:
    """Give back claimed messages that were not attempted, for another round."""
    for message in messages:
        Message.objects.filter(pk=message.pk, claim_token=message.claim_token).update(
            claimed_until=None, claim_token=""
        )


@dataclass
class Attempt:
    """The result of posting one message, not yet written to the database."""

    message: Message
    outcome: str
    error: Exception | None = None
    response: object = None
    repairs: Repairs = field(default_factory=Repairs)


def _author(pk: str) -> Any:
    if not pk:
        return None
    model = get_user_model()
    try:
        return model._default_manager.filter(pk=pk).first()
    except (ValueError, TypeError):  # a pk of another user model, since swapped
        return None


def render(change: Change) -> tuple[dict[str, Any], Repairs]:
    """The message for ``change`` from its objects as they are now, repaired to be
    valid. Raises ``FlowdockRenderError`` (with the traceback) if it cannot be built."""
    try:
        with delivering(_author(change.author_pk), change.base_url):
            if change.event == Change.Event.COMMENTED:
                comment = load(change.model, change.object_pk)
                thread = None if comment is None else option(comment, "thread")
                if thread is None:
                    raise FlowdockRenderError("The comment or its thread no longer exists.")
                message, shown = discussion_message(comment, thread), thread
            else:
                shown = load(change.model, change.object_pk, change)
                if shown is None:
                    raise FlowdockRenderError("The object no longer exists.")
                changes = [FieldChange(*c) for c in json.loads(change.described or "[]")]
                message = activity_message(shown, change.event, changes=changes)
            message, repairs = repair(
                message,
                title=default_title(shown),
                author=str(flowdock_settings.DEFAULT_AUTHOR.get("name") or "Django"),
            )
    except (FlowdockRenderError, ImproperlyConfigured):
        raise
    except Exception as exc:
        raise FlowdockRenderError(f"Rendering {change} failed:\n{traceback.format_exc()}") from exc
    return validate_message(message, shown._meta.label), repairs


def attempt(
    message: Message, transport: Any, rendered: dict[int, tuple[dict[str, Any], Repairs]]
) -> Attempt:
    """Render (once per change and drain round) and post one claimed message."""
    message.attempts += 1
    repairs = Repairs()
    try:
        change = message.change
        if change is not None:
            if change.pk not in rendered:
                rendered[change.pk] = render(change)
            message.payload, repairs = rendered[change.pk]
        if _is_http(transport):
            response = client_for(message.source, transport).post_message(
                message.api_payload(), wait_for_message=wants_posted_message(message.source)
            )
        else:
            response = transport.post_message(message.api_payload())
    except FlowdockSourceGoneError as exc:
        return _finish(
            message, Message.State.CANCELLED, exc, f"Source removed in Flowdock (410): {exc}"
        )
    except FlowdockTransientError as exc:
        return _retry_or_give_up(message, exc)
    except FlowdockError as exc:  # refused (400/401/403/404), unrenderable, or undocumented
        return _finish(message, Message.State.FAILED, exc)
    except ImproperlyConfigured:
        raise
    except Exception as exc:
        # A custom transport's own error: counted and retried like a network one, so the
        # message never stays claimed with its attempt unrecorded.
        logger.exception("Posting Flowdock message %s failed", message.uuid)
        return _retry_or_give_up(message, FlowdockTransientError(f"{type(exc).__name__}: {exc}"))
    if repairs:
        logger.warning("Flowdock message %s was repaired: %s", message.uuid, "; ".join(repairs))
    message.state, message.status_code, message.last_error = (
        Message.State.SENT,
        response.status_code,
        "",
    )
    message.sent_at = timezone.now()
    return Attempt(message, Message.State.SENT, response=response, repairs=repairs)


def wants_posted_message(source: Source) -> bool:
    """Hook: whether to ask Flowdock to answer with the stored message, whose
    ``thread_id`` the optional conversations app keeps (``message_sent`` carries the
    response) to trace chat replies back to their object."""
    if not apps.is_installed("django_flowdock.conversations"):
        return False
    from django_flowdock.conversations.identity import learns_thread_ids

    return learns_thread_ids(source)


def _retry_or_give_up(message: Message, exc: FlowdockTransientError) -> Attempt:
    if message.attempts >= flowdock_settings.MAX_ATTEMPTS:
        return _finish(
            message, Message.State.FAILED, exc, f"Gave up after {message.attempts} attempts: {exc}"
        )
    delay = backoff(message.attempts, exc.retry_after)
    message.next_attempt_at = timezone.now() + timedelta(seconds=delay)
    logger.info("Flowdock message %s will be retried in %.2fs: %s", message.uuid, delay, exc)
    return _finish(message, RETRYING, exc)


def _is_http(transport: Any) -> bool:
    return isinstance(transport, FlowdockClient)


def _finish(message: Message, outcome: str, exc: FlowdockError, text: str = "") -> Attempt:
    """Record an unsuccessful post on the instance; a retry keeps the message pending."""
    if outcome != RETRYING:
        message.state = outcome
    message.status_code, message.last_error = exc.status_code, text or str(exc)
    return Attempt(message, outcome, exc)


def record(item: Attempt) -> bool:
    """Write one outcome, fenced by the claim; then its effects and public signals.
    Returns False when the claim had been lost (the outcome is dropped)."""
    message = item.message
    fields: dict[str, Any] = {
        "attempts": message.attempts,
        "claimed_until": None,
        "claim_token": "",
        "state": message.state,
        "status_code": message.status_code,
        "last_error": message.last_error,
        "payload": message.payload,
        "repairs": "\n".join(item.repairs),
    }
    if item.outcome == RETRYING:
        fields["next_attempt_at"] = message.next_attempt_at
    if item.outcome == Message.State.SENT:
        fields["sent_at"] = message.sent_at
    written = Message.objects.filter(pk=message.pk, claim_token=message.claim_token).update(
        **fields
    )
    if not written:
        logger.warning(
            "Flowdock message %s: the claim expired before its outcome (%s) was written; "
            "a newer claim owns it",
            message.uuid,
            item.outcome,
        )
        return False
    if item.outcome == Message.State.CANCELLED:
        message.source.deactivate(message.last_error)
    # A refused flow token is shown on the source (and in its flow) by a receiver of
    # message_failed in api/sources.py: delivery itself never calls into OAuth.
    if item.outcome == Message.State.SENT:
        send_robust(message_sent, message=message, response=item.response)
    elif item.outcome != RETRYING:
        send_robust(message_failed, message=message, error=item.error)
    return True


def drain(
    *,
    message_ids: list[int] | None = None,
    limit: int | None = None,
    client: Any = None,
    should_stop: Callable[[], bool] | None = None,
) -> DrainResult:
    """Deliver deliverable messages until none is left, ``limit`` were handled, or
    ``should_stop()`` turns true (checked before each post, so the message in hand is
    always finished and recorded).

    Each round first fans out waiting changes, then claims at most one message per
    thread and source, so later messages of a thread go out in a later round, after
    the earlier one was sent. A message is attempted at most once per call: a retry
    waits for the next drain. ``client`` replaces the backend's transport.
    """
    from django_flowdock.delivery import get_backend

    transport = client or get_backend().transport()
    result = DrainResult()
    margin = request_seconds()
    retried: set[int] = set()
    while limit is None or result.handled < limit:
        if should_stop is not None and should_stop():
            break
        fan_out()
        batch_size = flowdock_settings.BATCH_SIZE
        if limit is not None:
            batch_size = min(batch_size, limit - result.handled)
        batch = claim(batch_size, message_ids, retried)
        if not batch:
            break
        rendered: dict[int, tuple[dict[str, Any], Repairs]] = {}
        for index, message in enumerate(batch):
            stopping = should_stop is not None and should_stop()
            if stopping or _lease_too_short(message.claimed_until, margin):
                release(batch[index:])
                if stopping:
                    return result
                break
            item = attempt(message, transport, rendered)
            if record(item):
                result.add(item.outcome)
                if item.outcome == RETRYING:
                    retried.add(message.pk)
    return result


def _lease_too_short(lease: datetime | None, margin: float) -> bool:
    return lease is None or lease - timezone.now() < timedelta(seconds=margin)
