"""Public signals. Connect to them to log, count or react to deliveries.

They are sent robustly: an exception in a receiver is logged and never rolls back the
change, stops a drain or skips the state change that follows.
"""

import logging
from typing import Any

from django.dispatch import Signal

logger = logging.getLogger("django_flowdock.signals")

#: A change was fanned out to its sources: one Message per source, to be delivered.
#: provides args: messages (list of Message), instance
message_queued = Signal()

#: Flowdock accepted a message.
#: provides args: message, response
message_sent = Signal()

#: A message failed for good (rejected, source gone, or out of attempts).
#: provides args: message, error
message_failed = Signal()

#: An UpdateAction from Flowdock ran on an object.
#: provides args: instance, action, user, flowdock_user_id
action_performed = Signal()


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
