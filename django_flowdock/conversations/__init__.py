"""Conversations both ways: chat replies in a thread become comments on the object.

Optional, like Celery: add ``"django_flowdock.conversations"`` to ``INSTALLED_APPS``
and run ``manage.py flowdock_listen``. See docs/conversations.md.
"""
