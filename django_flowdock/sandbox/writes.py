"""One writer at a time.

SQLite admits a single writer and fails, rather than waits for, a transaction that
moves from reading to writing while another thread writes. The threaded server
therefore funnels its write transactions through one lock.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import transaction

_lock = threading.RLock()


@contextmanager
def write_transaction() -> Iterator[None]:
    with _lock, transaction.atomic():
        yield
