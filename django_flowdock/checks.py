"""System checks: a misconfigured mixin or setting is reported at start-up, with the fix."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.apps import apps
from django.core import checks
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured

from .conf import DEFAULTS, flowdock_settings
from .mixins import FlowdockComment, FlowdockThread
from .options import STATUS_COLORS, Options, has_path


def _error(msg: str, hint: str, id: int, obj: Any = None) -> checks.Error:
    return checks.Error(msg, hint=hint, obj=obj, id=f"django_flowdock.E{id:03d}")


@checks.register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    errors = []
    unknown = sorted(set(flowdock_settings.user_settings) - set(DEFAULTS))
    if unknown:
        errors.append(
            _error(
                f"Unknown FLOWDOCK setting(s): {', '.join(unknown)}.",
                f"Remove them or fix the spelling; known settings: {', '.join(sorted(DEFAULTS))}.",
                5,
            )
        )
    url = flowdock_settings.API_URL
    parts = urlsplit(url) if isinstance(url, str) else None
    if not parts or parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        errors.append(
            _error(
                f'FLOWDOCK["API_URL"] = {url!r} is not an http(s) base URL.',
                'Use e.g. "https://api.flowdock.com", or the sandbox\'s "http://127.0.0.1:8025".',
                6,
            )
        )
    from .delivery import ALIASES, get_backend

    try:
        get_backend()
    except ImproperlyConfigured as exc:
        errors.append(
            _error(str(exc), f'Set FLOWDOCK["DELIVERY"] to one of {", ".join(ALIASES)}.', 7)
        )
    return errors


@checks.register(checks.Tags.models)
def check_models(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    return [error for model in apps.get_models() for error in check_model(model)]


def check_model(model: type) -> list[checks.CheckMessage]:
    """The problems in one model's FlowdockMeta."""
    errors: list[checks.CheckMessage] = []
    if issubclass(model, FlowdockThread):
        errors += _check_options(model, model.flowdock_options())
        errors += _check_thread(model, model.flowdock_options())
    if issubclass(model, FlowdockComment):
        errors += _check_options(model, model.flowdock_options())
        errors += _check_comment(model, model.flowdock_options())
    return errors


def _check_options(model: type, options: Options) -> list[checks.CheckMessage]:
    errors = []
    unknown = options.unknown_options()
    if unknown:
        errors.append(
            _error(
                f"{options.label}.FlowdockMeta has unknown option(s): {', '.join(unknown)}.",
                f"Allowed options: {', '.join(sorted(options.allowed))}.",
                1,
                model,
            )
        )
    for option, path in options.missing_attributes():
        errors.append(
            _error(
                f"{options.label}.FlowdockMeta.{option} names {path!r}, which "
                f"{options.label} has no field or attribute for.",
                f"Name a field, property or method of {options.label}, or define "
                f"get_flowdock_{option}().",
                2,
                model,
            )
        )
    return errors


def _check_thread(model: type, options: Options) -> list[checks.CheckMessage]:
    errors = []
    colors = options.get("status_colors") or {}
    if not isinstance(colors, dict):
        colors = {}
        errors.append(
            _error(
                f"{options.label}.FlowdockMeta.status_colors must be a dict of status → colour.",
                'For example {"open": "green", "solved": "grey"}.',
                3,
                model,
            )
        )
    for status, color in colors.items():
        if color not in STATUS_COLORS:
            errors.append(
                _error(
                    f"{options.label}.FlowdockMeta.status_colors maps {status!r} to "
                    f"{color!r}, which Flowdock does not show.",
                    f"Use one of: {', '.join(sorted(STATUS_COLORS))}.",
                    3,
                    model,
                )
            )
    if "title" not in options.declared and not hasattr(model, "get_flowdock_title"):
        errors.append(
            checks.Warning(
                f"{options.label}.FlowdockMeta has no title; threads will be titled str(obj).",
                hint='Set title = "<field name>" in FlowdockMeta.',
                obj=model,
                id="django_flowdock.W001",
            )
        )
    return errors


def _check_comment(model: type, options: Options) -> list[checks.CheckMessage]:
    path = options.get("thread")
    if not isinstance(path, str) or not has_path(model, path):
        return [
            _error(
                f"{options.label}.FlowdockMeta.thread must name the attribute holding the "
                "thread object.",
                'Set thread = "<foreign key to your FlowdockThread model>", e.g. "ticket".',
                4,
                model,
            )
        ]
    target = model
    for name in path.split("."):
        try:
            target = target._meta.get_field(name).related_model
        except (FieldDoesNotExist, AttributeError):
            return []  # a property or method: its type can't be known statically
    if not (isinstance(target, type) and issubclass(target, FlowdockThread)):
        name = getattr(getattr(target, "_meta", None), "label", target)
        return [
            _error(
                f"{options.label}.FlowdockMeta.thread = {path!r} points to {name}, "
                "which is not a FlowdockThread model.",
                f"Add FlowdockThread to {name}'s bases, or point thread at a model that has it.",
                4,
                model,
            )
        ]
    return []
