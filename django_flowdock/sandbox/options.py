"""Options of ``python -m django_flowdock.sandbox`` and ``manage.py flowdock_sandbox``."""

import argparse

DEFAULT_PORT = 8025
DEFAULT_DB = "flowdock-sandbox.sqlite3"
URI_OPTIONS = ("app_callback_uri", "app_setup_uri", "app_configuration_uri")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="Interface to listen on.")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="Port; 0 picks a free one. Default 8025."
    )
    parser.add_argument(
        "--db",
        default=DEFAULT_DB,
        help="SQLite file, kept between runs; ':memory:' for a throwaway database.",
    )
    parser.add_argument("--credentials-file", help="Also write the credentials here as JSON.")
    parser.add_argument("--app-callback-uri", help="The developer application's Callback URI.")
    parser.add_argument("--app-setup-uri", help="The developer application's Setup URI.")
    parser.add_argument(
        "--app-configuration-uri", help="The developer application's Configuration URI."
    )


def to_argv(options: dict) -> list[str]:
    """Turn parsed options back into arguments for ``python -m django_flowdock.sandbox``."""
    argv = ["--host", options["host"], "--port", str(options["port"]), "--db", options["db"]]
    for name in ("credentials_file", *URI_OPTIONS):
        if options.get(name) is not None:
            argv += ["--" + name.replace("_", "-"), options[name]]
    return argv
