"""Reading ``class FlowdockMeta`` declarations into resolved per-model options."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.utils.text import capfirst

from django_flowdock.exceptions import FlowdockConfigurationError

STATUS_COLORS = frozenset(
    {"red", "green", "yellow", "cyan", "orange", "grey", "black", "lime", "purple", "blue"}
)

THREAD_OPTIONS = frozenset(
    {
        "title",
        "body",
        "status",
        "status_colors",
        "fields",
        "external_url",
        "author",
        "scope",
        "tags",
        "verbose_name",
        "view_actions",
    }
)
COMMENT_OPTIONS = frozenset({"thread", "body", "author"})

#: ``external_url`` defaults to this method, falling back to the admin change page
#: for models that don't define it.
DEFAULT_URL_METHOD = "get_absolute_url"

#: Options whose value names an attribute (or a callable) to read from the object.
ATTRIBUTE_OPTIONS = ("title", "body", "status", "external_url", "author", "scope", "tags", "thread")


@dataclass(frozen=True)
class FieldSpec:
    label: str
    path: str


@dataclass
class Options:
    """The FlowdockMeta of one model, with declared values kept as written."""

    model: type[models.Model]
    declared: dict[str, Any]
    allowed: frozenset[str]
    fields: list[FieldSpec] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.fields = [self._field_spec(item) for item in self.declared.get("fields", ())]

    @property
    def label(self) -> str:
        return self.model._meta.label

    def get(self, name: str, default: Any = None) -> Any:
        return self.declared.get(name, default)

    def unknown_options(self) -> list[str]:
        return sorted(set(self.declared) - self.allowed)

    def label_for(self, path: str) -> str:
        first = path.split(".", 1)[0]
        try:
            model_field = self.model._meta.get_field(first)
        except FieldDoesNotExist:
            return capfirst(first.replace("_", " "))
        if isinstance(model_field, models.Field):
            return capfirst(str(model_field.verbose_name))
        return capfirst(first.replace("_", " "))

    def _field_spec(self, item: Any) -> FieldSpec:
        if isinstance(item, str):
            return FieldSpec(self.label_for(item), item)
        if isinstance(item, (tuple, list)) and len(item) == 2:
            return FieldSpec(str(item[0]), item[1])
        raise FlowdockConfigurationError(
            f"{self.label}.FlowdockMeta.fields: {item!r} is neither an attribute name "
            'nor a ("Label", "attribute") pair.'
        )

    def missing_attributes(self) -> list[tuple[str, str]]:
        """(option, path) pairs naming attributes the model does not have."""
        missing = []
        specs = [(name, self.declared[name]) for name in ATTRIBUTE_OPTIONS if name in self.declared]
        specs += [("fields", spec.path) for spec in self.fields]
        for option, path in specs:
            if option == "external_url" and path == DEFAULT_URL_METHOD:
                continue
            if isinstance(path, str) and not has_path(self.model, path):
                missing.append((option, path))
        return missing


def declared_options(model: type, allowed: frozenset[str]) -> Options:
    meta = getattr(model, "FlowdockMeta", None)
    declared = {k: v for k, v in vars(meta).items() if not k.startswith("_")} if meta else {}
    return Options(model, declared, allowed)


def has_path(model: type[models.Model], path: str) -> bool:
    """Whether ``path`` (``"project.name"``) can be read from instances of ``model``."""
    first, _, rest = path.partition(".")
    try:
        model_field = model._meta.get_field(first)
    except FieldDoesNotExist:
        return hasattr(model, first)
    if rest and model_field.is_relation and model_field.related_model:
        return has_path(model_field.related_model, rest)
    return True


def option(instance: Any, name: str, default: Any = None) -> Any:
    """The one resolver for every option: ``get_flowdock_<name>()`` when the model
    defines it, else the declared value (read from the object for options that name an
    attribute), else ``default``."""
    method = getattr(instance, f"get_flowdock_{name}", None)
    if method is not None:
        return method()
    spec = instance.flowdock_options().get(name)
    if spec is None:
        return default
    if name in ATTRIBUTE_OPTIONS:
        from django_flowdock.threads.display import read_path

        return read_path(instance, spec)
    return spec
