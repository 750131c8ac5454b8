"""Load the server's time zone tables when they are empty, as Django asks for MariaDB/MySQL.

    python scripts/mariadb_timezones.py mysql://root@127.0.0.1:3306/test

With USE_TZ, date lookups (the admin's date hierarchy, __date filters) convert in the
database with CONVERT_TZ(), which returns NULL until the tables are loaded.
"""

import subprocess
import sys
from urllib.parse import unquote, urlsplit


def main(url: str) -> int:
    parts = urlsplit(url)
    client = [
        "mariadb",
        f"--host={parts.hostname or '127.0.0.1'}",
        f"--port={parts.port or 3306}",
        f"--user={unquote(parts.username or 'root')}",
    ]
    if parts.password:
        client.append(f"--password={unquote(parts.password)}")
    count = subprocess.run(
        [*client, "--skip-column-names", "--execute=SELECT COUNT(*) FROM mysql.time_zone_name"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if count != "0":
        return 0
    print("Loading the MariaDB time zone tables (mariadb-tzinfo-to-sql)")
    tables = subprocess.run(
        ["mariadb-tzinfo-to-sql", "/usr/share/zoneinfo"],
        check=True,
        capture_output=True,  # its warnings about files that are not zones stay quiet
    ).stdout
    subprocess.run([*client, "mysql"], input=tables, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
