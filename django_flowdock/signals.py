"""Public signals. Connect to them to log, count or react to deliveries."""

from django.dispatch import Signal

#: Messages were written to the outbox (inside the transaction of the change).
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
