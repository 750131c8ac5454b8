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
    # The DELIVERY every test starts with (the pytest plugin, FlowdockTestRunner);
    # None keeps DELIVERY, so tests deliver for real.
    "TEST_DELIVERY": "locmem",
    # Author used when a change happens outside a request and the model names none.
    "DEFAULT_AUTHOR": {"name": "Django"},
    # Absolute base for relative ``external_url`` values and action URLs, e.g. "https://app.example".
    "SITE_URL": None,
    # (connect, read) seconds for every HTTP request to Flowdock.
    "TIMEOUT": (3.05, 10.0),
    # Fernet keys for secrets at rest, newest first; None derives one from SECRET_KEY
    # (and SECRET_KEY_FALLBACKS, so rotating SECRET_KEY keeps old rows readable).
    "ENCRYPTION_KEYS": None,
    # Seconds a message may wait for a Flowdock that cannot be reached (or answers 5xx,
    # 408, 429) before it fails; a refusal (other 4xx) fails it at once.
    "MAX_AGE": 72 * 3600.0,
    # Backoff between probes of an unreachable source, and between one message's retries:
    # BACKOFF_BASE * 2 ** (n - 1) seconds, capped at BACKOFF_MAX, with jitter.
    "BACKOFF_BASE": 2.0,
    "BACKOFF_MAX": 10.0,
    # Seconds a claim lasts without renewal: a killed worker's messages move on after it.
    "CLAIM_TIMEOUT": 15.0,
    # Messages claimed per batch by the drain loop.
    "BATCH_SIZE": 50,
    # Posts in flight at once per drain (each to a different thread), over keep-alive connections.
    "CONCURRENCY": 16,
    # Messages one Celery / Django Tasks run delivers before handing over to a new task.
    "TASK_DRAIN_LIMIT": 1000,
    # The immediate backend in a web server delivers from start-up, without waiting for a
    # save: None detects servers (runserver, gunicorn, uWSGI, uvicorn…); True or False.
    "DELIVER_ON_START": None,
    # Seconds the immediate backend's thread sleeps while idle before it looks for what
    # other processes left in the outbox.
    "POLL_INTERVAL": 30.0,
    # Seconds the immediate backend's thread waits at most, before each post, for the
    # requests in progress in its process to finish (0: it never waits).
    "REQUEST_YIELD": 0.1,
    # Seconds a script or command that saved waits at exit for its messages to be sent.
    "EXIT_TIMEOUT": 10.0,
    # Sent messages older than this many days are deleted by ``flowdock_prune``.
    "PRUNE_AFTER_DAYS": 30,
    # OAuth scopes requested when connecting a flow.
    "OAUTH_SCOPES": ["flow", "integration", "profile"],
    # Seconds an identity claim link (from an UpdateAction 401) stays valid.
    "CLAIM_MAX_AGE": 600,
    # Seconds of clock skew allowed when checking a FLOWDOCK-TOKEN's exp (Flowdock's
    # tokens live 30 seconds, so a clock a few seconds behind would refuse them).
    "ACTION_TOKEN_LEEWAY": 10,
    # Conversations (django_flowdock.conversations): the Streaming API's base URL; None
    # means https://stream.flowdock.com for the hosted API, else API_URL + "/stream".
    "STREAM_URL": None,
    # Conversations: the USERNAME_FIELD value of the local user who authors comments
    # from Flowdock users that are not linked; None passes author=None to the hook.
    "CONVERSATION_AUTHOR": None,
}

#: Settings that no longer exist, with what replaced them (check django_flowdock.W002).
REMOVED = {
    "MAX_ATTEMPTS": "a message that Flowdock does not refuse is retried until it is "
    'older than FLOWDOCK["MAX_AGE"] seconds (72 hours by default), however many attempts '
    "an outage takes",
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
