"""``python -m django_flowdock.sandbox``: migrate, seed, print credentials, serve."""

import argparse
import json
import os
import signal
import tempfile
from pathlib import Path
from typing import Any, NoReturn

from .options import add_arguments, allowed_hosts

SETTINGS_MODULE = "django_flowdock.sandbox.settings"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m django_flowdock.sandbox", description="Run a local Flowdock."
    )
    add_arguments(parser)
    args = parser.parse_args(argv)

    throwaway = None
    db = args.db
    if db == ":memory:":
        # A file in a temporary directory: request threads each open their own
        # connection, and a true in-memory SQLite database is private to one.
        throwaway = tempfile.TemporaryDirectory(prefix="flowdock-sandbox-")
        db = str(Path(throwaway.name) / "sandbox.sqlite3")
    # The sandbox has its own settings even when started from a project's shell.
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS_MODULE
    os.environ["FLOWDOCK_SANDBOX_DB"] = str(Path(db).resolve())
    os.environ["FLOWDOCK_SANDBOX_HOSTS"] = ",".join(allowed_hosts(args.host, args.allowed_host))

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)

    from .seed import credentials, seed
    from .server import make_server

    source = seed(
        callback_uri=args.app_callback_uri,
        setup_uri=args.app_setup_uri,
        configuration_uri=args.app_configuration_uri,
    )
    server = make_server(args.host, args.port)
    host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host}:{server.server_port}"
    found = credentials(source, url)
    print_credentials(found)
    if args.credentials_file:
        write_json(Path(args.credentials_file), found)

    signal.signal(signal.SIGTERM, _exit)
    print(f"Flowdock sandbox running at {url}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if throwaway is not None:
            throwaway.cleanup()


def _exit(signum: int, frame: object) -> NoReturn:
    raise SystemExit(0)


def print_credentials(found: dict[str, Any]) -> None:
    flow, user, source, app = found["flow"], found["user"], found["source"], found["application"]
    print(
        f"Flow:          {flow['organization']}/{flow['parameterized_name']} (id {flow['id']})\n"
        f"Inbox:         {flow['web_url']}\n"
        f"Flow token:    {source['flow_token']} (source {source['name']!r}, id {source['id']})\n"
        f"User:          {user['name']} <{user['email']}>, API token {user['api_token']}\n"
        f"Application:   {app['name']}\n"
        f"  client id:     {app['client_id']}\n"
        f"  client secret: {app['client_secret']}\n"
        f"  callback URI:  {app['callback_uri'] or '-'}\n"
        f"  setup URI:     {app['setup_uri'] or '-'}\n"
        f"  config URI:    {app['configuration_uri'] or '-'}",
        flush=True,
    )


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically, so a reader that sees the file sees all of it."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=2))
    partial.replace(path)


if __name__ == "__main__":
    main()
