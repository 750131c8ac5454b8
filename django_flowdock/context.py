"""The request being served, so changes made in it are authored by its user."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.http import HttpRequest, HttpResponse

current_request: ContextVar[HttpRequest | None] = ContextVar(
    "django_flowdock_current_request", default=None
)
_acting_user: ContextVar[Any] = ContextVar("django_flowdock_acting_user", default=None)
_base_url: ContextVar[str] = ContextVar("django_flowdock_base_url", default="")
_from_flowdock: ContextVar[bool] = ContextVar("django_flowdock_from_flowdock", default=False)


@contextmanager
def acting_as(user: Any) -> Iterator[None]:
    """Changes made inside are authored by ``user`` (e.g. the user running a Flowdock
    action), whatever the request's own user is."""
    token = _acting_user.set(user)
    try:
        yield
    finally:
        _acting_user.reset(token)


@contextmanager
def delivering(user: Any, base_url: str) -> Iterator[None]:
    """While a captured change is rendered: its author is the acting user, and
    relative URLs are made absolute with the site it was made on."""
    user_token, url_token = _acting_user.set(user), _base_url.set(base_url)
    try:
        yield
    finally:
        _acting_user.reset(user_token)
        _base_url.reset(url_token)


@contextmanager
def receiving_from_flowdock() -> Iterator[None]:
    """Comments saved inside came from Flowdock (a chat reply, see
    ``django_flowdock.conversations``): they are already in their flow, so they are not
    captured to be posted there again."""
    token = _from_flowdock.set(True)
    try:
        yield
    finally:
        _from_flowdock.reset(token)


def is_from_flowdock() -> bool:
    return _from_flowdock.get()


def current_base_url() -> str:
    """The request's ``scheme://host``, or the captured one while delivering."""
    request = current_request.get()
    if request is not None:
        return request.build_absolute_uri("/").rstrip("/")
    return _base_url.get()


def absolute_url(url: str | None, request: Any = None) -> str | None:
    """The one way this app makes URLs absolute: ``url`` as is when it already is, else
    under ``FLOWDOCK["SITE_URL"]`` (a proxy may hide the scheme and host), else under
    the host of ``request`` (Django's or DRF's), of the request being served, or of the
    one the change being delivered was made in. ``None`` when there is none of these."""
    if not url or "://" in url:
        return url or None
    from django_flowdock.conf import flowdock_settings

    if flowdock_settings.SITE_URL:
        base = flowdock_settings.SITE_URL
    elif request is not None:
        base = request.build_absolute_uri("/")
    else:
        base = current_base_url()
    return base.rstrip("/") + "/" + url.lstrip("/") if base else None


def current_user() -> Any:
    """The user changes are attributed to: the acting user, else the signed-in user of
    the current request, else None."""
    user = _acting_user.get()
    if user is None:
        user = getattr(current_request.get(), "user", None)
    return user if user is not None and user.is_authenticated else None


class FlowdockAuthorMiddleware:
    """Makes the signed-in user the author of messages caused by this request.

    Put it after ``AuthenticationMiddleware``. Works for sync and async views since a
    context variable follows the request across ``sync_to_async``.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = current_request.set(request)
        try:
            return self.get_response(request)
        finally:
            current_request.reset(token)
