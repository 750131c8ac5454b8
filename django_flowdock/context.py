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


@contextmanager
def acting_as(user: Any) -> Iterator[None]:
    """Changes made inside are authored by ``user`` (e.g. the user running a Flowdock
    action), whatever the request's own user is."""
    token = _acting_user.set(user)
    try:
        yield
    finally:
        _acting_user.reset(token)


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
