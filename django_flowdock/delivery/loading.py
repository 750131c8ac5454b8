"""The objects of a batch of changes, read once for the batch.

Fan-out and rendering read the same objects: each model's objects in one query, with
the forward relations they show joined and the many-to-many relations they show
prefetched, and the authors in one more. What the project's ``get_flowdock_*`` methods
read beyond the declared options is read by them, as in any view.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import models

from django_flowdock.context import delivering
from django_flowdock.models import Change
from django_flowdock.threads.options import ATTRIBUTE_OPTIONS, Options
from django_flowdock.threads.render import ThreadState, thread_state


class Objects:
    """Objects by model label and pk, as they are now (``None`` once deleted)."""

    def __init__(self) -> None:
        self._objects: dict[tuple[str, str], Any] = {}
        self._authors: dict[str, Any] = {}
        self._states: dict[tuple[str, str, str, str], ThreadState] = {}

    def prime(self, changes: Iterable[Change]) -> None:
        """Read the objects and authors of ``changes`` not read yet."""
        wanted: dict[str, set[str]] = defaultdict(set)
        authors: set[str] = set()
        for change in changes:
            if (change.model, change.object_pk) not in self._objects:
                wanted[change.model].add(change.object_pk)
            if change.author_pk and change.author_pk not in self._authors:
                authors.add(change.author_pk)
        for label, pks in wanted.items():
            self._read(label, pks)
        if authors:
            self._read_authors(authors)

    def get(self, label: str, pk: str) -> Any:
        """The object, read now if the batch did not read it."""
        key = (label, pk)
        if key not in self._objects:
            self._read(label, {pk})
        return self._objects[key]

    def state(self, instance: Any, change: Change) -> ThreadState:
        """The thread state of ``instance`` as it is now (an object read by this
        batch), as ``change`` shows it (its author acting, its site's URLs): computed
        once, for describing an update at fan-out and for rendering it."""
        key = (change.model, str(instance.pk), change.author_pk, change.base_url)
        state = self._states.get(key)
        if state is None:
            with delivering(self.author(change.author_pk), change.base_url):
                state = self._states[key] = thread_state(instance)
        return state

    def is_current(self, label: str, instance: Any) -> bool:
        """Whether ``instance`` is the object this batch read (not one rebuilt from
        captured values)."""
        return self._objects.get((label, str(instance.pk))) is instance

    def author(self, pk: str) -> Any:
        if not pk:
            return None
        if pk not in self._authors:
            self._read_authors({pk})
        return self._authors[pk]

    def _read(self, label: str, pks: set[str]) -> None:
        try:
            model = apps.get_model(label)
        except LookupError:  # a model removed since its changes were captured
            self._objects.update({(label, pk): None for pk in pks})
            return
        joined, prefetched = relations(model)
        objects = model._base_manager.filter(pk__in=_valid(model, pks))
        if joined:  # select_related() without fields follows every non-null key
            objects = objects.select_related(*joined)
        if prefetched:
            objects = objects.prefetch_related(*prefetched)
        found = {str(obj.pk): obj for obj in objects}
        self._objects.update({(label, pk): found.get(pk) for pk in pks})

    def _read_authors(self, pks: set[str]) -> None:
        model = get_user_model()
        found = {
            str(user.pk): user for user in model._default_manager.filter(pk__in=_valid(model, pks))
        }
        self._authors.update({pk: found.get(pk) for pk in pks})


def _valid(model: type[models.Model], pks: set[str]) -> list[Any]:
    """The pks ``model``'s primary key can hold (one of another model, since swapped or
    changed, matches nothing)."""
    valid = []
    for pk in pks:
        try:
            valid.append(model._meta.pk.to_python(pk))
        except (ValidationError, ValueError, TypeError):
            continue
    return valid


_relations: dict[type[models.Model], tuple[tuple[str, ...], tuple[str, ...]]] = {}


def relations(model: type[models.Model]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The lookups to read with ``model``'s objects: every forward foreign key, the
    relations its options' paths walk, and for a comment model its thread's (worked
    out once per model)."""
    if model not in _relations:
        _relations[model] = _lookups(model)
    return _relations[model]


def _lookups(model: type[models.Model]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    joined: set[str] = {
        f.name for f in model._meta.concrete_fields if f.is_relation and f.many_to_one
    }
    prefetched: set[str] = set()
    options = getattr(model, "flowdock_options", None)
    if options is None:
        return tuple(sorted(joined)), ()
    _walk_options(model, options(), "", joined, prefetched)
    thread_path = options().get("thread")
    if isinstance(thread_path, str):
        thread_field = _forward(model, thread_path.split(".")[0])
        thread_model = thread_field.related_model if thread_field is not None else None
        if thread_model is not None and hasattr(thread_model, "flowdock_options"):
            prefix = f"{thread_field.name}__"
            joined |= {
                f"{prefix}{f.name}"
                for f in thread_model._meta.concrete_fields
                if f.is_relation and f.many_to_one
            }
            _walk_options(thread_model, thread_model.flowdock_options(), prefix, joined, prefetched)
    return tuple(sorted(joined)), tuple(sorted(prefetched))


def _walk_options(
    model: type[models.Model], options: Options, prefix: str, joined: set[str], prefetched: set[str]
) -> None:
    paths = [options.get(name) for name in ATTRIBUTE_OPTIONS] + [s.path for s in options.fields]
    for path in paths:
        if isinstance(path, str):
            _walk(model, path.split("."), prefix, joined, prefetched)


def _walk(
    model: type[models.Model], names: list[str], prefix: str, joined: set[str], prefetched: set[str]
) -> None:
    lookup = prefix.rstrip("_") if prefix else ""
    for name in names:
        try:
            field = model._meta.get_field(name)
        except FieldDoesNotExist:
            return  # a property or method: what it reads is its own business
        if not field.is_relation or field.related_model is None:
            return
        lookup = f"{lookup}__{field.name}" if lookup else field.name
        if field.many_to_one or (field.one_to_one and field.concrete):
            joined.add(lookup)
            model = field.related_model
            continue
        prefetched.add(lookup)  # many-to-many or reverse: one query per batch
        return


def _forward(model: type[models.Model], name: str) -> Any:
    try:
        field = model._meta.get_field(name)
    except FieldDoesNotExist:
        return None
    return field if field.many_to_one or (field.one_to_one and field.concrete) else None
