"""The drain: fan captured changes out, claim deliverable messages, render, post,
record each outcome as its answer comes.

Claims are leases (``claimed_until``, on the database's clock, renewed while the drain
works) written while the claimer holds the rows exclusively: ``SELECT ... FOR UPDATE
SKIP LOCKED`` where the database has it, and on SQLite by taking the database's single
write lock before choosing rows. Each claim also writes a fresh ``claim_token``; an
outcome is written only while the row still carries it, so a worker whose lease ran
out (killed, paused, cut off) can never overwrite what a newer claim recorded.
A claim's messages (each of a different thread) are posted up to ``CONCURRENCY`` at a
time, and each outcome is written as its answer comes: after a crash at most the posts
in flight are posted again.

Each source has a circuit. A post that Flowdock does not answer, or answers with 5xx,
408 or 429, holds the whole source: its messages wait, spending nothing, while one
probe at a time (the oldest message due) tests it after a backoff. The first answer
closes the circuit and the waiting messages go out at once, in thread order. A message
fails only when Flowdock refuses it, or when it has waited longer than ``MAX_AGE``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, models, router, transaction
from django.db.models.functions import Coalesce
from django.utils import timezone

from django_flowdock.api.client import FlowdockClient, client_for
from django_flowdock.conf import flowdock_settings
from django_flowdock.context import delivering
from django_flowdock.delivery.fanout import fan_out, load, take_write_lock
from django_flowdock.delivery.leases import Clock, Lease
from django_flowdock.delivery.lines import read_committed
from django_flowdock.delivery.loading import Objects
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
#: Name prefix of the threads that post a drain's messages.
POST_THREADS = "flowdock-post"


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
    """Seconds before attempt ``attempts + 1`` (of a message, or of a source's probe):
    exponential up to ``BACKOFF_MAX``, less up to a fifth of jitter so that sources and
    workers drift apart, never sooner than the server's ``Retry-After``."""
    # The exponent stops growing long before the cap: an outage of days is thousands of
    # failures, and 2.0 ** 1024 overflows.
    exponent = min(max(attempts - 1, 0), 32)
    cap = min(flowdock_settings.BACKOFF_MAX, flowdock_settings.BACKOFF_BASE * 2.0**exponent)
    delay = random.uniform(0.8 * cap, cap)  # noqa: S311 - jitter, not security
    # A Retry-After beyond MAX_AGE says nothing more than MAX_AGE does.
    return min(max(delay, retry_after or 0.0), flowdock_settings.MAX_AGE)


def request_seconds() -> float:
    """The longest one post may take before the client gives up on it."""
    timeout = flowdock_settings.TIMEOUT
    return float(sum(timeout)) if isinstance(timeout, (list, tuple)) else 2.0 * timeout


@dataclass
class Claim:
    """Messages leased to one drain, and the lease."""

    messages: list[Message]
    lease: Lease
    #: The messages claimed as their (failing) source's probe.
    probes: set[int] = field(default_factory=set)


def _locked(queryset: models.QuerySet, using: str) -> models.QuerySet:
    """``queryset`` locking the rows it reads (of its own table only), skipping the ones
    another claimer holds; on SQLite, the database's write lock is taken instead."""
    features = connections[using].features
    of: dict[str, Any] = {"of": ("self",)} if features.has_select_for_update_of else {}
    if features.has_select_for_update_skip_locked:
        return queryset.select_for_update(skip_locked=True, **of)
    if features.has_select_for_update:
        return queryset.select_for_update(**of)
    take_write_lock(using, queryset.model)
    return queryset


def claim(
    limit: int, message_ids: list[int] | None = None, exclude: set[int] | None = None
) -> Claim:
    """Lease up to ``limit`` deliverable messages (at most one per thread and source,
    and one probe per source whose circuit is open), oldest first, leaving out the ids
    in ``exclude``."""
    using = router.db_for_write(Message)
    token = uuid.uuid4().hex
    clock = Clock.of(using)
    if (
        not connections[using].features.has_select_for_update
        and not _candidates(using, clock.now(), message_ids, exclude).exists()
    ):
        # SQLite: nothing to claim, so the database's write lock is not taken (the web
        # process's saves would wait for it).
        return Claim([], Lease(using, token, clock, time.monotonic()))
    with transaction.atomic(using=using):
        started = time.monotonic()
        now = clock.now()
        until = now + Lease.duration()
        candidates = _candidates(using, now, message_ids, exclude)
        fields = ("pk", "source_id", "source__failing_since", "next_attempt_at")
        rows = list(_locked(candidates, using).values_list(*fields)[:limit])
        pks = _with_one_probe(rows, using, now, until)
        if pks:
            Message.objects.using(using).filter(pk__in=pks).update(
                claimed_until=until, claim_token=token
            )
    lease = Lease(using, token, clock, started + flowdock_settings.CLAIM_TIMEOUT)
    if not pks:
        return Claim([], lease)
    messages = list(
        Message.objects.using(using)
        .filter(pk__in=pks, claim_token=token)
        .select_related("change")
        .order_by("pk")
    )
    # One instance per source: its flow token is decrypted once, and what an outcome
    # learns of its circuit is seen by the batch's other messages.
    sources = (
        Source.objects.using(using)
        .select_related("application")
        .in_bulk({m.source_id for m in messages})
    )
    for message in messages:
        message.source = sources[message.source_id]
    probes = {m.pk for m in messages if m.source.failing_since is not None}
    return Claim(messages, lease, probes)


def _candidates(
    using: str, now: datetime, message_ids: list[int] | None, exclude: set[int] | None
) -> models.QuerySet[Message]:
    candidates = Message.objects.using(using).deliverable(now)
    if message_ids is not None:
        candidates = candidates.filter(pk__in=message_ids)
    if exclude:
        candidates = candidates.exclude(pk__in=exclude)
    return candidates


def _with_one_probe(
    rows: list[tuple[int, int, datetime | None, datetime]],
    using: str,
    now: datetime,
    until: datetime,
) -> list[int]:
    """The ids of ``rows`` to claim: every message of a healthy source, and one of a
    source whose circuit is open, as its probe, if no other drain probes it now (the
    source stays held for the probe's lease). The probe is the message that waited
    longest for an attempt, so one message Flowdock keeps failing (a 500 on its
    payload alone) cannot stand in the way of the others."""
    probes: dict[int, tuple[datetime, int]] = {}
    for pk, source, since, next_attempt_at in rows:
        if since is not None:
            probes[source] = min(probes.get(source, (next_attempt_at, pk)), (next_attempt_at, pk))
    if probes:
        free = Source.objects.using(using).filter(
            models.Q(held_until__isnull=True) | models.Q(held_until__lte=now), pk__in=probes
        )
        free_pks = set(_locked(free, using).values_list("pk", flat=True))
        probes = {source: probe for source, probe in probes.items() if source in free_pks}
        Source.objects.using(using).filter(pk__in=probes).update(held_until=until)
    chosen = {pk for _at, pk in probes.values()}
    return [pk for pk, _source, since, _at in rows if since is None or pk in chosen]


def release(claimed: Claim, messages: list[Message]) -> None:
    """Give back claimed messages that were not attempted, for another round; a probe
    given back frees its source for the next one."""
    if not messages:
        return
    ours = Message.objects.filter(pk__in=[m.pk for m in messages], claim_token=claimed.lease.token)
    # Only a probe still ours: a newer claim may be probing the source by now.
    probed = list(ours.filter(pk__in=claimed.probes).values_list("source_id", flat=True))
    ours.update(claimed_until=None, claim_token="")
    if probed:
        Source.objects.filter(pk__in=probed).update(held_until=None)


@dataclass
class Attempt:
    """The result of posting one message, not yet written to the database."""

    message: Message
    outcome: str
    error: Exception | None = None
    response: object = None
    repairs: Repairs = field(default_factory=Repairs)

    @property
    def unanswered(self) -> bool:
        """Flowdock could not be reached, or answered 5xx, 408 or 429."""
        return isinstance(self.error, FlowdockTransientError)


def render(change: Change, objects: Objects | None = None) -> tuple[dict[str, Any], Repairs]:
    """The message for ``change`` from its objects as they are now (read with the
    batch's ``objects``), repaired to be valid. Raises ``FlowdockRenderError`` (with
    the traceback) if it cannot be built."""
    objects = objects if objects is not None else Objects()
    try:
        with delivering(objects.author(change.author_pk), change.base_url):
            if change.event == Change.Event.COMMENTED:
                # A deleted comment (or thread) is rebuilt from what its change captured.
                comment = load(change.model, change.object_pk, change, objects)
                thread = None if comment is None else option(comment, "thread")
                if thread is None:
                    raise FlowdockRenderError("The comment or its thread no longer exists.")
                message, shown = discussion_message(comment, thread), thread
            else:
                shown = load(change.model, change.object_pk, change, objects)
                if shown is None:
                    raise FlowdockRenderError("The object no longer exists.")
                changes = [FieldChange(*c) for c in json.loads(change.described or "[]")]
                current = objects.is_current(change.model, shown)
                state = objects.state(shown, change) if current else None
                message = activity_message(shown, change.event, changes=changes, state=state)
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


def prepare(
    message: Message, rendered: dict[int, tuple[dict[str, Any], Repairs]], objects: Objects
) -> Repairs | Attempt:
    """Render ``message`` (once per change and drain round) and count its attempt: the
    repairs made, or the failed ``Attempt`` of a message that cannot be rendered."""
    message.attempts += 1
    try:
        change = message.change
        if change is None:
            return Repairs()
        if change.pk not in rendered:
            rendered[change.pk] = render(change, objects)
        message.payload, repairs = rendered[change.pk]
    except FlowdockError as exc:
        return _finish(message, Message.State.FAILED, exc)
    return repairs


def post(message: Message, transport: Any, wait_for_message: bool) -> Any:
    """Post one prepared message; the response, or the exception raised. Touches no
    database, so it may run in a posting thread."""
    try:
        if _is_http(transport):
            # Our own client: this thread's keep-alive session. A caller's client (its
            # session, a subclass) is used as it is, one post at a time.
            client = (
                FlowdockClient(transport.api_url, timeout=transport.timeout)
                if _pooled(transport)
                else transport
            )
            return client_for(message.source, client).post_message(
                message.api_payload(), wait_for_message=wait_for_message
            )
        return transport.post_message(message.api_payload())
    except Exception as exc:
        return exc


def conclude(message: Message, answer: Any, repairs: Repairs, clock: Clock) -> Attempt:
    """The outcome of a post from its answer (a response or an exception)."""
    if isinstance(answer, FlowdockSourceGoneError):
        return _finish(
            message, Message.State.CANCELLED, answer, f"Source removed in Flowdock (410): {answer}"
        )
    if isinstance(answer, FlowdockTransientError):
        return _retry_or_give_up(message, answer, clock.now())
    if isinstance(answer, FlowdockError):  # refused (400/401/403/404), or undocumented
        return _finish(message, Message.State.FAILED, answer)
    if isinstance(answer, ImproperlyConfigured):
        raise answer
    if isinstance(answer, Exception):
        # A custom transport's own error: counted and retried like a network one, so the
        # message never stays claimed with its attempt unrecorded.
        logger.error("Posting Flowdock message %s failed", message.uuid, exc_info=answer)
        error = FlowdockTransientError(f"{type(answer).__name__}: {answer}")
        return _retry_or_give_up(message, error, clock.now())
    if repairs:
        logger.warning("Flowdock message %s was repaired: %s", message.uuid, "; ".join(repairs))
    message.state, message.status_code, message.last_error = (
        Message.State.SENT,
        answer.status_code,
        "",
    )
    message.sent_at = timezone.now()
    return Attempt(message, Message.State.SENT, response=answer, repairs=repairs)


def wants_posted_message(source: Source) -> bool:
    """Hook: whether to ask Flowdock to answer with the stored message, whose
    ``thread_id`` the optional conversations app keeps (``message_sent`` carries the
    response) to trace chat replies back to their object."""
    if not apps.is_installed("django_flowdock.conversations"):
        return False
    from django_flowdock.conversations.identity import learns_thread_ids

    return learns_thread_ids(source)


def _retry_or_give_up(message: Message, exc: FlowdockTransientError, now: datetime) -> Attempt:
    waited = now - message.created_at
    if waited >= timedelta(seconds=flowdock_settings.MAX_AGE):
        text = f"Gave up after waiting {_hours(waited)} ({message.attempts} attempts): {exc}"
        return _finish(message, Message.State.FAILED, exc, text)
    if message.source.failing_since is not None:
        # A failed probe: the source's hold decides when anything is tried again.
        message.next_attempt_at = now
    else:
        # The message that found the source failing backs off on its own as well, so
        # one that Flowdock keeps failing cannot open the circuit again and again.
        message.next_attempt_at = now + timedelta(
            seconds=backoff(message.attempts, exc.retry_after)
        )
    return _finish(message, RETRYING, exc)


def _hours(waited: timedelta) -> str:
    return f"{waited.total_seconds() / 3600:.1f} h"


def _is_http(transport: Any) -> bool:
    return isinstance(transport, FlowdockClient)


def _finish(message: Message, outcome: str, exc: FlowdockError, text: str = "") -> Attempt:
    """Record an unsuccessful post on the instance; a retry keeps the message pending."""
    if outcome != RETRYING:
        message.state = outcome
    message.status_code, message.last_error = exc.status_code, text or str(exc)
    return Attempt(message, outcome, exc)


def record_all(items: list[tuple[Attempt, bool]], clock: Clock) -> list[bool]:
    """Write the outcomes of posts answered together (each with whether it may move its
    source's circuit: not a post in flight when that circuit opened), fenced by their
    claim, in one transaction; then their effects and public signals. Returns, for
    each, False when its claim had been lost (that outcome is dropped)."""
    using = router.db_for_write(Message)
    # Where an outcome is written in one query (SQLite's one statement, psycopg's
    # statements sent together), one alone needs no transaction; several share one
    # commit (and its sync to disk).
    alone = len(items) == 1 and _one_query(connections[using])
    together = contextlib.nullcontext() if alone else read_committed(using, savepoint=True)
    with together:
        written = [
            _write_outcome(item.message, _outcome_fields(item), ended=item.outcome != RETRYING)
            for item, _circuit in items
        ]
    for (item, circuit), ok in zip(items, written, strict=True):
        if ok:
            _after_outcome(item, clock, circuit)
        else:
            logger.warning(
                "Flowdock message %s: the claim expired before its outcome (%s) was "
                "written; a newer claim owns it",
                item.message.uuid,
                item.outcome,
            )
    return written


def _outcome_fields(item: Attempt) -> dict[str, Any]:
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
    else:
        fields["head"] = False
    if item.outcome == Message.State.SENT:
        fields["sent_at"] = message.sent_at
    return fields


def _after_outcome(item: Attempt, clock: Clock, circuit: bool) -> None:
    message = item.message
    source = message.source
    if circuit:
        _follow_circuit(item, clock)
    if item.outcome == Message.State.CANCELLED:
        cancelled = source.deactivate(message.last_error)
        logger.error(
            "Flowdock source %r was deactivated: %s; its %d waiting messages were cancelled",
            str(source),
            message.last_error,
            cancelled,
        )
    elif item.outcome == Message.State.FAILED:
        logger.error(
            "Flowdock message %s (%s %s to source %r) failed: %s",
            message.uuid,
            message.event,
            message.thread_key,
            str(source),
            message.last_error,
        )
    # A refused flow token is shown on the source (and in its flow) by a receiver of
    # message_failed in api/sources.py: delivery itself never calls into OAuth.
    if item.outcome == Message.State.SENT:
        send_robust(message_sent, message=message, response=item.response)
    elif item.outcome != RETRYING:
        send_robust(message_failed, message=message, error=item.error)


def _follow_circuit(item: Attempt, clock: Clock) -> None:
    """Open, keep open or close the circuit of the message's source after its post."""
    message, source = item.message, item.message.source
    if item.unanswered:
        if source.failing_since is None and message.status_code == 429:
            throttle(message, item.error, clock.now())
        elif source.failing_since is not None or message.attempts == 1:
            hold(message, item.error, clock.now())
        # Otherwise a retry failed again on a source that answers the others: it backs
        # off on its own, and does not hold its source every time.
    elif message.status_code is not None and source.failing_since is not None:
        close_circuit(source, clock.now())


def _write_outcome(message: Message, fields: dict[str, Any], *, ended: bool) -> bool:
    """Write an outcome while the claim is still ours; a message that ended hands its
    line's head on to the next pending message at once (see ``fanout._mark_heads`` for
    why the two never miss a message fan-out adds meanwhile).

    Plain SQL: it runs once per post, and the ORM would spend more building these few
    statements than the database spends running them."""
    using = router.db_for_write(Message)
    connection = connections[using]
    quote, opts = connection.ops.quote_name, Message._meta
    table = quote(opts.db_table)
    concrete = {f.name: f for f in opts.concrete_fields}
    columns = [quote(str(concrete[name].column)) for name in fields]
    values = [concrete[name].get_db_prep_save(v, connection) for name, v in fields.items()]
    fenced = "id = %s AND claim_token = %s"
    fence: list[Any] = [message.pk, message.claim_token]
    next_in_line = (
        f"SELECT id FROM {table} WHERE source_id = %s AND thread_key = %s AND state = %s "  # noqa: S608
        "AND id <> %s ORDER BY id LIMIT 1"
    )
    line: list[Any] = [message.source_id, message.thread_key, Message.State.PENDING, message.pk]
    with connection.cursor() as cursor:
        if not ended:
            sets = ", ".join(f"{column} = %s" for column in columns)
            cursor.execute(f"UPDATE {table} SET {sets} WHERE {fenced}", [*values, *fence])  # noqa: S608
            if cursor.rowcount == 0:
                return False
            # An earlier message made pending again (retry()) while this one was in
            # flight waited for it to land (see refresh_heads); now it goes first.
            line_qs = Message.objects.using(using).filter(
                source_id=message.source_id, thread_key=message.thread_key
            )
            if line_qs.pending().filter(pk__lt=message.pk).exists():
                line_qs.filter(pk=message.pk).refresh_heads()
            return True
        if connection.vendor == "sqlite":
            # One statement (SQLite has one writer, and a statement is atomic): the
            # outcome, and the head for the next in line if the claim was ours.
            sets = ", ".join(
                f"{column} = CASE WHEN id = %s THEN %s ELSE {column} END"
                for column in columns
                if column != quote("head")
            )
            own = [
                p
                for name, value in zip(fields, values, strict=True)
                if name != "head"
                for p in (message.pk, value)
            ]
            cursor.execute(
                f"UPDATE {table} SET {sets}, head = (id <> %s) WHERE ({fenced}) OR "  # noqa: S608
                f"(id = ({next_in_line}) AND EXISTS (SELECT 1 FROM {table} WHERE {fenced}))",
                [*own, message.pk, *fence, *line, *fence],
            )
            return cursor.rowcount > 0
        # The outcome first: its row lock makes a fan-out adding to the line wait, or
        # wait for it; the head's hand-over then reads the line afresh (and checks the
        # next in line is still pending once it has its row lock).
        hand_over = f"UPDATE {table} SET head = %s WHERE id = ({next_in_line}) AND state = %s"  # noqa: S608
        pending = Message.State.PENDING
        if _one_query(connection):
            # One round trip instead of four (BEGIN, the statements, COMMIT): a query of
            # several statements is one transaction, and each statement still reads a
            # snapshot of its own. The outcome keeps the claim token until the head is
            # handed on, so that the hand-over happens only when the outcome was ours.
            kept = [
                (c, v) for c, v in zip(columns, values, strict=True) if c != quote("claim_token")
            ]
            sets = ", ".join(f"{column} = %s" for column, _value in kept)
            cursor.execute(
                f"UPDATE {table} SET {sets} WHERE {fenced}; "  # noqa: S608
                f"{hand_over} AND EXISTS (SELECT 1 FROM {table} WHERE {fenced} AND state <> %s); "
                f"UPDATE {table} SET claim_token = '' WHERE {fenced}",
                [*(v for _c, v in kept), *fence, True, *line, pending, *fence, pending, *fence],
            )
            return cursor.rowcount > 0  # psycopg counts the first statement's rows
        with transaction.atomic(using=using, savepoint=False):
            sets = ", ".join(f"{column} = %s" for column in columns)
            cursor.execute(f"UPDATE {table} SET {sets} WHERE {fenced}", [*values, *fence])  # noqa: S608
            if cursor.rowcount == 0:
                return False
            if connection.features.update_can_self_select:
                cursor.execute(hand_over, [True, *line, pending])
            else:  # MySQL and MariaDB cannot read the table an UPDATE writes
                cursor.execute(next_in_line, line)
                following = cursor.fetchone()
                if following:
                    cursor.execute(
                        f"UPDATE {table} SET head = %s WHERE id = %s AND state = %s",  # noqa: S608
                        [True, following[0], pending],
                    )
    return True


def _one_query(connection: Any) -> bool:
    """Whether an ended outcome and its head's hand-over are written in one query:
    SQLite's single statement, or psycopg 3 cursors binding on the client (Django's
    default), which send several statements at once and count the first one's rows.
    Server-side binding, a project's own ``cursor_factory`` and pipeline mode cannot."""
    if connection.vendor == "sqlite":
        return True
    if connection.vendor != "postgresql":
        return False
    try:
        import psycopg
    except ImportError:  # psycopg2
        return False
    connection.ensure_connection()
    raw = connection.connection
    return (
        isinstance(raw, psycopg.Connection)
        and issubclass(raw.cursor_factory, psycopg.ClientCursor)
        and not raw.pgconn.pipeline_status
    )


def hold(message: Message, error: Any, now: datetime) -> None:
    """Open (or keep open) the circuit of ``message``'s source after a post Flowdock did
    not answer (or answered 5xx, 408, 429): its messages wait until the next probe."""
    source = message.source
    delay = backoff(source.failures + 1, getattr(error, "retry_after", None))
    Source.objects.filter(pk=source.pk).update(
        failures=models.F("failures") + 1,
        failing_since=Coalesce("failing_since", models.Value(now, models.DateTimeField())),
        held_until=now + timedelta(seconds=delay),
        last_failure=str(error)[:2000],
    )
    if source.failing_since is None:
        logger.warning(
            "Flowdock does not take messages for source %r (%s); its messages wait, and "
            "one probe at a time tests it, the next in %.0fs",
            str(source),
            error,
            delay,
        )
    else:
        logger.info("Probe of source %r failed (%s); next in %.0fs", str(source), error, delay)
    # The batch's posts to this source still in flight, answered later, wait for the
    # source's hold like any of its messages.
    source.failing_since = source.failing_since or now
    expire(source, now, str(error), message.claim_token)


def throttle(message: Message, error: Any, now: datetime) -> None:
    """Flowdock asked to slow down (429): hold the whole source for its ``Retry-After``,
    then let everything go again (no probing: Flowdock is up)."""
    source = message.source
    delay = backoff(1, getattr(error, "retry_after", None))
    Source.objects.filter(pk=source.pk).update(
        held_until=now + timedelta(seconds=delay), last_failure=str(error)[:2000]
    )
    logger.warning(
        "Flowdock asks source %r to wait (%s); its messages wait %.0fs", str(source), error, delay
    )


def close_circuit(source: Source, now: datetime) -> None:
    """Flowdock answered ``source`` again: its waiting messages may all go out."""
    Source.objects.filter(pk=source.pk).update(
        failures=0, failing_since=None, held_until=None, last_failure=""
    )
    logger.warning(
        "Flowdock answers source %r again after %.0fs; sending its waiting messages",
        str(source),
        (now - source.failing_since).total_seconds() if source.failing_since else 0.0,
    )
    source.failing_since = None


def expire(source: Source, now: datetime, last_failure: str, claim_token: str) -> int:
    """Fail ``source``'s messages that waited longer than ``MAX_AGE``: free ones and
    those of the claim ``claim_token`` (another drain's claim is a post that may still
    be answered)."""
    cutoff = now - timedelta(seconds=flowdock_settings.MAX_AGE)
    free = (
        models.Q(claimed_until__isnull=True)
        | models.Q(claimed_until__lt=now)
        | models.Q(claim_token=claim_token)
    )
    expired = list(source.messages.pending().filter(free, created_at__lt=cutoff))
    if not expired:
        return 0
    reason = (
        f"Gave up: waited more than {_hours(timedelta(seconds=flowdock_settings.MAX_AGE))} "
        f"for Flowdock ({last_failure})"
    )
    ended = Message.objects.filter(pk__in=[m.pk for m in expired])
    ended.filter(free).pending().update(
        state=Message.State.FAILED,
        last_error=reason,
        claimed_until=None,
        claim_token="",
        head=False,
    )
    ended.refresh_heads()
    logger.error("%d Flowdock messages to source %r failed: %s", len(expired), str(source), reason)
    for message in expired:
        message.state, message.last_error = Message.State.FAILED, reason
        send_robust(message_failed, message=message, error=FlowdockTransientError(reason))
    return len(expired)


def drain(
    *,
    message_ids: list[int] | None = None,
    limit: int | None = None,
    client: Any = None,
    should_stop: Callable[[], bool] | None = None,
) -> DrainResult:
    """Deliver deliverable messages until none is left, ``limit`` were handled, or
    ``should_stop()`` turns true (checked before each post, so the posts in flight are
    always finished and recorded).

    Each round first fans out waiting changes, then claims at most one message per
    thread and source, so later messages of a thread go out in a later round, after
    the earlier one was sent; the round's messages, all of different threads, are
    posted up to ``CONCURRENCY`` at a time. The next round is fanned out and claimed
    while the last posts of a round are in flight (a thread whose message is in flight
    has nothing claimable until its outcome is written). A message is attempted at most
    once per call: a retry waits for the next drain, and so do the other messages of a
    source that just failed to answer. ``client`` replaces the backend's transport.
    """
    from django_flowdock.delivery import get_backend

    posts = _Posts(client or get_backend().transport(), DrainResult())
    try:
        while not (should_stop is not None and should_stop()):
            # A round starts once an answer came (a thread it frees may go next), so
            # that claims follow answers rather than spin.
            posts.collect(FIRST_COMPLETED)
            room = flowdock_settings.BATCH_SIZE
            if limit is not None:
                room = min(room, limit - posts.result.handled - len(posts.in_flight))
                if room <= 0:
                    if posts.in_flight:
                        continue
                    break
            # What the round reads for fan-out is read once, and rendered from: as
            # many changes as the round claims messages.
            objects = Objects()
            fan_out(flowdock_settings.BATCH_SIZE, objects=objects, between=posts.keep_leases)
            posts.keep_leases()
            claimed = claim(room, message_ids, posts.retried)
            if not claimed.messages:
                if posts.in_flight:  # their threads' next messages come after them
                    posts.collect(ALL_COMPLETED)
                    continue
                break
            posts.adopt(claimed)
            objects.prime(m.change for m in claimed.messages if m.change is not None)
            if not _post_batch(_Batch(claimed, posts, objects), should_stop):
                break
    finally:
        posts.collect(ALL_COMPLETED)
    return posts.result


def _post_batch(batch: _Batch, should_stop: Callable[[], bool] | None) -> bool:
    """Post a claimed batch, renewing the lease as it goes; give back what was not
    attempted. False when the drain should end (stopping, or the lease was lost)."""
    try:
        return batch.run(should_stop)
    except Exception:
        _give_back(batch.claimed.lease, keep=batch.posted)
        raise


def _give_back(lease: Lease, keep: set[int]) -> None:
    """After an error (a lost database connection, say), give the batch's unrecorded
    messages back at once on a new connection, so that they do not wait for the lease
    to run out; if the database is still unreachable, the lease runs out instead. The
    ids in ``keep`` were posted without their outcome written: they wait for the lease,
    as after a crash, rather than be posted again at once."""
    connection = connections[lease.using]
    if connection.in_atomic_block:
        return  # the caller's transaction: nothing can be written outside it
    try:
        connection.close()
        Message.objects.using(lease.using).filter(claim_token=lease.token).exclude(
            pk__in=keep
        ).pending().update(claimed_until=None, claim_token="")
    except Exception:
        logger.warning(
            "Could not give back the messages of a failed delivery round; they are free "
            "again when their lease ends",
            exc_info=True,
        )


def concurrency(transport: Any) -> int:
    """Posts in flight at once: ``CONCURRENCY`` through the package's own HTTP client;
    one at a time through any other transport (the test kit's keeps the order of its
    outbox; a caller's session is not known to be safe across threads)."""
    return flowdock_settings.CONCURRENCY if _pooled(transport) else 1


def _pooled(transport: Any) -> bool:
    return type(transport) is FlowdockClient and transport.own_session


_pools: dict[tuple[int, int], ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def _pool(size: int) -> ThreadPoolExecutor:
    """The posting threads of this process, kept between drains so that each keeps its
    keep-alive connections; a forked child makes its own."""
    key = (os.getpid(), size)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            pool = _pools[key] = ThreadPoolExecutor(size, thread_name_prefix=POST_THREADS)
        return pool


class _Posts:
    """A drain's posts: up to ``concurrency()`` in flight, from one claim or the next,
    each outcome recorded (in the draining thread, which alone uses the database) as
    it comes.

    A source gets one post at a time until Flowdock answers it in this drain
    (``answering``), so a source that is down costs one post, not a window of them."""

    def __init__(self, transport: Any, result: DrainResult) -> None:
        self.transport, self.result = transport, result
        #: Retried in this drain: not claimed again by it.
        self.retried: set[int] = set()
        self.answering: set[int] = set()
        self.in_flight: dict[Future[Any], tuple[Message, Repairs, _Batch]] = {}
        #: The batch being posted.
        self.current: _Batch | None = None
        #: One instance per source for the whole drain (see ``adopt``).
        self.sources: dict[int, Source] = {}
        self.window = concurrency(transport)

    def adopt(self, claimed: Claim) -> None:
        """Point the claim's messages at the drain's instance of each source, refreshed
        with what the claim read: what an answer teaches about a source's circuit
        (``failing_since``) is then seen by the posts of every round in flight."""
        refreshed: set[int] = set()
        for message in claimed.messages:
            fresh, known = (
                message.source,
                self.sources.setdefault(message.source_id, message.source),
            )
            if known is fresh:
                continue
            if id(fresh) not in refreshed:
                refreshed.add(id(fresh))
                for source_field in Source._meta.concrete_fields:
                    setattr(known, source_field.attname, getattr(fresh, source_field.attname))
                if Source._meta.get_field("application").is_cached(fresh):
                    known.application = fresh.application
            message.source = known

    def keep_leases(self) -> None:
        """Renew the leases of earlier rounds whose posts are unrecorded yet, before the
        draining thread turns to other work (a fan-out, a claim, a render): an answer
        recorded after its lease ran out would be a repeat."""
        margin = request_seconds()
        for batch in set(self._batches()):
            _outlives_a_post(batch.claimed.lease, margin)

    def untried(self, source_id: int) -> bool:
        """Whether a post to a source not yet answering is in flight."""
        return source_id not in self.answering and any(
            m.source_id == source_id for m, _r, _b in self.in_flight.values()
        )

    def post(self, message: Message, repairs: Repairs, batch: _Batch) -> None:
        batch.posted.add(message.pk)
        wait = _is_http(self.transport) and wants_posted_message(message.source)
        if self.window > 1:
            try:
                future = _pool(self.window).submit(post, message, self.transport, wait)
            except RuntimeError:
                # The interpreter is exiting (delivery before exit): no new threads.
                self.window = 1
            else:
                self.in_flight[future] = (message, repairs, batch)
                return
        answer = post(message, self.transport, wait)
        self.record((batch, conclude(message, answer, repairs, batch.claimed.lease.clock)))

    def collect(self, until: str) -> None:
        """Record the answers of the posts in flight: the first to come, or all."""
        if not self.in_flight:
            return
        done, _pending = wait(self.in_flight, return_when=until)
        # Recorded in claim order, as one at a time would have, and together; a
        # configuration error raised by one answer waits until the others are recorded.
        answered: list[tuple[_Batch, Attempt]] = []
        error = None
        for future in sorted(done, key=lambda f: self.in_flight[f][0].pk):
            message, repairs, batch = self.in_flight.pop(future)
            try:
                answered.append(
                    (batch, conclude(message, future.result(), repairs, batch.claimed.lease.clock))
                )
            except ImproperlyConfigured as exc:
                error = exc
        if answered:
            self.record(*answered)
        if error is not None:
            raise error

    def record(self, *answered: tuple[_Batch, Attempt]) -> None:
        # A post in flight when its source's circuit opened (by an earlier answer, or
        # one of these) waits with the source; it is not a failure of its own.
        held = {id(batch): set(batch.held) for batch, _item in answered}
        flagged = []
        for batch, item in answered:
            circuit = not (item.unanswered and item.message.source_id in held[id(batch)])
            flagged.append((item, circuit))
            if item.unanswered and circuit:
                for sources in held.values():
                    sources.add(item.message.source_id)
        written = record_all(flagged, answered[0][0].claimed.lease.clock)
        for (batch, item), ok in zip(answered, written, strict=True):
            message = item.message
            if ok:
                self.result.add(item.outcome)
                if item.outcome == RETRYING:
                    self.retried.add(message.pk)
            batch.posted.discard(message.pk)
            if item.unanswered or item.outcome == Message.State.CANCELLED:
                # Down, or removed: no batch posts more to it, and what they have in
                # flight to it waits with it.
                for other in {batch, *self._batches(), *filter(None, [self.current])}:
                    other.held.add(message.source_id)
                self.answering.discard(message.source_id)
            elif message.status_code is not None:
                self.answering.add(message.source_id)

    def _batches(self) -> list[_Batch]:
        return [batch for _m, _r, batch in self.in_flight.values()]


class _Batch:
    """One claimed batch being posted through the drain's ``_Posts``."""

    def __init__(self, claimed: Claim, posts: _Posts, objects: Objects) -> None:
        self.claimed, self.posts, self.objects = claimed, posts, objects
        self.rendered: dict[int, tuple[dict[str, Any], Repairs]] = {}
        #: Sources that failed to answer (or were removed) while this batch was posted.
        self.held: set[int] = set()
        #: Posted, outcome not yet written: on an error they wait for their lease.
        self.posted: set[int] = set()

    def run(self, should_stop: Callable[[], bool] | None) -> bool:
        """Post the batch's messages; the last ones may still be in flight when it
        returns. False when the drain should end."""
        posts, lease, margin = self.posts, self.claimed.lease, request_seconds()
        posts.current = self
        messages = self.claimed.messages
        unposted: list[Message] = []
        for index, message in enumerate(messages):
            while len(posts.in_flight) >= posts.window or posts.untried(message.source_id):
                posts.collect(FIRST_COMPLETED)
            if should_stop is not None and should_stop():
                release(self.claimed, unposted + messages[index:])
                return False
            if message.source_id in self.held:
                unposted.append(message)  # its source failed to answer: wait for a probe
                continue
            posts.keep_leases()
            prepared = prepare(message, self.rendered, self.objects)
            if isinstance(prepared, Attempt):  # could not be rendered
                posts.record((self, prepared))
                continue
            if not _outlives_a_post(lease, margin):
                message.attempts -= 1
                release(self.claimed, unposted + messages[index:])
                return False
            posts.post(message, prepared, self)
        release(self.claimed, unposted)
        return True


def _outlives_a_post(lease: Lease, margin: float) -> bool:
    """Whether the claim lasts longer than a post may take, renewing it if needed: a
    post must end before the lease does, or another worker could post it too."""
    return lease.remaining() >= margin or (lease.renew() and lease.remaining() >= margin)
