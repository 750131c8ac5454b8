"""System checks: a misconfigured mixin or setting is reported at start-up, with the fix."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.apps import apps
from django.conf import settings as django_settings
from django.core import checks
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.db import models

from django_flowdock.conf import DEFAULTS, REMOVED, flowdock_settings
from django_flowdock.exceptions import FlowdockConfigurationError
from django_flowdock.mixins import FlowdockComment, FlowdockThread
from django_flowdock.threads.options import STATUS_COLORS, Options, has_path


def _error(msg: str, hint: str, id: int, obj: Any = None) -> checks.Error:
    return checks.Error(msg, hint=hint, obj=obj, id=f"django_flowdock.E{id:03d}")


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    for name in sorted(set(flowdock_settings.user_settings) & set(REMOVED)):
        errors.append(
            checks.Warning(
                f'FLOWDOCK["{name}"] is no longer used: {REMOVED[name]}.',
                hint=f'Remove "{name}" from FLOWDOCK.',
                id="django_flowdock.W002",
            )
        )
    unknown = sorted(set(flowdock_settings.user_settings) - set(DEFAULTS) - set(REMOVED))
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
    from django_flowdock.delivery import ALIASES, get_backend

    try:
        get_backend()
    except ImproperlyConfigured as exc:
        errors.append(
            _error(str(exc), f'Set FLOWDOCK["DELIVERY"] to one of {", ".join(ALIASES)}.', 7)
        )
    return errors


def _number(value: Any, *, minimum: float = 0.0, whole: bool = False) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return value >= minimum and (not whole or isinstance(value, int))


def _positive_int(value: Any) -> bool:
    return _number(value, minimum=1, whole=True)


def _timeout(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return len(value) == 2 and all(_number(v) and v > 0 for v in value)
    return _number(value) and value > 0


def _strings(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)


#: What each setting must hold, and how to say it.
_SHAPES: dict[str, tuple[Any, str]] = {
    "API_URL": (lambda v: isinstance(v, str), "a URL string"),
    "DELIVERY": (lambda v: isinstance(v, str), "a backend alias or dotted path"),
    "DEFAULT_AUTHOR": (lambda v: isinstance(v, dict) and bool(v.get("name")), 'a dict with "name"'),
    "SITE_URL": (lambda v: v is None or isinstance(v, str), "None or a URL string"),
    "TIMEOUT": (_timeout, "seconds > 0, or a (connect, read) pair of them"),
    "ENCRYPTION_KEYS": (lambda v: v is None or isinstance(v, (list, tuple)), "None or a list"),
    "MAX_AGE": (lambda v: _number(v) and v > 0, "seconds > 0"),
    "BACKOFF_BASE": (_number, "seconds >= 0"),
    "BACKOFF_MAX": (_number, "seconds >= 0"),
    "CLAIM_TIMEOUT": (lambda v: _number(v) and v > 0, "seconds > 0"),
    "BATCH_SIZE": (_positive_int, "a whole number >= 1"),
    "CONCURRENCY": (_positive_int, "a whole number >= 1"),
    "TASK_DRAIN_LIMIT": (_positive_int, "a whole number >= 1"),
    "DELIVER_ON_START": (lambda v: v is None or isinstance(v, bool), "None, True or False"),
    "POLL_INTERVAL": (lambda v: _number(v) and v > 0, "seconds > 0"),
    "REQUEST_YIELD": (_number, "seconds >= 0"),
    "EXIT_TIMEOUT": (_number, "seconds >= 0"),
    "PRUNE_AFTER_DAYS": (lambda v: v is None or _number(v), "None or days >= 0"),
    "OAUTH_SCOPES": (_strings, "a list of scope names"),
    "CLAIM_MAX_AGE": (_positive_int, "seconds, a whole number >= 1"),
    "ACTION_TOKEN_LEEWAY": (lambda v: _number(v) and v <= 60, "seconds from 0 to 60"),
    "TEST_DELIVERY": (lambda v: v is None or isinstance(v, str), "None or a backend name"),
    "STREAM_URL": (lambda v: v is None or isinstance(v, str), "None or a URL string"),
    "CONVERSATION_AUTHOR": (lambda v: v is None or isinstance(v, str), "None or a username"),
}


def check_setting_values(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """E031: a setting of the wrong shape; E032: a claim that can expire while its post
    is still in flight; E033: encryption keys that are not Fernet keys."""
    errors: list[checks.CheckMessage] = []
    user = flowdock_settings.user_settings
    for name, (valid, shape) in _SHAPES.items():
        if name in user and not valid(user[name]):
            errors.append(
                _error(
                    f'FLOWDOCK["{name}"] = {user[name]!r} is not {shape}.',
                    f'Set FLOWDOCK["{name}"] to {shape}, or remove it for the default '
                    f"({DEFAULTS[name]!r}).",
                    31,
                )
            )
    if errors:
        return errors
    from django_flowdock.delivery.engine import request_seconds

    if request_seconds() >= flowdock_settings.CLAIM_TIMEOUT:
        errors.append(
            _error(
                f'FLOWDOCK["CLAIM_TIMEOUT"] ({flowdock_settings.CLAIM_TIMEOUT}s) is not longer '
                f'than one request may take (FLOWDOCK["TIMEOUT"], {request_seconds()}s in '
                "all): a message could be claimed again while its post is in flight.",
                'Raise FLOWDOCK["CLAIM_TIMEOUT"] above the sum of FLOWDOCK["TIMEOUT"].',
                32,
            )
        )
    keys = flowdock_settings.ENCRYPTION_KEYS
    if keys:
        from cryptography.fernet import Fernet

        for index, key in enumerate(keys):
            try:
                Fernet(key)
            except (ValueError, TypeError):
                errors.append(
                    _error(
                        f'FLOWDOCK["ENCRYPTION_KEYS"][{index}] is not a Fernet key.',
                        "Generate one with cryptography.fernet.Fernet.generate_key(); keep "
                        "the old keys after it, newest first, so stored secrets stay readable.",
                        33,
                    )
                )
    return errors


def check_sqlite_delivery(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """W004: the default backend writes from a thread of its own; on SQLite a transaction
    that reads before it writes then fails at once ("database is locked") instead of
    waiting, unless transactions start IMMEDIATE."""
    from django_flowdock.delivery import ALIASES, backend_path

    if backend_path() != ALIASES["immediate"]:
        return []
    warnings: list[checks.CheckMessage] = []
    for alias, database in django_settings.DATABASES.items():
        options = database.get("OPTIONS") or {}
        if database.get("ENGINE", "").endswith("sqlite3") and (
            options.get("transaction_mode") != "IMMEDIATE"
        ):
            warnings.append(
                checks.Warning(
                    f'Database "{alias}" is SQLite in its default transaction mode, and the '
                    "immediate delivery backend writes from a background thread: a "
                    "transaction that reads before it writes (an admin save, a "
                    'many-to-many add) can fail with "database is locked".',
                    hint=f'Set DATABASES["{alias}"]["OPTIONS"] = {{"transaction_mode": '
                    '"IMMEDIATE"} (Django 5.1+), or set FLOWDOCK["DELIVERY"] = "worker" '
                    "and run manage.py flowdock_worker.",
                    id="django_flowdock.W004",
                )
            )
    return warnings


def check_uwsgi_threads(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """E034: uWSGI runs no thread an application starts unless threads are enabled, so
    the default backend's delivery thread would never send anything."""
    from django_flowdock.delivery import ALIASES, backend_path

    if backend_path() != ALIASES["immediate"]:
        return []
    try:
        import uwsgi  # importable only inside uWSGI
    except ImportError:
        return []
    options = getattr(uwsgi, "opt", {})
    if _uwsgi_flag(options.get("enable-threads")) or _uwsgi_flag(options.get("threads")):
        return []
    return [
        _error(
            "uWSGI runs without threads, so the immediate delivery backend's thread never "
            "runs and no message is sent.",
            "Add enable-threads = true (or threads = N) to the uWSGI options, or set "
            'FLOWDOCK["DELIVERY"] = "worker" and run manage.py flowdock_worker.',
            34,
        )
    ]


def _uwsgi_flag(value: Any) -> bool:
    """An option as uWSGI keeps it (True, bytes or str, a list when repeated) is on."""
    if isinstance(value, list):
        value = value[-1] if value else None
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "false", "no", "off")
    return bool(value)


def check_models(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    if app_configs is None:
        found = apps.get_models()
    else:
        found = [model for config in app_configs for model in config.get_models()]
    return [error for model in found for error in check_model(model)]


def register() -> None:
    """Called from ``AppConfig.ready()``: the checks run at start-up, by tag."""
    checks.register(check_settings)
    checks.register(check_setting_values)
    checks.register(check_sqlite_delivery)
    checks.register(check_uwsgi_threads)
    checks.register(check_models, checks.Tags.models)
    checks.register(check_action_routes, checks.Tags.urls)
    checks.register(check_connect_routes, checks.Tags.urls)
    checks.register(check_site_url_https, checks.Tags.security, deploy=True)
    checks.register(check_deploy_urls, checks.Tags.security, deploy=True)


def check_model(model: type[models.Model]) -> list[checks.CheckMessage]:
    """The problems in one model's FlowdockMeta."""
    errors: list[checks.CheckMessage] = []
    if issubclass(model, (FlowdockThread, FlowdockComment)):
        try:
            model.flowdock_options()
        except FlowdockConfigurationError as exc:
            return [
                _error(
                    str(exc),
                    'For example fields = ["priority", ("Owner", "owner.name")].',
                    29,
                    model,
                )
            ]
    if issubclass(model, FlowdockThread):
        errors += _check_options(model, model.flowdock_options())
        errors += _check_thread(model, model.flowdock_options())
        errors += _check_status_colors(model, model.flowdock_options())
        errors += _check_fields(model, model.flowdock_options())
    if issubclass(model, FlowdockComment):
        errors += _check_options(model, model.flowdock_options())
        errors += _check_comment(model, model.flowdock_options())
    errors += _check_actions(model)
    return errors


def _check_options(model: type[models.Model], options: Options) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
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


def _check_thread(model: type[models.Model], options: Options) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
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


def _check_comment(model: type[models.Model], options: Options) -> list[checks.CheckMessage]:
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
    target: type[models.Model] | None = model
    for name in path.split("."):
        if target is None:
            return []  # past a field that holds no object
        try:
            model_field = target._meta.get_field(name)
        except (FieldDoesNotExist, AttributeError):
            return []  # a property or method: its type can't be known statically
        if model_field.many_to_many or model_field.one_to_many:
            return [
                _error(
                    f"{options.label}.FlowdockMeta.thread = {path!r} goes through "
                    f"{name!r}, which holds many objects, not the one thread.",
                    "Point thread at a foreign key (or a chain of foreign keys) to the "
                    "thread model.",
                    30,
                    model,
                )
            ]
        target = model_field.related_model
    if not (isinstance(target, type) and issubclass(target, FlowdockThread)):
        target_label = getattr(getattr(target, "_meta", None), "label", target)
        return [
            _error(
                f"{options.label}.FlowdockMeta.thread = {path!r} points to {target_label}, "
                "which is not a FlowdockThread model.",
                f"Add FlowdockThread to {target_label}'s bases, or point thread at a model "
                "that has it.",
                4,
                model,
            )
        ]
    return []


def _last_field(model: type[models.Model], path: str) -> Any:
    """The model field ``path`` ends at, or None when it ends at an attribute."""
    model_field = None
    current: type[models.Model] | None = model
    for name in path.split("."):
        if current is None:
            return None  # past a field that holds no object
        try:
            model_field = current._meta.get_field(name)
        except (FieldDoesNotExist, AttributeError):
            return None
        current = model_field.related_model
    return model_field


def _check_status_colors(model: type[models.Model], options: Options) -> list[checks.CheckMessage]:
    """E028: colours keyed by statuses the status field's choices never hold."""
    colors = options.get("status_colors")
    status = options.get("status")
    if (
        not isinstance(colors, dict)
        or not isinstance(status, str)
        or hasattr(model, "get_flowdock_status")
        or hasattr(model, "get_flowdock_status_colors")
    ):
        return []
    status_field = _last_field(model, status)
    if status_field is None or not getattr(status_field, "choices", None):
        return []
    values = [value for value, _ in status_field.flatchoices]
    # Colours are looked up by the stored value, then by the label shown.
    known = set(map(str, values)) | {str(label) for _, label in status_field.flatchoices}
    unknown = [key for key in colors if str(key) not in known]
    if not unknown:
        return []
    return [
        _error(
            f"{options.label}.FlowdockMeta.status_colors has key(s) "
            f"{', '.join(map(repr, unknown))} that {status!r} never holds: its choices "
            f"are {', '.join(map(repr, values))}.",
            "Key status_colors by the choices' stored values; statuses without a colour "
            "are shown grey.",
            28,
            model,
        )
    ]


def _check_fields(model: type[models.Model], options: Options) -> list[checks.CheckMessage]:
    """E029: ``fields`` entries that cannot be read from the model's objects."""
    declared = options.get("fields")
    if declared is None:
        return []
    if not isinstance(declared, (list, tuple)):
        return [
            _error(
                f"{options.label}.FlowdockMeta.fields must be a list, not {declared!r}.",
                'For example fields = ["priority", ("Owner", "owner.name")].',
                29,
                model,
            )
        ]
    errors: list[checks.CheckMessage] = []
    for spec in options.fields:
        if callable(spec.path):
            continue
        if not isinstance(spec.path, str):
            problem = f"reads {spec.path!r}, which is neither an attribute name nor a callable"
        else:
            # Names the model lacks are E002's.
            many = _many_crossed(model, spec.path) if has_path(model, spec.path) else None
            if many is None:
                continue
            problem = f"reads {spec.path!r} past {many!r}, which holds many objects"
        errors.append(
            _error(
                f"{options.label}.FlowdockMeta.fields: {spec.label!r} {problem}.",
                "Name the attribute (a many-to-many or reverse relation is shown as its "
                "objects' str(), sorted), pass a callable, or define get_flowdock_fields().",
                29,
                model,
            )
        )
    return errors


def _many_crossed(model: type[models.Model], path: str) -> str | None:
    """The many-valued relation ``path`` reads an attribute of its objects through
    (``"tags.name"``), or None."""
    for name in path.split(".")[:-1]:
        try:
            model_field = model._meta.get_field(name)
        except (FieldDoesNotExist, AttributeError):
            return None  # a property or method: its type can't be known statically
        if model_field.many_to_many or model_field.one_to_many:
            return name
        related = model_field.related_model
        if related is None:
            return None
        model = related
    return None


def _check_actions(model: type[models.Model]) -> list[checks.CheckMessage]:
    """E020-E023, E026, E027: the model's @flowdock_action methods and view_actions."""
    import inspect

    from django_flowdock.actions.declarations import declared_actions

    label = getattr(getattr(model, "_meta", None), "label", model.__name__)
    actions = declared_actions(model)
    if actions and not issubclass(model, FlowdockThread):
        return [
            _error(
                f"{label} declares @flowdock_action methods but is not a FlowdockThread model.",
                f"Add FlowdockThread to {label}'s bases, or remove the decorators.",
                26,
                model,
            )
        ]
    errors: list[checks.CheckMessage] = []
    names: dict[str, str] = {}
    for key, action in actions.items():
        if action.condition is not None and not callable(action.condition):
            errors.append(
                _error(
                    f"{label}.{key}: the condition of action {action.name!r} is not callable.",
                    "Pass a function of (obj, user) returning a bool, e.g. "
                    "condition=lambda obj, user: obj.assignee_id is None.",
                    20,
                    model,
                )
            )
        if action.name in names:
            errors.append(
                _error(
                    f"{label}.{names[action.name]} and {label}.{key} are both actions named "
                    f"{action.name!r}.",
                    "Give each action its own name; Flowdock shows them as buttons side by side.",
                    21,
                    model,
                )
            )
        names.setdefault(action.name, key)
        try:
            inspect.signature(getattr(model, key)).bind(None, None)
        except TypeError:
            errors.append(
                _error(
                    f"{label}.{key}() cannot be called with the acting user.",
                    f"Define it as def {key}(self, user) or def {key}(self, user, agent=None).",
                    27,
                    model,
                )
            )
    if issubclass(model, FlowdockThread):
        errors += _check_view_actions(model, model.flowdock_options())
    return errors


def _check_view_actions(model: type[models.Model], options: Options) -> list[checks.CheckMessage]:
    declared = options.get("view_actions")
    if declared is None:
        return []
    entries = declared if isinstance(declared, (list, tuple)) else [declared]
    errors: list[checks.CheckMessage] = []
    for entry in entries:
        if not (
            isinstance(entry, (list, tuple))
            and len(entry) in (2, 3)
            and isinstance(entry[0], str)
            and (isinstance(entry[1], str) or callable(entry[1]))
        ):
            errors.append(
                _error(
                    f"{options.label}.FlowdockMeta.view_actions: {entry!r} is not a "
                    "(name, url) or (name, url, description) entry.",
                    'For example view_actions = [("Open in Helpdesk", "get_absolute_url")].',
                    22,
                    model,
                )
            )
        elif isinstance(entry[1], str) and not has_path(model, entry[1]):
            errors.append(
                _error(
                    f"{options.label}.FlowdockMeta.view_actions: {entry[0]!r} names "
                    f"{entry[1]!r}, which {options.label} has no field or attribute for.",
                    "Name a field, property or method returning the URL, or pass a callable.",
                    23,
                    model,
                )
            )
    return errors


def check_action_routes(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """E024, E025: UpdateActions need an absolute SITE_URL and the action route."""
    from django.urls import NoReverseMatch, reverse

    from django_flowdock.actions.declarations import declared_actions

    models_with_actions = [
        model._meta.label
        for model in apps.get_models()
        if issubclass(model, FlowdockThread) and declared_actions(model)
    ]
    if not models_with_actions:
        return []
    errors: list[checks.CheckMessage] = []
    names = ", ".join(models_with_actions)
    site_url = flowdock_settings.SITE_URL
    parts = urlsplit(site_url) if isinstance(site_url, str) else None
    if not parts or parts.scheme not in ("http", "https") or not parts.netloc:
        errors.append(
            _error(
                f'FLOWDOCK["SITE_URL"] = {site_url!r} is not an absolute http(s) URL, but '
                f"{names} declare(s) UpdateActions whose targets Flowdock must reach.",
                'Set FLOWDOCK["SITE_URL"] to the public address of the site, e.g. '
                '"https://helpdesk.example".',
                24,
            )
        )
    try:
        reverse("django_flowdock:action", kwargs={"signed": "x"})
    except NoReverseMatch:
        errors.append(
            _error(
                f"{names} declare(s) UpdateActions, but the URLconf has no "
                "django_flowdock:action route.",
                'Add path("flowdock/", include("django_flowdock.urls")) to your urlpatterns.',
                25,
            )
        )
    return errors


def check_connect_routes(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """E010-E012: connecting flows through OAuth (the Setup URI, the admin's "Connect a
    flow") needs the session, a usable SITE_URL and the ``integration`` scope."""
    from django.conf import settings
    from django.urls import NoReverseMatch, reverse

    try:
        reverse("django_flowdock:oauth-callback")
    except NoReverseMatch:
        return []  # flows are connected by hand only: nothing to check
    errors: list[checks.CheckMessage] = []
    middleware = getattr(settings, "MIDDLEWARE", None) or []
    if not apps.is_installed("django.contrib.sessions") or not any(
        name.endswith(".SessionMiddleware") for name in middleware
    ):
        errors.append(
            _error(
                "Connecting flows keeps the OAuth state in the session, but sessions are "
                "not enabled.",
                'Add "django.contrib.sessions" to INSTALLED_APPS and '
                '"django.contrib.sessions.middleware.SessionMiddleware" to MIDDLEWARE.',
                10,
            )
        )
    site_url = flowdock_settings.SITE_URL
    if site_url is not None:
        parts = urlsplit(site_url) if isinstance(site_url, str) else None
        if (
            not parts
            or parts.scheme not in ("http", "https")
            or not parts.netloc
            or parts.query
            or parts.fragment
        ):
            errors.append(
                _error(
                    f'FLOWDOCK["SITE_URL"] = {site_url!r} is not an absolute http(s) URL, so '
                    "the Callback, Setup and Configuration URIs built from it are broken.",
                    'Set it to the public address of the site, e.g. "https://helpdesk.example", '
                    "or to None to build them from each request.",
                    11,
                )
            )
    if "integration" not in (flowdock_settings.OAUTH_SCOPES or []):
        errors.append(
            _error(
                f'FLOWDOCK["OAUTH_SCOPES"] = {flowdock_settings.OAUTH_SCOPES!r} lacks '
                '"integration", which Flowdock requires to create sources.',
                'Use the default ["flow", "integration", "profile"], or add "integration".',
                12,
            )
        )
    return errors


def check_site_url_https(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """W003: action requests and the OAuth callback carry tokens and signed bodies,
    which only HTTPS keeps from being read (and replayed) on the way."""
    site_url = flowdock_settings.SITE_URL
    parts = urlsplit(site_url) if isinstance(site_url, str) else None
    if not parts or parts.scheme != "http" or parts.hostname in ("127.0.0.1", "localhost", "::1"):
        return []
    return [
        checks.Warning(
            f'FLOWDOCK["SITE_URL"] = {site_url!r} is not HTTPS, so FLOWDOCK-TOKENs, action '
            "bodies and OAuth codes reach the site readable by anyone on the way.",
            hint='Serve the site over HTTPS and set FLOWDOCK["SITE_URL"] to its https:// URL.',
            id="django_flowdock.W003",
        )
    ]


def check_deploy_urls(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """W101: flow tokens and OAuth secrets travel to API_URL, so it needs HTTPS.
    W102: without SITE_URL, links and OAuth URIs are built from each request's Host.
    (OAuth applications' own API URLs live in the database, which checks don't read.)"""
    warnings: list[checks.CheckMessage] = []
    url = flowdock_settings.API_URL
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts and parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        warnings.append(
            checks.Warning(
                f'FLOWDOCK["API_URL"] = {url!r} is not HTTPS, so flow tokens, OAuth client '
                "secrets and every message reach it readable by anyone on the way.",
                hint='Use "https://api.flowdock.com" (the default), or an https:// proxy.',
                id="django_flowdock.W101",
            )
        )
    if not flowdock_settings.SITE_URL:
        warnings.append(
            checks.Warning(
                'FLOWDOCK["SITE_URL"] is not set, so links in Flowdock and the OAuth '
                "Callback, Setup and Configuration URIs are built from each request's Host "
                "header, and relative links of changes made outside requests are left out.",
                hint='Set FLOWDOCK["SITE_URL"] to the public address of the site, e.g. '
                '"https://helpdesk.example".',
                id="django_flowdock.W102",
            )
        )
    return warnings
