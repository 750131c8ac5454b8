"""Django for the benchmarks: ``benchmarks.settings`` on a fresh database.

SQLite in a new temporary directory by default (``BENCH_TMPDIR=/dev/shm`` puts it in
tmpfs); set ``DATABASE_URL`` to use PostgreSQL (the database is created if missing,
emptied otherwise).
"""

from __future__ import annotations

import atexit
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent


def setup(**flowdock: object) -> str:
    """Configure Django with ``flowdock`` added to the FLOWDOCK settings; return a
    one-line description of the database."""
    sys.path.insert(0, str(ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"
    if "DATABASE_URL" not in os.environ:
        directory = tempfile.mkdtemp(prefix="flowdock-bench-", dir=os.environ.get("BENCH_TMPDIR"))
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        os.environ["DATABASE_URL"] = f"sqlite:///{directory}/bench.sqlite3"
    elif os.environ["DATABASE_URL"].startswith("postgres"):
        _create_postgres_database(os.environ["DATABASE_URL"])
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    settings.FLOWDOCK.update(flowdock)
    if "django_flowdock_message" in connection.introspection.table_names():
        call_command("flush", interactive=False, verbosity=0)
    call_command("migrate", verbosity=0)
    if connection.vendor == "sqlite":
        return f"SQLite {connection.Database.sqlite_version}, {connection.settings_dict['NAME']}"
    return f"{connection.vendor} {connection.pg_version}, {connection.settings_dict['NAME']}"


def _create_postgres_database(url: str) -> None:
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def spread(values: list[float]) -> str:
    """``min / median / max`` of per-round values."""
    return f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}"
