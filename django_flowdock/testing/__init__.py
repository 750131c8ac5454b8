"""Helpers for testing a project's own integration without posting anywhere.

``FLOWDOCK["DELIVERY"] = "locmem"`` collects every message in
``django_flowdock.outbox`` (the exact JSON that would be posted). Messages are handed
over when the transaction commits, as in production: in a ``TestCase`` wrap the code
in ``self.captureOnCommitCallbacks(execute=True)``; pytest users can use the
``flowdock_outbox`` fixture with ``transactional_db`` or
``django_capture_on_commit_callbacks``.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from typing import Any, NamedTuple

import jwt
from django.conf import settings
from django.test import override_settings

import django_flowdock


def locmem_settings() -> override_settings:
    """``override_settings`` switching delivery to locmem, keeping other FLOWDOCK keys."""
    return override_settings(
        FLOWDOCK={**(getattr(settings, "FLOWDOCK", None) or {}), "DELIVERY": "locmem"}
    )


def wait_for_delivery(timeout: float = 10.0) -> None:
    """Wait until the default (``immediate``) backend's background thread has handled
    everything committed so far; a no-op for the other backends. Call it before
    asserting on what reached Flowdock (or the sandbox)."""
    from django_flowdock.delivery import get_backend
    from django_flowdock.delivery.immediate import ImmediateBackend

    backend = get_backend()
    if isinstance(backend, ImmediateBackend) and not backend.wait_idle(timeout):
        raise AssertionError(f"Delivery was still busy after {timeout} seconds.")


class FlowdockTestMixin:
    """For ``django.test.TestCase`` subclasses: locmem delivery, outbox emptied per test."""

    def setUp(self) -> None:
        super().setUp()  # type: ignore[misc]
        override = locmem_settings()
        override.enable()
        self.addCleanup(override.disable)  # type: ignore[attr-defined]
        django_flowdock.outbox.clear()
        self.addCleanup(django_flowdock.outbox.clear)  # type: ignore[attr-defined]

    @property
    def flowdock_outbox(self) -> list[dict[str, Any]]:
        return django_flowdock.outbox


class ActionRequest(NamedTuple):
    """What Flowdock sends when a chat user presses an UpdateAction."""

    url: str
    body: bytes
    headers: dict[str, str]


def signed_action_headers(
    body: bytes, *, client_secret: str, flowdock_user_id: str | int, lifetime: int = 30
) -> dict[str, str]:
    """Headers with a ``FLOWDOCK-TOKEN`` for ``body``, signed like Flowdock signs it."""
    claims = {
        "sub": str(flowdock_user_id),
        "exp": int(time.time()) + lifetime,
        "signature": hashlib.sha256(body).hexdigest(),
        # Unique, so two requests built in the same second are not taken for a replay.
        "jti": uuid.uuid4().hex,
    }
    token = jwt.encode(claims, client_secret, algorithm="HS256")
    return {"Content-Type": "application/json", "FLOWDOCK-TOKEN": token}


def action_request(
    instance: Any,
    action: str,
    *,
    client_secret: str,
    flowdock_user_id: str | int,
    body: bytes | None = None,
    agent_name: str = "Flowdock User",
) -> ActionRequest:
    """A correctly signed request for ``action`` (its button name or method name) on
    ``instance``, whether or not its condition currently holds. Post it with Django's
    test client::

        url, body, headers = action_request(ticket, "Assign to me",
                                            client_secret=app.client_secret,
                                            flowdock_user_id="42")
        response = client.post(url, body, content_type="application/json", headers=headers)
    """
    from django_flowdock.actions.declarations import action_url, get_action
    from django_flowdock.exceptions import FlowdockConfigurationError

    found = get_action(type(instance), action)
    if found is None:
        raise ValueError(f"{instance._meta.label} declares no action {action!r}.")
    url = action_url(instance, found.key)
    if url is None:
        raise FlowdockConfigurationError('Set FLOWDOCK["SITE_URL"] to build action URLs.')
    if body is None:
        agent = {"@type": "Person", "name": agent_name, "image": ""}
        body = json.dumps({**found.as_json(url), "agent": agent}).encode()
    headers = signed_action_headers(
        body, client_secret=client_secret, flowdock_user_id=flowdock_user_id
    )
    return ActionRequest(url, body, headers)
