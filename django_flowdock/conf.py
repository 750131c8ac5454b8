"""The ``FLOWDOCK`` settings dict, read through one object on every access.

Reading on access (rather than copying into module constants at import) keeps
``override_settings(FLOWDOCK=...)`` working in tests.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings

DEFAULTS: dict[str, Any] = {
    # Base URL of the Flowdock API; point it at the sandbox locally.
    "API_URL": "https://api.flowdock.com",
    # "immediate", "worker", "locmem", "celery", "tasks" or a dotted path to a backend class.
    "DELIVERY": "immediate",
    # Author used when a change happens outside a request and the model names none.
    "DEFAULT_AUTHOR": {"name": "Django"},
    # Absolute base for relative ``external_url`` values and action URLs, e.g. "https://app.example".
    "SITE_URL": None,
    # (connect, read) seconds for every HTTP request to Flowdock.
    "TIMEOUT": (3.05, 10.0),
    # Fernet keys for secrets at rest, newest first; None derives one from SECRET_KEY
    # (and SECRET_KEY_FALLBACKS, so rotating SECRET_KEY keeps old rows readable).
    "ENCRYPTION_KEYS": None,
    # Delivery attempts before a transient failure becomes permanent.
    "MAX_ATTEMPTS": 8,
    # Exponential backoff: BACKOFF_BASE * 2 ** (attempt - 1) seconds, capped, with full jitter.
    "BACKOFF_BASE": 2.0,
    "BACKOFF_MAX": 600.0,
    # A claimed message is considered abandoned (worker killed) after this many seconds.
    "CLAIM_TIMEOUT": 60.0,
    # Messages claimed per batch by the drain loop.
    "BATCH_SIZE": 50,
    # Messages one Celery / Django Tasks run delivers before handing over to a new task.
    "TASK_DRAIN_LIMIT": 1000,
    # Sent messages older than this many days are deleted by ``flowdock_prune``.
    "PRUNE_AFTER_DAYS": 30,
    # OAuth scopes requested when connecting a flow.
    "OAUTH_SCOPES": ["flow", "integration", "profile"],
    # Seconds an identity claim link (from an UpdateAction 401) stays valid.
    "CLAIM_MAX_AGE": 600,
    # Conversations (django_flowdock.conversations): the Streaming API's base URL; None
    # means https://stream.flowdock.com for the hosted API, else API_URL + "/stream".
    "STREAM_URL": None,
    # Conversations: the USERNAME_FIELD value of the local user who authors comments
    # from Flowdock users that are not linked; None passes author=None to the hook.
    "CONVERSATION_AUTHOR": None,
}

#: Settings that no longer exist, with what replaced them (check django_flowdock.W002).
REMOVED = {
    "ACTION_CACHE": "used FLOWDOCK-TOKENs and identity claims are now kept in the "
    "database (the django_flowdock_usedtoken table), which every process shares",
}


class FlowdockSettings:
    """Attribute access to ``settings.FLOWDOCK`` with documented defaults."""

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Unknown django-flowdock setting {name!r}.")
        user = getattr(django_settings, "FLOWDOCK", None) or {}
        return user.get(name, DEFAULTS[name])

    @property
    def user_settings(self) -> dict[str, Any]:
        return dict(getattr(django_settings, "FLOWDOCK", None) or {})


flowdock_settings = FlowdockSettings()
