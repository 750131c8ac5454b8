"""Model signal handlers, connected per model in ``AppConfig.ready()``.

Updates are described by comparing the thread state rendered from the values loaded
(kept at ``post_init``) with the state after the save, so computed options such as a
``get_flowdock_title()`` are compared as shown, and a save that changes nothing shown
sends nothing.
"""

from __future__ import annotations

import copy
from typing import Any

from django.apps import apps
from django.db.models.signals import post_delete, post_init, post_save, pre_save

from .enqueue import queue
from .mixins import FlowdockComment, FlowdockThread
from .options import read_path
from .payloads import activity_message, discussion_message, thread_state

_SNAPSHOT = "_flowdock_loaded"


def _concrete_values(instance: Any) -> dict[str, Any]:
    values = instance.__dict__
    return {
        f.attname: values[f.attname] for f in instance._meta.concrete_fields if f.attname in values
    }


def remember_loaded_values(sender: type, instance: Any, **kwargs: Any) -> None:
    instance.__dict__[_SNAPSHOT] = _concrete_values(instance)


def remember_reloaded_values(instance: Any, names: set[str] | None, deferred: set[str]) -> None:
    """After ``refresh_from_db()`` (also how a deferred field is loaded), the values read
    are the baseline for the next save: ``names`` were reloaded, or with ``None`` every
    field not in ``deferred``."""
    snapshot = instance.__dict__.setdefault(_SNAPSHOT, {})
    values = instance.__dict__
    for f in instance._meta.concrete_fields:
        if names is None:
            reloaded = f.attname not in deferred
        else:
            reloaded = f.name in names or f.attname in names or f.primary_key
        if reloaded and f.attname in values:
            snapshot[f.attname] = values[f.attname]


def load_unknown_values(sender: type, instance: Any, raw: bool, **kwargs: Any) -> None:
    """Fields that were deferred when the object was loaded and assigned since have no
    known old value: read it before the save overwrites it (one query, only then)."""
    if raw or instance._state.adding or instance.pk is None:
        return
    loaded = instance.__dict__.get(_SNAPSHOT)
    if loaded is None:
        return
    unknown = [
        f.attname
        for f in instance._meta.concrete_fields
        if f.attname in instance.__dict__ and f.attname not in loaded
    ]
    if not unknown:
        return
    using = kwargs.get("using") or instance._state.db
    old = sender._base_manager.using(using).filter(pk=instance.pk).values(*unknown).first()
    if old is not None:
        loaded.update(old)


def _as_loaded(instance: Any, loaded: dict[str, Any], changed: set[str]) -> Any:
    """A copy of ``instance`` with the loaded values of the ``changed`` attributes."""
    old = copy.copy(instance)
    old.__dict__.update({name: loaded[name] for name in changed})
    old._state = copy.copy(instance._state)
    stale = {f.name for f in instance._meta.concrete_fields if f.attname in changed}
    old._state.fields_cache = {
        k: v for k, v in instance._state.fields_cache.items() if k not in stale
    }
    return old


def thread_saved(sender: type, instance: Any, created: bool, raw: bool, **kwargs: Any) -> None:
    if raw:
        return
    loaded = instance.__dict__.get(_SNAPSHOT, {})
    current = _concrete_values(instance)
    if created:
        queue(instance, activity_message(instance, "created"), action="created")
        instance.__dict__[_SNAPSHOT] = current
        return
    saved = _saved_attnames(instance, kwargs.get("update_fields"))
    dirty = {name for name, value in current.items() if name in loaded and loaded[name] != value}
    changed = dirty & saved
    if changed:
        unsaved = dirty - saved
        shown = _as_loaded(instance, loaded, unsaved) if unsaved else instance
        new = thread_state(shown)
        old = thread_state(_as_loaded(instance, loaded, dirty), actions=False)
        changes = new.changes_since(old)
        if changes:
            message = activity_message(shown, "updated", state=new, changes=changes)
            # state/before let later saves in the same transaction merge into this message.
            queue(instance, message, action="updated", state=new, before=old)
    # The snapshot records what the database holds: fields left out of update_fields
    # keep their loaded value, so saving them later is still a change.
    instance.__dict__[_SNAPSHOT] = {
        **loaded,
        **{name: value for name, value in current.items() if name in saved},
    }


def _saved_attnames(instance: Any, update_fields: Any) -> set[str]:
    fields = instance._meta.concrete_fields
    if update_fields is None:
        return {f.attname for f in fields}
    return {f.attname for f in fields if f.name in update_fields or f.attname in update_fields}


def thread_deleted(sender: type, instance: Any, **kwargs: Any) -> None:
    queue(instance, activity_message(instance, "deleted"), action="deleted")


def comment_saved(sender: type, instance: Any, created: bool, raw: bool, **kwargs: Any) -> None:
    if raw or not created:
        return
    thread = read_path(instance, instance.flowdock_options().get("thread"))
    if thread is None:
        return
    queue(instance, discussion_message(instance, thread), action="commented", thread=thread)


def connect_receivers() -> None:
    for model in apps.get_models():
        uid = model._meta.label_lower
        if issubclass(model, FlowdockThread):
            post_init.connect(remember_loaded_values, model, dispatch_uid=f"flowdock-init-{uid}")
            pre_save.connect(load_unknown_values, model, dispatch_uid=f"flowdock-presave-{uid}")
            post_save.connect(thread_saved, model, dispatch_uid=f"flowdock-save-{uid}")
            post_delete.connect(thread_deleted, model, dispatch_uid=f"flowdock-delete-{uid}")
        if issubclass(model, FlowdockComment):
            post_save.connect(comment_saved, model, dispatch_uid=f"flowdock-comment-{uid}")
