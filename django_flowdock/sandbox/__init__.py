"""A local Flowdock: the documented API subset and a team inbox, run in its own process.

Start it with ``python -m django_flowdock.sandbox`` (or ``manage.py flowdock_sandbox``);
it is never added to a project's ``INSTALLED_APPS``.
"""
