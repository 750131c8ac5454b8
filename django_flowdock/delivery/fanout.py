"""Fan-out: captured changes become one message per receiving source.

Runs in the delivery engine, never on the request path. The oldest changes are read
in one batch, with their objects (``loading.Objects``) and the sources (once), and
traced without any lock, since that runs the project's code; only writing the messages
takes a short lock that serialises fan-outs (so messages are numbered in the order the
changes were made, which is the per-thread delivery order). On SQLite, whose single
writer serialises everything anyway, a fan-out is one transaction that takes the write
lock first, so its commit never waits for other processes' reads. Several drains may trace
the same batch at once: the first to write it wins, the others drop their work. Each
change is:

- each change is traced to its thread (a comment's thread is read through its
  ``thread`` option; a comment or thread deleted since is rebuilt from the values
  captured at save and at deletion) and the thread's sources are resolved (scope,
  settings);
- a transaction's saves of one thread are coalesced into one activity (a discussion or
  deletion in between ends the run): old values from the first, new from the last;
- an update is described by comparing the thread as shown with the old and with the
  new values; an update that shows no difference sends nothing.

A change whose objects cannot be read (a ``get_flowdock_*`` method raised, say) is
marked with its error and skipped; the others go on.

Each line (source and thread) has one head, its first pending message: a new message
is its line's head when nothing of the line is pending (see ``_mark_heads``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ImproperlyConfigured
from django.db import InterfaceError, OperationalError, connections, models, router, transaction

from django_flowdock.delivery.lines import read_committed
from django_flowdock.delivery.loading import Objects
from django_flowdock.models import Change, Message, Source
from django_flowdock.signals import message_queued, send_robust
from django_flowdock.threads.display import M2M_OVERRIDE
from django_flowdock.threads.options import option
from django_flowdock.threads.render import FieldChange, thread_state

logger = logging.getLogger("django_flowdock.delivery")

BATCH = 200
#: Not the change's fault: the whole fan-out is rolled back and runs again later (a lost
#: connection, a lock or statement timeout, a configuration error to fix).
_RETRY_LATER = (OperationalError, InterfaceError, ImproperlyConfigured)
_EVENT_NAMES: dict[str, str] = {Change.Event.COMMENTED: "discussion"}


@dataclass
class Traced:
    """A change with the objects it is about, as they are now."""

    change: Change
    values: dict[str, Any]
    instance: Any = None
    thread: Any = None
    thread_key: str = ""
    absorbed: bool = False
    described: list[FieldChange] = field(default_factory=list)


def load(
    model_label: str, pk: Any, deleted_by: Change | None = None, objects: Objects | None = None
) -> Any:
    """The object as it is now (from ``objects`` when given); once deleted, rebuilt
    from what ``deleted_by`` (a change of the object) needs: a thread from the last
    values captured when it was deleted (looked up only then), a comment from the
    values its COMMENTED change captured, with its thread (as it is now, or rebuilt
    once deleted) in the foreign key's cache, so ``option(comment, "thread")`` reads no
    row that is gone."""
    objects = objects if objects is not None else Objects()
    instance = objects.get(model_label, str(pk))
    if instance is not None or deleted_by is None:
        return instance
    model = apps.get_model(model_label)
    if deleted_by.event == Change.Event.COMMENTED:
        return _captured_comment(model, json.loads(deleted_by.values or "{}"), objects)
    last = deletion_values(deleted_by)
    return None if last is None else with_values(model(), last)


def captured_thread(values: dict[str, Any]) -> tuple[type[models.Model], str] | None:
    """The thread model and pk a COMMENTED change's ``values`` captured; ``None`` for
    changes captured before comments kept them."""
    thread = values.get("thread")
    return None if not thread else (apps.get_model(thread["model"]), str(thread["pk"]))


def concrete_label(model: Any) -> str:
    """The label changes are kept under: a proxy model's objects are the concrete
    model's."""
    return model._meta.concrete_model._meta.label_lower


def _captured_comment(model: type[models.Model], values: dict[str, Any], objects: Objects) -> Any:
    if "comment" not in values:
        return None
    comment = with_values(model(), values["comment"])
    thread_of = captured_thread(values)
    if thread_of is not None:
        thread_model, pk = thread_of
        thread = objects.get(concrete_label(thread_model), pk)
        if thread is None:
            last = _last_values(concrete_label(thread_model), pk)
            thread = None if last is None else with_values(thread_model(), last)
        if thread is not None:
            _cache_related(comment, thread)
    return comment


def _cache_related(instance: Any, related: Any) -> None:
    """``instance``'s foreign keys to ``related`` return it without a query."""
    concrete = related._meta.concrete_model
    for f in instance._meta.concrete_fields:
        if (
            f.many_to_one
            and f.related_model._meta.concrete_model is concrete
            and getattr(instance, f.attname) == getattr(related, f.target_field.attname)
        ):
            f.set_cached_value(instance, related)


def with_values(instance: Any, values: dict[str, Any]) -> Any:
    """A new instance showing ``instance`` with the captured raw ``values`` (attribute
    names, and many-to-many field names with the related pks)."""
    opts = instance._meta
    attrs = {
        f.attname: instance.__dict__[f.attname]
        for f in opts.concrete_fields
        if f.attname in instance.__dict__
    }
    m2m = dict(instance.__dict__.get(M2M_OVERRIDE, {}))
    for name, raw in values.items():
        model_field = _field(opts, name)
        if model_field is None:
            continue  # removed from the model since the change was captured
        if model_field.many_to_many:
            m2m[name] = raw
            continue
        try:
            attrs[model_field.attname] = model_field.to_python(raw)
        except Exception:  # a captured value the field no longer parses: show it as is
            attrs[model_field.attname] = raw
    shown = type(instance)(**attrs)
    shown._state.adding, shown._state.db = instance._state.adding, instance._state.db
    # Related objects already loaded stay loaded, unless their key was changed.
    for f in opts.concrete_fields:
        if f.is_relation and f.attname not in values and f.is_cached(instance):
            f.set_cached_value(shown, f.get_cached_value(instance))
    shown.__dict__[M2M_OVERRIDE] = m2m
    prefetched = instance.__dict__.get("_prefetched_objects_cache")
    if prefetched:
        shown._prefetched_objects_cache = {k: v for k, v in prefetched.items() if k not in m2m}
    return shown


def _field(opts: Any, name: str) -> Any:
    for candidate in [*opts.concrete_fields, *opts.many_to_many]:
        if name in (candidate.attname, candidate.name):
            return candidate
    return None


def deletion_values(change: Change) -> dict[str, Any] | None:
    """The last values of a thread object deleted after ``change`` was made: concrete
    fields by attribute name, many-to-many fields by name with the related pks."""
    if change.event == Change.Event.DELETED:
        return json.loads(change.values)["last"]
    return _last_values(change.model, change.object_pk)


def _last_values(model_label: str, object_pk: str) -> dict[str, Any] | None:
    later = (
        Change.objects.filter(model=model_label, object_pk=object_pk, event=Change.Event.DELETED)
        .values_list("values", flat=True)
        .first()
    )
    return json.loads(later)["last"] if later else None


def trace(change: Change, objects: Objects) -> Traced | None:
    """``change`` with its objects, or ``None`` when there is nothing left to show (an
    object deleted without its values captured: a comment saved before comments kept
    them, a row deleted with SQL)."""
    values = json.loads(change.values) if change.values else {}
    traced = Traced(change, values)
    if change.event == Change.Event.COMMENTED:
        comment = load(change.model, change.object_pk, change, objects)
        if comment is None:
            return None
        traced.instance = comment
        traced.thread = option(comment, "thread")
        if traced.thread is None:
            return None
    else:
        traced.instance = traced.thread = load(change.model, change.object_pk, change, objects)
        if traced.instance is None:
            return None
    traced.thread_key = traced.thread.get_flowdock_thread_id()
    return traced


def coalesce(traced: list[Traced]) -> None:
    """Merge the saves of one thread within one transaction into the first of them."""
    runs: dict[tuple[str, str], Traced] = {}
    for item in traced:
        change = item.change
        key = (change.transaction, item.thread_key)
        head = runs.get(key) if change.transaction else None
        if change.event not in (Change.Event.CREATED, Change.Event.UPDATED):
            runs.pop(key, None)
        elif head is None:
            runs[key] = item
        else:
            item.absorbed = True
            if head.change.event == Change.Event.UPDATED:
                old, new = item.values.get("old", {}), item.values.get("new", {})
                head.values["old"] = {**old, **head.values.get("old", {})}
                head.values["new"] = {**head.values.get("new", {}), **new}


def describe(item: Traced, objects: Objects) -> list[FieldChange]:
    """What an update changed, as shown in the thread. When the update's new values are
    what the object holds now (its latest change), the new state is the one the
    message is rendered with, computed once."""
    instance, new_values = item.instance, item.values.get("new", {})
    old = thread_state(with_values(instance, item.values.get("old", {})), actions=False)
    if objects.is_current(item.change.model, instance) and holds(instance, new_values):
        new = objects.state(instance, item.change)
    else:
        new = thread_state(with_values(instance, new_values), actions=False)
    return new.changes_since(old)


def holds(instance: Any, values: dict[str, Any]) -> bool:
    """Whether ``instance`` holds the captured raw ``values`` (many-to-many ones are
    not compared: they say no)."""
    opts = instance._meta
    for name, raw in values.items():
        model_field = _field(opts, name)
        if model_field is None:
            continue
        if model_field.many_to_many:
            return False
        try:
            if model_field.to_python(raw) != getattr(instance, model_field.attname):
                return False
        except Exception:  # a captured value the field no longer parses
            return False
    return True


class Receivers:
    """The active sources, read once per fan-out, and which of them receive what."""

    def __init__(self, using: str) -> None:
        self.sources = list(
            Source.objects.using(using)
            .filter(active=True)
            .only("pk", "settings", "scope_content_type_id", "scope_object_id")
            .order_by("pk")
        )

    def of(self, thread: Any, action: str) -> list[int]:
        """Ids of the sources that receive ``action`` about ``thread``: unscoped ones
        plus those scoped to its scope object(s), filtered by their settings."""
        scope = option(thread, "scope")
        scopes = {
            (ContentType.objects.get_for_model(obj).pk, str(obj.pk))
            for obj in (scope if isinstance(scope, (list, tuple)) else [scope])
            if obj
        }
        label = thread._meta.label_lower
        return [
            source.pk
            for source in self.sources
            if (
                source.scope_content_type_id is None
                or (source.scope_content_type_id, source.scope_object_id) in scopes
            )
            and source.accepts(label, action)
        ]


def fan_out(
    limit: int = BATCH,
    objects: Objects | None = None,
    between: Callable[[], None] | None = None,
) -> int:
    """Turn up to ``limit`` captured changes into messages; return how many changes
    were taken (0 when none is waiting, or another drain wrote them first).
    ``objects`` (the drain round's) keeps what was read for rendering; ``between`` is
    called before each change's tracing and describing (the project's code), by a
    drain keeping its leases."""
    using = router.db_for_write(Message)
    objects = objects if objects is not None else Objects()
    between = between or _nothing
    if connections[using].vendor == "sqlite":
        if not Change.objects.using(using).filter(fanned_out=False).exists():
            return 0  # nothing waits: the web process's saves need not wait for the lock
        # SQLite has one writer whatever we do: taking it first, as one transaction,
        # spares a commit that would have to wait for other processes' reads.
        with transaction.atomic(using=using):
            take_write_lock(using, Change)
            taken, queued = _fan_out(limit, objects, using, between)
    else:
        taken, queued = _fan_out(limit, objects, using, between)
    for item, rows in queued:
        if rows:
            send_robust(message_queued, messages=rows, instance=item.instance)
    return taken


def _nothing() -> None:
    pass


def _fan_out(
    limit: int, objects: Objects, using: str, between: Callable[[], None]
) -> tuple[int, list[tuple[Traced, list[Message]]]]:
    changes = list(Change.objects.using(using).filter(fanned_out=False).order_by("pk")[:limit])
    if not changes:
        return 0, []
    failed: dict[int, str] = {}
    traced = _traced(changes, objects, using, failed, between)
    coalesce(traced)
    receivers = Receivers(using)
    queued: list[tuple[Traced, list[Message]]] = []
    for item in traced:
        if item.absorbed:
            continue
        between()
        try:
            with _guarded(using):
                queued.append((item, _messages_for(item, receivers, objects)))
        except _RETRY_LATER:
            raise
        except Exception:
            failed[item.change.pk] = _error(
                item.change, "Could not describe this change or find its sources"
            )
    if not _write(changes, queued, failed, using):
        return 0, []
    return len(changes), queued


def _traced(
    changes: list[Change],
    objects: Objects,
    using: str,
    failed: dict[int, str],
    between: Callable[[], None],
) -> list[Traced]:
    objects.prime(changes)
    traced: list[Traced] = []
    for change in changes:
        between()
        try:
            with _guarded(using):
                item = trace(change, objects)
        except _RETRY_LATER:
            raise
        except Exception:
            failed[change.pk] = _error(change, "Could not read the objects of this change")
            continue
        if item is None:
            logger.warning("Nothing to send for %s: its objects no longer exist", change)
        else:
            traced.append(item)
    return traced


def _guarded(using: str) -> Any:
    """Inside a transaction, a savepoint, so that a project's method that fails a
    query does not abort it; outside one (a worker, the delivery thread), and on SQLite
    (where a failed query aborts no transaction), nothing to pay for."""
    connection = connections[using]
    if connection.in_atomic_block and connection.vendor != "sqlite":
        return transaction.atomic(using=using)
    return contextlib.nullcontext()


def _write(
    changes: list[Change],
    queued: list[tuple[Traced, list[Message]]],
    failed: dict[int, str],
    using: str,
) -> bool:
    """Write the batch's messages and mark its changes done, unless another drain wrote
    any of them first (then nothing is written: its messages stand)."""
    pks = [c.pk for c in changes]
    rows = [m for _item, messages in queued for m in messages]
    with read_committed(using, savepoint=False):
        still = Change.objects.using(using).filter(pk__in=pks, fanned_out=False)
        if connections[using].features.has_select_for_update:
            # Not skip_locked: a second writer waits, then finds the batch written.
            still = still.select_for_update()
        if len(still.values_list("pk", flat=True)) != len(pks):
            return False
        _mark_heads(rows, using)
        Message.objects.using(using).bulk_create(rows)
        described = {item.change.pk: item.change.described for item, _m in queued}
        _mark_fanned_out([pk for pk in pks if pk not in failed], described, using)
        for pk, error in failed.items():
            Change.objects.using(using).filter(pk=pk).update(fanned_out=True, error=error)
    return True


def _mark_fanned_out(pks: list[int], described: dict[int, str], using: str) -> None:
    """Mark changes fanned out, each update with what it changed, in one statement (per
    chunk of the database's parameter limit). Plain SQL: the ORM's ``bulk_update``
    spends more building its ``CASE`` than the database spends running it."""
    connection = connections[using]
    quote, opts = connection.ops.quote_name, Change._meta
    columns = {f.name: str(f.column) for f in opts.concrete_fields}
    table, pk = quote(opts.db_table), quote(columns[opts.pk.name])
    fanned_out, text = quote(columns["fanned_out"]), quote(columns["described"])
    # One parameter, and up to three an id: the CASE's WHEN and THEN, and the IN list
    # (PostgreSQL has no limit Django knows of; binding on the server has one).
    size = max(1, ((connection.features.max_query_params or 3001) - 1) // 3)
    with connection.cursor() as cursor:
        for start in range(0, len(pks), size):
            chunk = pks[start : start + size]
            cases = [(p, described[p]) for p in chunk if described.get(p)]
            sets = f"{fanned_out} = %s"
            params: list[Any] = [True]
            if cases:
                whens = " ".join(["WHEN %s THEN %s"] * len(cases))
                sets += f", {text} = CASE {pk} {whens} ELSE {text} END"
                params += [value for case in cases for value in case]
            ids = ", ".join(["%s"] * len(chunk))
            cursor.execute(f"UPDATE {table} SET {sets} WHERE {pk} IN ({ids})", [*params, *chunk])  # noqa: S608


def _mark_heads(rows: list[Message], using: str) -> None:
    """Make each line's first new message its head when nothing of the line is pending.

    The lines' heads are locked first: an outcome being written for a head (which hands
    the head on in the same transaction) is waited for, and one written later waits for
    these messages, so it sees them. On SQLite the write lock already serialises the
    two."""
    if not rows:
        return
    source_ids = sorted({m.source_id for m in rows})
    keys = {m.thread_key for m in rows}
    lines = Message.objects.using(using).filter(source_id__in=source_ids, thread_key__in=keys)
    if connections[using].features.has_select_for_update:
        # A head whose outcome was being written is waited for, then left out (no
        # longer pending), and the head it handed on is not in that query's snapshot:
        # query again, until two queries in a row lock the same heads.
        locked: set[int] | None = None
        while True:
            heads = set(
                lines.filter(head=True, state=Message.State.PENDING)
                .select_for_update()
                .values_list("pk", flat=True)
            )
            if heads == locked:
                break
            locked = heads
    busy = set(lines.pending().values_list("source_id", "thread_key").order_by().distinct())
    for message in rows:
        line = (message.source_id, message.thread_key)
        if line not in busy:
            message.head = True
            busy.add(line)


def _messages_for(item: Traced, receivers: Receivers, objects: Objects) -> list[Message]:
    change = item.change
    if change.event == Change.Event.UPDATED and not item.values.get("resync"):
        try:
            described = describe(item, objects)
        except Exception:
            # The old state cannot be shown (a get_flowdock_* method raised for it): the
            # update still goes out with the thread as it is now, just without a list
            # of what changed.
            logger.warning(
                "Could not describe %s; sending it without changes", change, exc_info=True
            )
            described = None
        if described == []:
            return []  # nothing the thread shows has changed
        if described:
            change.described = json.dumps([c.as_list() for c in described])
    source_ids = receivers.of(item.thread, change.event)
    event = _EVENT_NAMES.get(change.event, "activity")
    return [
        Message(source_id=pk, change=change, thread_key=item.thread_key, event=event)
        for pk in source_ids
    ]


def _error(change: Change, what: str) -> str:
    change.error = f"{what}:\n{traceback.format_exc()}"
    logger.exception("%s (%s)", what, change)
    return change.error


def take_write_lock(using: str, model: type[models.Model]) -> None:
    """SQLite has one writer at a time: writing first makes this transaction that
    writer (waiting for the busy timeout if needed), so no other drain can take the
    rows chosen next, and no read lock has to be upgraded later (which fails at once
    instead of waiting)."""
    table = connections[using].ops.quote_name(model._meta.db_table)
    with connections[using].cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET id = id WHERE 0 = 1")  # noqa: S608 - no user input
