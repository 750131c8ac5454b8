"""Thread actions: UpdateActions declared as model methods, ViewActions as links.

An UpdateAction is a method of a ``FlowdockThread`` model decorated with
``@flowdock_action("Assign to me")``. It appears as a button on the thread; when a chat
user presses it, Flowdock posts to the action's target URL, the action view verifies
the request and calls the method as the Django user linked to that Flowdock user.

The target URL carries the (model, primary key, method name) triple signed with
``SECRET_KEY`` (``django.core.signing``): it cannot be edited to reach another object
or action, and it never expires, like the thread it belongs to.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache, lru_cache
from typing import Any, TypeVar

from django.apps import apps
from django.conf import settings
from django.core import signing
from django.db import models
from django.urls import reverse

from django_flowdock.context import absolute_url, acting_as, current_user
from django_flowdock.threads.display import read_path, text

_SPEC = "_flowdock_action"
_SALT = "django_flowdock.actions"

Method = TypeVar("Method", bound=Callable[..., Any])
Condition = Callable[[Any, Any], bool]
_CONTEXT: Any = object()


@dataclass(frozen=True)
class FlowdockAction:
    """One UpdateAction of a model. ``key`` is the method's name, which the signed URL
    names, so renaming the button (``name``) keeps buttons on old threads working."""

    key: str
    name: str
    description: str | None = None
    condition: Condition | None = None
    save: bool = True
    takes_agent: bool = False

    def is_available(self, instance: Any, user: Any) -> bool:
        """Whether the action is offered on ``instance`` in the context of ``user``."""
        return self.condition is None or bool(self.condition(instance, user))

    def run(self, instance: Any, user: Any, agent: dict[str, Any] | None = None) -> None:
        """Call the method as ``user``, then save, so the change is authored by ``user``."""
        method = getattr(instance, self.key)
        with acting_as(user):
            if self.takes_agent:
                method(user, agent=agent)
            else:
                method(user)
            if self.save:
                instance.save()

    def as_json(self, url: str) -> dict[str, Any]:
        """The schema.org UpdateAction posting to ``url`` (see ``action_url()``)."""
        action: dict[str, Any] = {"@type": "UpdateAction", "name": self.name}
        if self.description:
            action["description"] = self.description
        action["target"] = {"@type": "EntryPoint", "urlTemplate": url, "httpMethod": "POST"}
        return action


def flowdock_action(
    name: str,
    *,
    condition: Condition | None = None,
    description: str | None = None,
    save: bool = True,
) -> Callable[[Method], Method]:
    """Offer the decorated model method as an UpdateAction button named ``name``.

    The method is called as ``method(user)``, or ``method(user, agent=...)`` when it
    accepts ``agent`` (the Flowdock ``Person`` who pressed the button: ``name``,
    ``image``). It changes the object; the object is then saved (``save=False`` when
    the method saves or deletes by itself).

    ``condition(obj, user)`` decides whether the button is offered. ``user`` is the
    user the change is attributed to while the thread is rendered (the user running an
    action, or the signed-in user of the request, else None); every chat user sees the
    same thread, so base the condition mainly on the object. It is checked again, with
    the acting user, when the action runs.
    """

    def decorator(method: Method) -> Method:
        parameters = inspect.signature(method).parameters
        takes_agent = "agent" in parameters or any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
        )
        spec = FlowdockAction(
            key=method.__name__,
            name=str(name),
            description=str(description) if description else None,
            condition=condition,
            save=save,
            takes_agent=takes_agent,
        )
        setattr(method, _SPEC, spec)
        return method

    return decorator


@cache
def declared_actions(model: type) -> dict[str, FlowdockAction]:
    """The model's UpdateActions by method name, in declaration order; a subclass that
    overrides a method without the decorator withdraws that action."""
    actions: dict[str, FlowdockAction] = {}
    for klass in reversed(model.__mro__):
        for attr, value in vars(klass).items():
            spec = getattr(value, _SPEC, None)
            if isinstance(spec, FlowdockAction):
                actions[attr] = replace(spec, key=attr)
            elif attr in actions:
                del actions[attr]
    return actions


def get_action(model: type, name: str) -> FlowdockAction | None:
    """The action declared by method ``name`` or with button name ``name``."""
    actions = declared_actions(model)
    return actions.get(name) or next((a for a in actions.values() if a.name == name), None)


def view_actions(instance: Any) -> list[dict[str, Any]]:
    """ViewActions from ``get_flowdock_view_actions()`` or ``FlowdockMeta.view_actions``:
    ``(name, url)`` or ``(name, url, description)`` entries. In the option, ``url`` names
    an attribute or method (``"get_absolute_url"``) or is a callable taking the object;
    relative URLs are made absolute with ``FLOWDOCK["SITE_URL"]``. An empty URL hides
    the link."""
    method = getattr(instance, "get_flowdock_view_actions", None)
    if method is not None:
        entries = [(entry[0], entry[1], *entry[2:3]) for entry in method()]
    else:
        declared = instance.flowdock_options().get("view_actions") or ()
        entries = [(e[0], read_path(instance, e[1]), *e[2:3]) for e in declared]
    links = []
    for name, url, *description in entries:
        url = absolute_url(text(url))
        if not url:
            continue
        link: dict[str, Any] = {"@type": "ViewAction", "name": text(name), "url": url}
        if description and description[0]:
            link["description"] = text(description[0])
        links.append(link)
    return links


def actions_for(instance: Any, user: Any = _CONTEXT) -> list[dict[str, Any]]:
    """The thread's ``actions``: its ViewActions, then the UpdateActions whose condition
    holds for ``user`` (default: ``context.current_user()``, possibly None)."""
    user = current_user() if user is _CONTEXT else user
    updates = []
    model: type = instance.__class__
    for action in declared_actions(model).values():
        if instance.pk is not None and action.is_available(instance, user):
            url = action_url(instance, action.key)
            if url:
                updates.append(action.as_json(url))
    return view_actions(instance) + updates


def sign_target(instance: models.Model, key: str) -> str:
    return _signed(settings.SECRET_KEY, instance._meta.label_lower, str(instance.pk), key)


@lru_cache(maxsize=4096)
def _signed(secret: str, label: str, pk: str, key: str) -> str:
    # A target's signature never changes: each thread's are computed once, not for each
    # message rendered (twice per update).
    return signing.Signer(key=secret, salt=_SALT).sign_object([label, pk, key], compress=True)


def unsign_target(signed: str) -> tuple[type[models.Model], str, str]:
    """(model, pk, action key) from a signed target. Raises ``signing.BadSignature``
    for an altered value and ``LookupError`` for a model that no longer exists."""
    label, pk, key = signing.Signer(salt=_SALT).unsign_object(signed)
    return apps.get_model(label), pk, key


def action_url(instance: models.Model, key: str) -> str | None:
    """Absolute target URL, or None without SITE_URL or a request to build it from
    (check django_flowdock.E024 reports that at start-up)."""
    path = reverse("django_flowdock:action", kwargs={"signed": sign_target(instance, key)})
    return absolute_url(path)
