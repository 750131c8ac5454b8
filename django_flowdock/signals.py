"""Public signals. Connect to them to log, count or react to deliveries.

They are sent robustly: an exception in a receiver is logged and never rolls back the
change, stops a drain or skips the state change that follows.
"""

import logging
from typing import Any

from django.dispatch import Signal

logger = logging.getLogger("django_flowdock.signals")

#: provides args: messages, instance
message_queued = Signal()
"""A committed change was fanned out to its sources, at delivery (never inside the
transaction that made the change).

Sent with ``sender=Message``, ``messages`` (the list of new ``Message`` rows, one per
receiving source) and ``instance`` (the thread or comment object the change is about).
"""

#: provides args: message, response
message_sent = Signal()
"""Flowdock accepted a message; sent after the outcome is written.

Sent with ``sender=Message``, ``message`` (the ``Message``, now ``sent``) and
``response`` (the HTTP response; for the ``locmem`` backend, a stand-in with
``status_code``).
"""

#: provides args: message, error
message_failed = Signal()
"""A message failed for good: refused (400, 401, 403, 404), its source gone (410),
impossible to render, or older than ``MAX_AGE`` while Flowdock did not answer; sent
after the outcome is written.

Sent with ``sender=Message``, ``message`` (the ``Message``, now ``failed`` or
``cancelled``) and ``error`` (the ``FlowdockError``).
"""

#: provides args: instance, action, user, flowdock_user_id
action_performed = Signal()
"""An UpdateAction pressed in Flowdock ran on an object, once its change is saved.

Sent with ``sender`` the model class, ``instance``, ``action`` (the ``FlowdockAction``),
``user`` (the linked Django user) and ``flowdock_user_id``.
"""


def send_robust(signal: Signal, sender: Any = None, **kwargs: Any) -> None:
    """Send ``signal`` (sender: ``Message`` unless given), logging what its receivers
    raise."""
    if sender is None:
        from django_flowdock.models import Message

        sender = Message
    for receiver, result in signal.send_robust(sender=sender, **kwargs):
        if isinstance(result, Exception):
            logger.error(
                "A receiver of a django-flowdock signal failed: %r",
                receiver,
                exc_info=(type(result), result, result.__traceback__),
            )
