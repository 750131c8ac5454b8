"""UpdateActions and ViewActions: declared on models, verified against the application
that owns the thread, run as the linked local user.

``from django_flowdock.actions import flowdock_action`` is the public import path.
"""

from django_flowdock.actions.declarations import FlowdockAction, flowdock_action

__all__ = ["FlowdockAction", "flowdock_action"]
