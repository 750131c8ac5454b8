"""Objects → thread state → activity and discussion messages, as the API expects them.

Runs at delivery, from the object as it is then. User text is escaped here; a
``get_flowdock_*`` method may return ``mark_safe()`` HTML to take responsibility for
its own markup. The engine then repairs and validates each message (``schema.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import models
from django.template.defaultfilters import linebreaksbr
from django.template.loader import select_template
from django.urls import NoReverseMatch, reverse
from django.utils.html import conditional_escape
from django.utils.safestring import SafeData
from django.utils.text import Truncator, capfirst

from django_flowdock.conf import flowdock_settings
from django_flowdock.context import absolute_url, current_user
from django_flowdock.threads.display import read_path, shown, text
from django_flowdock.threads.options import DEFAULT_URL_METHOD, Options, option
from django_flowdock.threads.schema import BODY_LIMIT, TITLE_LIMIT

LABEL_LIMIT = 100
VALUE_LIMIT = 1000
# Rendered bodies are fitted a little under the API's cap, leaving room for markup.
BODY_FIT = BODY_LIMIT - 96


@dataclass(frozen=True)
class FieldChange:
    """One shown difference between two states of a thread."""

    label: str
    old: str
    new: str
    #: Long text (the body) is reported as changed without quoting both versions.
    summary_only: bool = False

    def as_list(self) -> list[Any]:
        return [self.label, self.old, self.new, self.summary_only]


@dataclass
class ThreadState:
    """The item's current state with values as shown (before escaping)."""

    title: str
    body: str
    status: str | None
    status_color: str
    external_url: str | None
    fields: list[tuple[str, str]] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    body_label: str = "Body"

    def as_json(self) -> dict[str, Any]:
        thread: dict[str, Any] = {"title": inline_html(self.title, TITLE_LIMIT)}
        if self.body:
            thread["body"] = block_html(self.body, BODY_FIT)
        if self.external_url:
            thread["external_url"] = self.external_url
        if self.status is not None:
            thread["status"] = {
                "value": cut(self.status, LABEL_LIMIT),
                "color": self.status_color,
            }
        # An empty value would show as an empty row: the field is left out instead.
        fields = [(label, value) for label, value in self.fields if value.strip()]
        if fields:
            thread["fields"] = [
                {"label": inline_html(label, LABEL_LIMIT), "value": inline_html(value, VALUE_LIMIT)}
                for label, value in fields
            ]
        if self.actions:
            thread["actions"] = self.actions
        return thread

    def deleted(self) -> ThreadState:
        """The state of an item that is gone: its last title, body and fields, without
        the status, link and actions that described or reached the live item."""
        return replace(self, status=None, status_color="grey", external_url=None, actions=[])

    def changes_since(self, old: ThreadState) -> list[FieldChange]:
        changes = []
        if old.title != self.title:
            changes.append(FieldChange("Title", old.title, self.title))
        if old.status != self.status:
            changes.append(FieldChange("Status", old.status or "", self.status or ""))
        old_fields = dict(old.fields)
        for label, value in self.fields:
            if old_fields.get(label, value) != value:
                changes.append(FieldChange(label, old_fields[label], value))
        if old.body != self.body:
            changes.append(FieldChange(self.body_label, old.body, self.body, summary_only=True))
        return changes


def cut(value: str, limit: int, *, html: bool = False) -> str:
    # Truncator is slow; most values are well under their limit.
    return value if len(value) <= limit else Truncator(value).chars(limit, html=html)


def _fitted(value: str, limit: int, render: Callable[[str], str]) -> str:
    """``render`` of ``value`` cut so the *result* fits ``limit``: escaping, line
    breaks and markup make HTML longer than the text it shows."""
    html = isinstance(value, SafeData)
    length = limit
    result = render(cut(value, length, html=html))
    while len(result) > limit and length > 1:
        # Cutting the excess surely fits (each character cut shortens the result by at
        # least one); cutting in proportion usually fits and keeps more text.
        surely = length - (len(result) - limit)
        length = max(1, min(length - 1, max(surely, length * limit // len(result))))
        result = render(cut(value, length, html=html))
    return result


def inline_html(value: str, limit: int) -> str:
    """For titles and field values, where the API allows only ``<a>`` tags."""
    if isinstance(value, SafeData):
        return _fitted(value, limit, str)
    return _fitted(value, limit, conditional_escape)


def block_html(value: str, limit: int) -> str:
    """For bodies: HTML is allowed, so plain text keeps its line breaks."""
    if isinstance(value, SafeData):
        return _fitted(value, limit, str)
    return _fitted(value, limit, lambda part: linebreaksbr(part, autoescape=True))


def thread_state(instance: Any, *, actions: bool = True) -> ThreadState:
    """The item's state as shown. ``actions=False`` skips building (and signing) the
    action URLs, for states that are only compared, never sent."""
    options: Options = instance.flowdock_options()
    status = _status(instance, options)
    fields_method = getattr(instance, "get_flowdock_fields", None)
    if fields_method is None:
        fields = [(spec.label, shown(instance, spec.path)) for spec in options.fields]
    else:
        fields = [(text(label), text(value)) for label, value in fields_method()]
    body_spec = options.get("body")
    return ThreadState(
        title=text(option(instance, "title", default=str(instance))),
        body=text(option(instance, "body")),
        status=status[0],
        status_color=status[1],
        external_url=absolute_url(_external_url(instance, options)),
        fields=fields,
        actions=instance.get_flowdock_actions() if actions else [],
        body_label=options.label_for(body_spec) if isinstance(body_spec, str) else "Body",
    )


def _external_url(instance: Any, options: Options) -> str | None:
    spec = options.get("external_url", DEFAULT_URL_METHOD)
    if spec == DEFAULT_URL_METHOD and not hasattr(instance, DEFAULT_URL_METHOD):
        return admin_url(instance)
    return text(option(instance, "external_url")) or None


def admin_url(instance: Any) -> str | None:
    """The object's admin change page, for models without ``get_absolute_url``."""
    opts = instance._meta
    try:
        return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[instance.pk])
    except NoReverseMatch:
        return None


def _status(instance: Any, options: Options) -> tuple[str | None, str]:
    method = getattr(instance, "get_flowdock_status", None)
    if method is not None:
        value = method()
        if isinstance(value, dict):
            shown = text(value.get("value"))
            # No status (None, "") is left out: the API refuses a blank one.
            return (shown, value.get("color", "grey")) if shown else (None, "grey")
        raw = value
    else:
        spec = options.get("status")
        if spec is None:
            return None, "grey"
        # Colours are keyed by the stored value; choices are shown by their label.
        raw = read_path(instance, spec, display=False)
        value = read_path(instance, spec)
    if not text(value):
        return None, "grey"
    colors = option(instance, "status_colors") or {}
    return text(value), colors.get(raw, colors.get(text(value), "grey"))


def author(instance: Any, options: Options) -> dict[str, str]:
    """The acting or signed-in user (``context.current_user()``), else the model's
    ``author`` option, else DEFAULT_AUTHOR."""
    user = current_user()
    if user is not None:
        return _author_from(user)
    value = option(instance, "author")
    if value:
        return _author_from(value)
    return _author_from(dict(flowdock_settings.DEFAULT_AUTHOR))


def _author_from(value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        return {k: str(v) for k, v in value.items() if v}
    if isinstance(value, AbstractBaseUser):
        name = getattr(value, "get_full_name", lambda: "")() or value.get_username()
        result = {"name": text(name)}
        email = getattr(value, "email", "")
        if email:
            result["email"] = email
        return result
    return {"name": text(value)}


def render(name: str, instance: models.Model, context: dict[str, Any]) -> str:
    """Render ``django_flowdock/<name>``, preferring a per-model override at
    ``django_flowdock/<app_label>/<model_name>/<name>``."""
    opts = instance._meta
    template = select_template(
        [f"django_flowdock/{opts.app_label}/{opts.model_name}/{name}", f"django_flowdock/{name}"]
    )
    return template.render(context).strip()


def activity_message(
    instance: Any,
    action: str,
    *,
    state: ThreadState | None = None,
    changes: list[FieldChange] | tuple[FieldChange, ...] = (),
) -> dict[str, Any]:
    """An ``activity`` for ``action`` in created/updated/deleted. A deletion's thread
    shows the item as gone (:meth:`ThreadState.deleted`): Flowdock shows a thread as its
    latest message describes it."""
    options: Options = instance.flowdock_options()
    deleted = action == "deleted"
    state = state or thread_state(instance, actions=not deleted)
    if deleted:
        state = state.deleted()
    context = {
        "action": action,
        "object": instance,
        "verbose_name": option(instance, "verbose_name") or instance._meta.verbose_name,
        "changes": changes,
        "state": state,
    }
    message = {
        "event": "activity",
        "author": author(instance, options),
        "title": render("activity_title.html", instance, context),
        "external_thread_id": instance.get_flowdock_thread_id(),
        "thread": state.as_json(),
    }
    body = render("activity_body.html", instance, context)
    if len(body) > BODY_FIT:
        # Quoting long old and new values would exceed the API's cap: name them instead.
        context["changes"] = [replace(change, summary_only=True) for change in changes]
        body = render("activity_body.html", instance, context)
    if body:
        message["body"] = body
    tags = option(instance, "tags")
    if tags:
        message["tags"] = [text(tag) for tag in (tags if _many(tags) else [tags])]
    return message


def _many(value: Any) -> bool:
    return isinstance(value, (list, tuple, set, frozenset, models.QuerySet, models.Manager))


def discussion_message(comment: Any, thread: Any) -> dict[str, Any]:
    """A ``discussion`` carrying the comment and the thread's latest state."""
    options: Options = comment.flowdock_options()
    body = text(option(comment, "body", default=str(comment)))
    context = {"comment": comment, "object": thread, "body": body}
    return {
        "event": "discussion",
        "author": author(comment, options),
        "title": render("discussion_title.html", comment, context),
        "body": block_html(body, BODY_FIT),
        "external_thread_id": thread.get_flowdock_thread_id(),
        "thread": thread_state(thread).as_json(),
    }


def default_title(instance: Any) -> str:
    """What an empty title becomes: "Ticket #42"."""
    name = option(instance, "verbose_name") or instance._meta.verbose_name
    return f"{capfirst(text(name))} #{instance.pk}"
