"""Options of ``python -m django_flowdock.sandbox`` and ``manage.py flowdock_sandbox``."""

import argparse

DEFAULT_PORT = 8025
DEFAULT_DB = "flowdock-sandbox.sqlite3"
URI_OPTIONS = ("app_callback_uri", "app_setup_uri", "app_configuration_uri")
#: Host names every sandbox answers to, besides its --host and any --allowed-host.
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
#: State-changing ``/_sandbox/`` requests must carry this header: a cross-site form
#: cannot send it, and a cross-origin script only after a CORS preflight the sandbox
#: never grants.
CONTROL_HEADER = "X-Sandbox-Control"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="Interface to listen on.")
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="Another host name to answer to (besides 127.0.0.1, localhost, [::1] and "
        "--host), e.g. the machine's name when listening on 0.0.0.0. Repeatable.",
    )
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
    for name in options.get("allowed_host") or []:
        argv += ["--allowed-host", name]
    for name in ("credentials_file", *URI_OPTIONS):
        if options.get(name) is not None:
            argv += ["--" + name.replace("_", "-"), options[name]]
    return argv


def allowed_hosts(host: str, extra: list[str]) -> list[str]:
    """``ALLOWED_HOSTS`` for a sandbox listening on ``host``: the names it was started
    for, so a page on another name (DNS rebinding) reads and changes nothing."""
    names = [*LOOPBACK_NAMES, f"[{host}]" if ":" in host else host, *extra]
    return list(dict.fromkeys(names))
