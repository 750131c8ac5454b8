"""Turn Django models into Flowdock team-inbox threads."""

from typing import Any

#: Messages collected by the ``locmem`` delivery backend, like ``django.core.mail.outbox``.
#: Each item is the JSON payload that would have been posted, including ``flow_token``.
outbox: list[dict[str, Any]] = []

__version__ = "0.1.0"
