"""The mixins a project puts on its models; importable without the app installed.

Every ``FlowdockMeta`` option can be replaced by a ``get_flowdock_<option>()`` method
for computed values, the way ``get_absolute_url`` customises the admin.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Collection, Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from django.db import connections, router, transaction

from django_flowdock.threads.options import (
    COMMENT_OPTIONS,
    THREAD_OPTIONS,
    Options,
    declared_options,
)

if TYPE_CHECKING:
    # The mixins only ever sit on models; at run time they stay plain classes so that
    # importing them needs no app registry.
    from django.db.models import Model as _ModelBase
else:
    _ModelBase = object


#: The instance attribute holding the values the database held when it was last loaded
#: or saved (read it through ``loaded_values()``).
LOADED_VALUES = "_flowdock_loaded"
#: Fields whose values cannot change in place: a loaded row's values are kept as they
#: are. Any other field's dict or list (JSON, arrays) is copied at load.
_IMMUTABLE_TYPES = frozenset(
    [
        "AutoField",
        "BigAutoField",
        "SmallAutoField",
        "BigIntegerField",
        "IntegerField",
        "SmallIntegerField",
        "PositiveBigIntegerField",
        "PositiveIntegerField",
        "PositiveSmallIntegerField",
        "FloatField",
        "DecimalField",
        "BooleanField",
        "CharField",
        "TextField",
        "SlugField",
        "EmailField",
        "URLField",
        "UUIDField",
        "DateField",
        "DateTimeField",
        "TimeField",
        "DurationField",
        "FileField",
        "ImageField",
        "FilePathField",
        "GenericIPAddressField",
        "BinaryField",
        "ForeignKey",
        "OneToOneField",
    ]
)


def loaded_values(instance: Any) -> dict[str, Any] | None:
    """The values the database held for ``instance`` when it was last loaded or saved
    (``None`` for an object built in memory and never saved)."""
    loaded = instance.__dict__.get(LOADED_VALUES)
    if loaded is not None and type(loaded) is not dict:
        # The whole row as loaded, in concrete field order: a dict the first time it is read.
        names = [f.attname for f in instance._meta.concrete_fields]
        loaded = instance.__dict__[LOADED_VALUES] = dict(zip(names, loaded, strict=True))
    return loaded


def _loaded_row(model: Any, field_names: Collection[str], values: Collection[Any]) -> Any:
    """What an object keeps of the row it was loaded from, for the next save to be
    compared with: the row itself when it holds every field (``Model.from_db`` reads it
    in concrete field order too), else a dict. A value that can change in place (a JSON
    dict or list) is copied, since the object holds the same one."""
    copied = _copied_fields(model)
    if not copied and len(values) == len(model._meta.concrete_fields):
        return values
    loaded = dict(zip(field_names, values, strict=True))
    for name in copied.intersection(loaded):
        if isinstance(loaded[name], (dict, list)):
            loaded[name] = copy.deepcopy(loaded[name])
    return loaded


def _copied_fields(model: Any) -> frozenset[str]:
    copied = model.__dict__.get("_flowdock_copied")
    if copied is None:
        copied = frozenset(
            f.attname
            for f in model._meta.concrete_fields
            if f.get_internal_type() not in _IMMUTABLE_TYPES
        )
        model._flowdock_copied = copied
    return copied


class _RowKeepingFromDb(classmethod):
    """A model's own ``from_db``, installed by ``_load_faster()``."""


#: What Django passes ``from_db`` (6.1 adds ``fetch_mode``). The faster ``from_db``
#: takes it by name: ``**kwargs`` would cost a dict and a slower call on every row.
_FROM_DB_PARAMETERS = frozenset({"db", "field_names", "values", "fetch_mode"})
_ABSENT: Any = object()


def _load_faster(model: Any) -> None:
    """Reads pay per row: once per model, ``FlowdockThread.from_db`` is replaced on the
    model by a function that calls the next ``from_db`` directly (no ``super()``, no
    per-row lookups) and keeps the row as it is. Only where that changes nothing: no
    other ``from_db`` above the mixin, no value to copy, arguments it knows."""
    if "_flowdock_from_db_checked" in model.__dict__:
        return
    model._flowdock_from_db_checked = True
    from django.db.models import Model

    definer = next(k for k in model.__mro__ if "from_db" in k.__dict__)
    own = definer is FlowdockThread or isinstance(definer.__dict__["from_db"], _RowKeepingFromDb)
    base = getattr(super(FlowdockThread, model).from_db, "__func__", None)
    known = set(inspect.signature(Model.from_db).parameters) <= _FROM_DB_PARAMETERS
    if own and known and base is not None and not _copied_fields(model):
        model.from_db = _RowKeepingFromDb(_row_keeping(model, base))


def _row_keeping(model: Any, base: Callable[..., Any]) -> Callable[..., Any]:
    count = len(model._meta.concrete_fields)

    def from_db(
        cls: Any,
        db: str | None,
        field_names: Collection[str],
        values: Any,
        fetch_mode: Any = _ABSENT,
    ) -> Any:
        # A subclass calling up through super(), or a row without every field.
        if cls is not model or len(values) != count:
            keywords = {} if fetch_mode is _ABSENT else {"fetch_mode": fetch_mode}
            return _from_db(cls, db, field_names, values, **keywords)
        if fetch_mode is _ABSENT:
            instance = base(cls, db, field_names, values)
        else:
            instance = base(cls, db, field_names, values, fetch_mode=fetch_mode)
        instance.__dict__[LOADED_VALUES] = values
        return instance

    return from_db


def _starting_transaction(using: str) -> None:
    """Outside any transaction this save starts a new one: whatever a rolled-back
    transaction left in the outbox's bookkeeping must not be taken for it."""
    from django_flowdock.delivery.outbox import forget_transaction

    connection = connections[using]
    if connection.get_autocommit():
        forget_transaction(connection)


class _FlowdockOptionsMixin(_ModelBase):
    _flowdock_allowed: ClassVar[frozenset[str]]
    _flowdock_options_cache: ClassVar[Options]

    # The outbox row is written by a post_save/post_delete receiver, which Django runs
    # after the model's own write. One transaction around both means a committed change
    # always has its captured row (no crash window between two commits), and costs one
    # commit instead of two. Inside an existing transaction this adds nothing.
    def save(self, *args: Any, **kwargs: Any) -> None:
        using = kwargs.get("using") or router.db_for_write(type(self), instance=self)
        _starting_transaction(using)
        with transaction.atomic(using=using, savepoint=False):
            super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        using = kwargs.get("using") or router.db_for_write(type(self), instance=self)
        _starting_transaction(using)
        with transaction.atomic(using=using, savepoint=False):
            return super().delete(*args, **kwargs)

    @classmethod
    def flowdock_options(cls) -> Options:
        # Cached on the class itself (not inherited) so subclasses get their own.
        options = cls.__dict__.get("_flowdock_options_cache")
        if options is None:
            options = declared_options(cls, cls._flowdock_allowed)
            cls._flowdock_options_cache = options
        return options


class FlowdockThread(_FlowdockOptionsMixin):
    """Objects of this model are team-inbox threads.

    ``FlowdockMeta`` options: ``title``, ``body``, ``status``, ``status_colors``,
    ``fields``, ``external_url``, ``author``, ``scope``, ``tags``, ``verbose_name``,
    ``view_actions``.
    """

    _flowdock_allowed = THREAD_OPTIONS

    @classmethod
    def from_db(
        cls, db: str | None, field_names: Collection[str], values: Collection[Any], **kwargs: Any
    ) -> Any:
        instance = super().from_db(db, field_names, values, **kwargs)
        # What the database holds, for the next save to be compared with.
        instance.__dict__[LOADED_VALUES] = _loaded_row(cls, field_names, values)
        _load_faster(cls)
        return instance

    def refresh_from_db(
        self,
        using: str | None = None,
        fields: Iterable[str] | None = None,
        from_queryset: Any = None,
    ) -> None:
        # Values read again are what a later save's changes are described against
        # (a deferred field is loaded through here too).
        from django_flowdock.threads.capture import remember_reloaded_values

        names = None if fields is None else list(fields)
        deferred = self.get_deferred_fields()
        super().refresh_from_db(using, names, from_queryset)
        remember_reloaded_values(self, None if names is None else set(names), deferred)

    def get_flowdock_thread_id(self) -> str:
        """The ``external_thread_id``: stable and unique per model and object (a proxy
        model's objects are the concrete model's threads)."""
        concrete = self._meta.concrete_model
        assert concrete is not None
        return f"{concrete._meta.label_lower}:{self.pk}"

    def get_flowdock_actions(self) -> list[dict[str, Any]]:
        """schema.org actions (ViewAction, UpdateAction) offered on the thread: the
        ``view_actions`` links and the ``@flowdock_action`` methods (see actions.py)."""
        from django_flowdock.actions.declarations import actions_for

        return actions_for(self)

    def has_flowdock_action_permission(self, user: Any, action: Any) -> bool:
        """Whether ``user`` may run ``action`` (a FlowdockAction) on this object from
        Flowdock. Default: the model's change permission."""
        from django.contrib.auth import get_permission_codename

        opts = self._meta
        return user.has_perm(f"{opts.app_label}.{get_permission_codename('change', opts)}")


#: The mixin's own ``from_db``, for what a model's faster one leaves to it.
_from_db = FlowdockThread.__dict__["from_db"].__func__


class FlowdockComment(_FlowdockOptionsMixin):
    """Objects of this model are comments posted to their thread as discussions.

    ``FlowdockMeta`` options: ``thread`` (required: the attribute holding the thread
    object), ``body``, ``author``.
    """

    _flowdock_allowed = COMMENT_OPTIONS


def thread_models(*, proxies: bool = True) -> list[type[FlowdockThread]]:
    """The installed models whose objects are threads; ``proxies=False`` leaves out
    proxy models, whose objects are their concrete model's threads."""
    from django.apps import apps

    return [
        model
        for model in apps.get_models()
        if issubclass(model, FlowdockThread) and (proxies or not model._meta.proxy)
    ]
