"""The mixins a project puts on its models; importable without the app installed.

Every ``FlowdockMeta`` option can be replaced by a ``get_flowdock_<option>()`` method
for computed values, the way ``get_absolute_url`` customises the admin.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from django.db import router, transaction

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
    if isinstance(loaded, tuple):  # the row as loaded: made a dict the first time it is read
        loaded = instance.__dict__[LOADED_VALUES] = dict(zip(*loaded, strict=True))
    return loaded


def _starting_transaction(using: str) -> None:
    """Outside any transaction this save starts a new one: whatever a rolled-back
    transaction left in the outbox's bookkeeping must not be taken for it."""
    from django_flowdock.delivery.outbox import forget_transaction

    if transaction.get_autocommit(using=using):
        forget_transaction(using)


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
        # What the database holds, for the next save to be compared with. Reading a list
        # of objects costs a reference to each row; only a value that can change in place
        # (a JSON dict or list) is copied now, since the object holds the same one.
        copied = cls._flowdock_copied_fields()
        if copied:
            loaded = dict(zip(field_names, values, strict=True))
            for name in copied.intersection(loaded):
                if isinstance(loaded[name], (dict, list)):
                    loaded[name] = copy.deepcopy(loaded[name])
            instance.__dict__[LOADED_VALUES] = loaded
        else:
            instance.__dict__[LOADED_VALUES] = (field_names, values)
        return instance

    @classmethod
    def _flowdock_copied_fields(cls) -> frozenset[str]:
        copied = cls.__dict__.get("_flowdock_copied")
        if copied is None:
            copied = frozenset(
                f.attname
                for f in cls._meta.concrete_fields
                if f.get_internal_type() not in _IMMUTABLE_TYPES
            )
            cls._flowdock_copied = copied  # type: ignore[attr-defined]
        return copied

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
