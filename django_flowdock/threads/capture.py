"""Model signal receivers: capture what happened, nothing more.

At save the receivers record which attributes changed (their old and new raw values),
who made the change, and what was deleted, as one outbox row per object. Whether the
change shows in the thread, and how, is decided at delivery, from the object as it is
then: the save path never renders, validates, signs or queries sources.

What delivery needs once rows are gone is captured too: a comment's values and its
thread's identity, a deleted thread's last values with its many-to-many pks.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import decimal
import logging
import uuid
from collections.abc import Collection
from typing import Any

from django.apps import apps
from django.core.exceptions import DisallowedHost, FieldDoesNotExist, ImproperlyConfigured
from django.db import connections, models, router
from django.db.models.fields.files import FieldFile
from django.db.models.signals import (
    m2m_changed,
    post_delete,
    post_save,
    pre_delete,
    pre_save,
)

from django_flowdock.conf import flowdock_settings
from django_flowdock.context import current_request, current_user, is_from_flowdock
from django_flowdock.delivery.outbox import capture, values_before
from django_flowdock.mixins import LOADED_VALUES, FlowdockComment, FlowdockThread, loaded_values
from django_flowdock.models import Change
from django_flowdock.threads.options import option

logger = logging.getLogger("django_flowdock.delivery")

_M2M_BEFORE = "_flowdock_m2m_before"
_M2M_LAST = "_flowdock_m2m_last"
_FIELDS = "_flowdock_fields"
#: Values changed in place would change the snapshot along with the object: a file's
#: name (``obj.attachment.save(...)``), a JSONField's dict or list.
_IN_PLACE = (FieldFile, dict, list)
#: Types whose values never change in place: a save whose values are all of these
#: (the usual case) skips checking them one by one.
_PLAIN_TYPES = frozenset(
    {str, int, float, bool, type(None), bytes, decimal.Decimal, uuid.UUID}
    | {datetime.datetime, datetime.date, datetime.time, datetime.timedelta}
)


class _Fields:
    """A model's concrete fields as the receivers read them, worked out once per model
    and kept on its ``_meta``, so that a save does not walk the model's metadata."""

    __slots__ = ("attnames", "label", "names")

    def __init__(self, opts: Any) -> None:
        fields = opts.concrete_fields
        self.attnames: tuple[str, ...] = tuple(f.attname for f in fields)
        #: (name, attname) of each field, to read ``update_fields``.
        self.names: tuple[tuple[str, str], ...] = tuple((f.name, f.attname) for f in fields)
        # A proxy model's objects are the concrete model's threads.
        self.label: str = opts.concrete_model._meta.label_lower


def _fields(instance: Any) -> _Fields:
    opts = instance._meta
    fields = opts.__dict__.get(_FIELDS)
    if fields is None:
        fields = _Fields(opts)
        setattr(opts, _FIELDS, fields)
    return fields


def _concrete_values(instance: Any, fields: _Fields) -> dict[str, Any]:
    values = instance.__dict__
    current = {name: values[name] for name in fields.attnames if name in values}
    if not _PLAIN_TYPES.issuperset(map(type, current.values())):
        for name, value in current.items():
            if isinstance(value, _IN_PLACE):
                current[name] = _raw(value)
    return current


def _raw(value: Any) -> Any:
    if isinstance(value, FieldFile):
        return value.name
    return copy.deepcopy(value) if isinstance(value, (dict, list)) else value


def remember_reloaded_values(instance: Any, names: set[str] | None, deferred: set[str]) -> None:
    """After ``refresh_from_db()`` (also how a deferred field is loaded), the values read
    are the baseline for the next save: ``names`` were reloaded, or with ``None`` every
    field not in ``deferred``."""
    snapshot = loaded_values(instance)
    if snapshot is None:
        snapshot = instance.__dict__[LOADED_VALUES] = {}
    values = instance.__dict__
    for f in instance._meta.concrete_fields:
        if names is None:
            reloaded = f.attname not in deferred
        else:
            reloaded = f.name in names or f.attname in names or f.primary_key
        if reloaded and f.attname in values:
            snapshot[f.attname] = _raw(values[f.attname])


def load_unknown_values(
    sender: type[models.Model], instance: Any, raw: bool, **kwargs: Any
) -> None:
    """Fields that were deferred when the object was loaded and assigned since have no
    known old value: read it before the save overwrites it (one query, only then)."""
    if raw or instance._state.adding or instance.pk is None:
        return
    loaded = instance.__dict__.get(LOADED_VALUES)
    attnames = _fields(instance).attnames
    # None: never loaded, nothing to compare with. A whole row as loaded, or a snapshot
    # with every field (its keys are attnames), knows every value.
    if type(loaded) is not dict or len(loaded) == len(attnames):
        return
    values = instance.__dict__
    unknown = [name for name in attnames if name in values and name not in loaded]
    if not unknown:
        return
    using = kwargs.get("using") or instance._state.db
    old = sender._base_manager.using(using).filter(pk=instance.pk).values(*unknown).first()
    if old is not None:
        loaded.update(old)


def _context() -> dict[str, Any]:
    """Who made the change, and the site it was made on when no SITE_URL is set."""
    user = current_user()
    context: dict[str, Any] = {"author_pk": None if user is None else user.pk}
    if not flowdock_settings.SITE_URL:
        request = current_request.get()
        if request is not None:
            # A host Django refuses: relative URLs are then left out; the save goes on.
            with contextlib.suppress(DisallowedHost):
                context["base_url"] = request.build_absolute_uri("/").rstrip("/")
    return context


def _using(instance: Any, kwargs: dict[str, Any]) -> str:
    return kwargs.get("using") or router.db_for_write(Change, instance=instance)


def thread_saved(sender: type, instance: Any, created: bool, raw: bool, **kwargs: Any) -> None:
    if raw:
        return
    fields = _fields(instance)
    using = _using(instance, kwargs)
    current = _concrete_values(instance, fields)
    if created:
        capture(
            using=using,
            model=fields.label,
            object_pk=instance.pk,
            event=Change.Event.CREATED,
            **_context(),
        )
        instance.__dict__[LOADED_VALUES] = current
        return
    loaded = loaded_values(instance) or {}
    update_fields = kwargs.get("update_fields")
    saved = _saved_attnames(fields, update_fields)
    changed = [n for n in saved if n in loaded and n in current and loaded[n] != current[n]]
    before = values_before(connections[using], (fields.label, instance.pk), loaded)
    if changed:
        # Old values may equal new ones (a change undone within the transaction): kept,
        # so coalescing takes the final value; describing then finds nothing to show.
        capture(
            using=using,
            model=fields.label,
            object_pk=instance.pk,
            event=Change.Event.UPDATED,
            values={
                "old": {name: before.get(name, loaded[name]) for name in changed},
                "new": {name: current[name] for name in changed},
            },
            **_context(),
        )
    # The snapshot records what the database holds: fields left out of update_fields
    # keep their loaded value, so saving them later is still a change.
    if update_fields is not None:
        current = {name: current[name] for name in saved if name in current}
    instance.__dict__[LOADED_VALUES] = {**loaded, **current}


def _saved_attnames(fields: _Fields, update_fields: Any) -> Collection[str]:
    if update_fields is None:
        return fields.attnames
    return [a for name, a in fields.names if name in update_fields or a in update_fields]


def remember_related_values(sender: type, instance: Any, **kwargs: Any) -> None:
    """The delete's cascade clears the many-to-many rows before ``post_delete``: read
    the related pks first (one query per relation), for the deleted thread's last
    values."""
    using = kwargs.get("using") or instance._state.db
    instance.__dict__[_M2M_LAST] = {
        field.name: sorted(_related_sets(field, [instance.pk], using)[instance.pk])
        for field in instance._meta.many_to_many
    }


def thread_deleted(sender: type, instance: Any, **kwargs: Any) -> None:
    # Every value, so the thread can still be rendered once the row is gone.
    last = {**_concrete_values(instance, _fields(instance)), **instance.__dict__.pop(_M2M_LAST, {})}
    capture(
        using=_using(instance, kwargs),
        model=_fields(instance).label,
        object_pk=instance.pk,
        event=Change.Event.DELETED,
        values={"last": last},
        **_context(),
    )


def comment_saved(sender: type, instance: Any, created: bool, raw: bool, **kwargs: Any) -> None:
    if raw or not created or is_from_flowdock():
        return
    # The comment or its thread may be deleted before delivery: the comment's values
    # and the thread's identity let delivery rebuild them (with the thread's deletion).
    values: dict[str, Any] = {"comment": _concrete_values(instance, _fields(instance))}
    thread = _thread_identity(instance)
    if thread is not None:
        values["thread"] = thread
    capture(
        using=_using(instance, kwargs),
        model=_fields(instance).label,
        object_pk=instance.pk,
        event=Change.Event.COMMENTED,
        values=values,
        **_context(),
    )


def _thread_identity(comment: Any) -> dict[str, Any] | None:
    """The model label and pk of the comment's thread. A ``thread`` option naming a
    foreign key is read from the comment's own values (no query); anything else is
    resolved through the option, whose errors never fail the save."""
    key = _thread_key_field(comment)
    try:
        if key is not None and not key.is_cached(comment) and key.target_field.primary_key:
            model, pk = key.related_model, getattr(comment, key.attname)
        else:
            thread = option(comment, "thread")
            model, pk = type(thread), getattr(thread, "pk", None)
        return None if pk is None else {"model": model._meta.label_lower, "pk": pk}
    except ImproperlyConfigured:
        raise
    except Exception:
        logger.warning(
            "Could not read the thread of %s; its discussion needs the comment and the "
            "thread to exist when it is delivered",
            comment._meta.label,
            exc_info=True,
        )
        return None


def _thread_key_field(comment: Any) -> Any:
    """The foreign key the comment's ``thread`` option names, if it names one."""
    spec = comment.flowdock_options().get("thread")
    if hasattr(comment, "get_flowdock_thread") or not isinstance(spec, str) or "." in spec:
        return None
    try:
        field = comment._meta.get_field(spec)
    except FieldDoesNotExist:
        return None
    return field if field.many_to_one and field.concrete else None


def _related_sets(field: models.ManyToManyField, thread_pks: Any, using: str) -> dict[Any, set]:
    """The related objects' pks of each thread in ``thread_pks`` (one query)."""
    through: Any = field.remote_field.through
    source = through._meta.get_field(field.m2m_field_name()).attname
    target = through._meta.get_field(field.m2m_reverse_field_name()).attname
    sets: dict[Any, set] = {pk: set() for pk in thread_pks}
    rows = through._base_manager.using(using).filter(**{f"{source}__in": list(sets)})
    for thread_pk, related_pk in rows.values_list(source, target):
        sets[thread_pk].add(related_pk)
    return sets


def _m2m_receiver(field: models.ManyToManyField) -> Any:
    """An ``m2m_changed`` receiver for one many-to-many field of a thread model: a
    change to the relation alone is an update of each thread it touches."""
    thread_model: Any = field.model
    thread_label = thread_model._meta.concrete_model._meta.label_lower

    def changed(
        sender: type, instance: Any, action: str, reverse: bool, pk_set: Any, **kwargs: Any
    ) -> None:
        if action.startswith("pre_"):
            using = kwargs.get("using") or router.db_for_write(Change, instance=instance)
            if not reverse:
                threads = [instance.pk]
            elif pk_set is not None:
                threads = list(pk_set)
            else:  # clearing from the related side: every thread that holds it
                threads = list(
                    thread_model._base_manager.using(using)
                    .filter(**{field.name: instance.pk})
                    .values_list("pk", flat=True)
                )
            instance.__dict__.setdefault(_M2M_BEFORE, {})[field.name] = (
                _related_sets(field, threads, using),
                using,
            )
            return
        before, using = instance.__dict__.get(_M2M_BEFORE, {}).pop(field.name, ({}, None))
        for thread_pk, old in before.items():
            if action == "post_clear":
                new = set() if not reverse else old - {instance.pk}
            elif reverse:
                new = old | {instance.pk} if action == "post_add" else old - {instance.pk}
            else:
                new = old | set(pk_set or ()) if action == "post_add" else old - set(pk_set or ())
            if new != old:
                capture(
                    using=using,
                    model=thread_label,
                    object_pk=thread_pk,
                    event=Change.Event.UPDATED,
                    values={"old": {field.name: sorted(old)}, "new": {field.name: sorted(new)}},
                    **_context(),
                )

    return changed


def connect_receivers() -> None:
    for model in apps.get_models():
        uid = model._meta.label_lower
        if issubclass(model, FlowdockThread):
            pre_save.connect(load_unknown_values, model, dispatch_uid=f"flowdock-presave-{uid}")
            post_save.connect(thread_saved, model, dispatch_uid=f"flowdock-save-{uid}")
            pre_delete.connect(
                remember_related_values, model, dispatch_uid=f"flowdock-predelete-{uid}"
            )
            post_delete.connect(thread_deleted, model, dispatch_uid=f"flowdock-delete-{uid}")
            for field in model._meta.local_many_to_many:
                m2m_changed.connect(
                    _m2m_receiver(field),
                    field.remote_field.through,
                    weak=False,
                    dispatch_uid=f"flowdock-m2m-{uid}-{field.name}",
                )
        if issubclass(model, FlowdockComment):
            post_save.connect(comment_saved, model, dispatch_uid=f"flowdock-comment-{uid}")
