"""Django for the benchmarks: the test settings on a fresh database.

SQLite in a temporary file by default; set DATABASE_URL to use PostgreSQL (the
database is emptied first).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup(delivery: str = "worker", **flowdock) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    if "DATABASE_URL" not in os.environ:
        path = Path(tempfile.mkdtemp(prefix="flowdock-bench-")) / "bench.sqlite3"
        os.environ["DATABASE_URL"] = f"sqlite:///{path}"
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    settings.FLOWDOCK.update({"DELIVERY": delivery, **flowdock})
    call_command("flush", interactive=False, verbosity=0) if _has_tables() else None
    call_command("migrate", verbosity=0)


def _has_tables() -> bool:
    from django.db import connection

    return "django_flowdock_message" in connection.introspection.table_names()
