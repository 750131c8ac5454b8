"""Errors in the shapes Flowdock answers with."""

from collections.abc import Iterable
from typing import Any

from rest_framework import exceptions, status
from rest_framework.response import Response


class SourceGone(exceptions.APIException):
    """The flow token belongs to a source that was removed in Flowdock."""

    status_code = status.HTTP_410_GONE
    default_detail = "The source of this flow token was removed."
    default_code = "gone"


class InsufficientScope(exceptions.PermissionDenied):
    default_detail = "The access token lacks a scope this endpoint requires."
    default_code = "insufficient_scope"


def flatten_errors(errors: Any, prefix: str = "") -> dict[str, list[str]]:
    """Turn DRF's nested error structure into Flowdock's ``{"a.b": ["..."]}``."""
    items: Iterable[tuple[Any, Any]]
    if isinstance(errors, dict):
        items = errors.items()
    elif isinstance(errors, list) and any(isinstance(item, dict | list) for item in errors):
        items = enumerate(errors)
    else:
        messages = errors if isinstance(errors, list) else [errors]
        return {prefix or "base": [str(message) for message in messages]}
    flat: dict[str, list[str]] = {}
    for key, value in items:
        if value in ({}, []):
            continue
        name = "base" if key == "non_field_errors" else str(key)
        flat.update(flatten_errors(value, f"{prefix}.{name}" if prefix else name))
    return flat


def flowdock_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    # Imported here: rest_framework.views imports the authentication classes, which
    # import this module.
    from rest_framework.views import exception_handler

    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = {"message": "Validation error", "errors": flatten_errors(exc.detail)}
    else:
        detail = response.data.get("detail", "") if isinstance(response.data, dict) else ""
        response.data = {"message": str(detail)}
    return response
