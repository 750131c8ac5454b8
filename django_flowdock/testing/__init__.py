"""Helpers for testing a project's own integration without posting anywhere.

Every test starts with ``FLOWDOCK["DELIVERY"]`` switched to ``FLOWDOCK["TEST_DELIVERY"]``
(``"locmem"``, collecting what would be posted in ``django_flowdock.outbox``), an empty
outbox and no planned failures: under pytest through the plugin this package installs,
under ``manage.py test`` with ``TEST_RUNNER = "django_flowdock.testing.runner.FlowdockTestRunner"``.
Messages are handed over when the transaction commits, as in production: in a
``TestCase`` wrap the code in ``self.captureOnCommitCallbacks(execute=True)``; with
pytest use ``transactional_db`` or ``django_capture_on_commit_callbacks``.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from typing import TYPE_CHECKING, Any, NamedTuple

import jwt
from django.conf import settings
from django.test import override_settings

import django_flowdock
from django_flowdock.delivery.locmem import clear_failures, fail_next

if TYPE_CHECKING:
    from django_flowdock.delivery.engine import DrainResult

__all__ = [
    "ActionRequest",
    "FlowdockTestMixin",
    "action_request",
    "disable_test_delivery",
    "enable_test_delivery",
    "fail_next",
    "locmem_settings",
    "reset",
    "retry_now",
    "settle_background_delivery",
    "signed_action_headers",
    "wait_for_delivery",
]


def locmem_settings() -> override_settings:
    """``override_settings`` switching delivery to locmem, keeping other FLOWDOCK keys."""
    return override_settings(
        FLOWDOCK={**(getattr(settings, "FLOWDOCK", None) or {}), "DELIVERY": "locmem"}
    )


def reset() -> None:
    """Empty ``django_flowdock.outbox`` and forget the failures :func:`fail_next` planned
    and no post used: what the test kit does before each test."""
    django_flowdock.outbox.clear()
    clear_failures()


#: The switch to TEST_DELIVERY while a test run lasts.
_test_delivery: override_settings | None = None


def enable_test_delivery() -> None:
    """Switch ``FLOWDOCK["DELIVERY"]`` to ``FLOWDOCK["TEST_DELIVERY"]`` in this process
    until :func:`disable_test_delivery`. The pytest plugin and ``FlowdockTestRunner``
    call it once per test run, before any test and its own settings overrides; nothing
    changes when ``TEST_DELIVERY`` is ``None``."""
    global _test_delivery
    from django_flowdock.conf import flowdock_settings

    delivery = flowdock_settings.TEST_DELIVERY
    if _test_delivery is not None or delivery is None:
        return
    _test_delivery = override_settings(
        FLOWDOCK={**flowdock_settings.user_settings, "DELIVERY": delivery}
    )
    _test_delivery.enable()


def disable_test_delivery() -> None:
    """Undo :func:`enable_test_delivery`."""
    global _test_delivery
    if _test_delivery is not None:
        _test_delivery.disable()
        _test_delivery = None


def retry_now() -> DrainResult:
    """Deliver what waits for a retry at once, as the first drain after its wait would:
    every pending message is due, every held source gets its probe. With the locmem
    transport a test can so see a planned 429 or 500 retried without sleeping."""
    from django.utils import timezone

    from django_flowdock.delivery.engine import drain
    from django_flowdock.models import Message, Source

    now = timezone.now()
    Message.objects.pending().filter(next_attempt_at__gt=now).update(next_attempt_at=now)
    Source.objects.filter(held_until__gt=now).update(held_until=now)
    return drain()


def wait_for_delivery(timeout: float = 10.0) -> None:
    """Wait until the default (``immediate``) backend's background thread has handled
    everything committed so far; a no-op for the other backends. Call it before
    asserting on what reached Flowdock (or the sandbox)."""
    from django_flowdock.delivery import get_backend
    from django_flowdock.delivery.immediate import ImmediateBackend

    backend = get_backend()
    if isinstance(backend, ImmediateBackend) and not backend.wait_idle(timeout):
        raise AssertionError(f"Delivery was still busy after {timeout} seconds.")


def settle_background_delivery(timeout: float = 30.0) -> None:
    """Let every background delivery thread of this process finish what was committed
    so far: the guard both runners call after each test and before the test databases
    are destroyed, so that no thread writes into a database being flushed, dropped or
    used by the next test."""
    from django.apps import apps

    if not (apps.ready and apps.is_installed("django_flowdock")):
        return
    from django_flowdock.delivery import loaded_backends

    for backend in loaded_backends():
        wait = getattr(backend, "wait_idle", None)
        if wait is not None:
            wait(timeout)


class FlowdockTestMixin:
    """For ``django.test.TestCase`` subclasses: locmem delivery and a clean outbox in
    each test, whatever ``TEST_RUNNER`` or ``FLOWDOCK["TEST_DELIVERY"]`` say."""

    def setUp(self) -> None:
        super().setUp()  # type: ignore[misc]
        override = locmem_settings()
        override.enable()
        self.addCleanup(override.disable)  # type: ignore[attr-defined]
        reset()
        self.addCleanup(reset)  # type: ignore[attr-defined]

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
