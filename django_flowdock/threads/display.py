"""Values as people read them: every field type shown as text.

Choices by their label, foreign keys and many-to-many relations by the related
objects' ``str()`` (in a stable order), booleans as yes/no, dates and times localised
in the current time zone, numbers localised, files by name. Used for titles, bodies,
statuses and fields alike.
"""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Callable, Iterable
from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.db.models.fields.files import FieldFile
from django.utils import formats, timezone
from django.utils.translation import gettext

#: On a copy of an object rendered with captured values: many-to-many field name →
#: the related objects' pks to show instead of what the database holds now.
M2M_OVERRIDE = "_flowdock_m2m"


def text(value: Any) -> str:
    """Shown form of any value (safe strings are kept as they are)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return gettext("yes") if value else gettext("no")
    if isinstance(value, datetime.datetime):
        if timezone.is_aware(value):
            value = timezone.localtime(value)
        return formats.localize(value)
    if isinstance(value, (datetime.date, datetime.time, decimal.Decimal, float)):
        return formats.localize(value)
    if isinstance(value, FieldFile):
        return value.name or ""
    if isinstance(value, models.Manager):
        return _joined(value.all())
    if isinstance(value, (models.QuerySet, list, tuple, set, frozenset)):
        return _joined(value)
    return str(value)


def _joined(values: Iterable[Any]) -> str:
    return ", ".join(sorted(text(v) for v in values))


def read_path(obj: Any, path: str | Callable[[Any], Any], *, display: bool = True) -> Any:
    """Read ``path`` from ``obj``: a callable gets the object; a dotted name walks
    attributes and calls methods. With ``display``, choices give their label and a
    many-to-many relation shown with captured values gives those objects."""
    if callable(path):
        return path(obj)
    for name in path.split("."):
        if obj is None:
            return None
        obj = _attribute(obj, name, display)
    return obj


def _attribute(obj: Any, name: str, display: bool) -> Any:
    override = obj.__dict__.get(M2M_OVERRIDE, {}) if hasattr(obj, "__dict__") else {}
    if name in override:
        field = obj._meta.get_field(name)
        related = field.related_model._base_manager.filter(pk__in=override[name])
        return list(related)
    if display:
        shown = getattr(obj, f"get_{name}_display", None)
        if shown is not None:
            return shown()
    value = getattr(obj, name)
    if callable(value) and not isinstance(value, (models.Model, models.Manager)):
        return value()
    if display and isinstance(obj, models.Model):
        return _with_decimal_places(obj, name, value)
    return value


def _with_decimal_places(obj: models.Model, name: str, value: Any) -> Any:
    """A decimal field's value with the field's ``decimal_places``: the database gives
    14000.00, a value assigned in Python or captured in a change may be 14000 or 0."""
    if isinstance(value, bool) or not isinstance(value, (decimal.Decimal, int, float)):
        return value
    try:
        field = obj._meta.get_field(name)
    except FieldDoesNotExist:
        return value
    if not isinstance(field, models.DecimalField):
        return value
    try:
        exponent = decimal.Decimal(1).scaleb(-field.decimal_places)
        return decimal.Decimal(str(value)).quantize(exponent)
    except decimal.InvalidOperation:  # more digits than a decimal context holds
        return value


def shown(obj: Any, path: str | Callable[[Any], Any]) -> str:
    return text(read_path(obj, path))
