"""Helpers for testing a project's own integration without posting anywhere.

``FLOWDOCK["DELIVERY"] = "locmem"`` collects every message in
``django_flowdock.outbox`` (the exact JSON that would be posted). Messages are handed
over when the transaction commits, as in production: in a ``TestCase`` wrap the code
in ``self.captureOnCommitCallbacks(execute=True)``; pytest users can use the
``flowdock_outbox`` fixture with ``transactional_db`` or
``django_capture_on_commit_callbacks``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.test import override_settings

import django_flowdock


def locmem_settings() -> override_settings:
    """``override_settings`` switching delivery to locmem, keeping other FLOWDOCK keys."""
    return override_settings(
        FLOWDOCK={**(getattr(settings, "FLOWDOCK", None) or {}), "DELIVERY": "locmem"}
    )


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
