"""Delivery: when and where the outbox is drained. One drain function serves all
backends; a backend only decides when to call it, and with which transport."""

from __future__ import annotations

from django.utils.module_loading import import_string

from django_flowdock.conf import flowdock_settings
from django_flowdock.delivery.base import BaseBackend
from django_flowdock.exceptions import FlowdockConfigurationError

ALIASES = {
    "immediate": "django_flowdock.delivery.immediate.ImmediateBackend",
    "worker": "django_flowdock.delivery.worker.WorkerBackend",
    "locmem": "django_flowdock.delivery.locmem.LocmemBackend",
    "celery": "django_flowdock.delivery.celery.CeleryBackend",
    "tasks": "django_flowdock.delivery.tasks.TasksBackend",
}

_cache: dict[str, BaseBackend] = {}


def backend_path(name: str | None = None) -> str:
    name = name or flowdock_settings.DELIVERY
    return ALIASES.get(name, name)


def loaded_backends() -> list[BaseBackend]:
    """The backends this process has used so far."""
    return list(_cache.values())


def get_backend(name: str | None = None) -> BaseBackend:
    """The backend named by ``FLOWDOCK["DELIVERY"]`` (an alias or a dotted path)."""
    path = backend_path(name)
    backend = _cache.get(path)
    if backend is None:
        try:
            backend_class = import_string(path)
        except ImportError as exc:
            raise FlowdockConfigurationError(
                f'FLOWDOCK["DELIVERY"] = {path!r} cannot be imported ({exc}). Use one of '
                f"{', '.join(map(repr, ALIASES))} or the dotted path of a BaseBackend subclass."
            ) from exc
        backend = _cache[path] = backend_class()
    return backend
