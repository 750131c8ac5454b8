"""The request being served, so changes made in it are authored by its user."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar

from django.http import HttpRequest, HttpResponse

current_request: ContextVar[HttpRequest | None] = ContextVar(
    "django_flowdock_current_request", default=None
)


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
