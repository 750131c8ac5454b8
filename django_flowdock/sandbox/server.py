"""The threaded WSGI server that carries the sandbox, faults in front of Django."""

import socket
from typing import Any

from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.core.wsgi import get_wsgi_application

from .faults import DROP_KEY, FaultInjectionMiddleware


class SandboxRequestHandler(WSGIRequestHandler):
    def get_environ(self) -> dict[str, Any]:
        # WSGI environ values are not all strings, whatever django-stubs says.
        environ: dict[str, Any] = super().get_environ()
        environ[DROP_KEY] = self.drop_connection
        return environ

    def drop_connection(self) -> None:
        """Close the connection without an answer, as a crashed server would."""
        # Stop here too: the read buffer still holds the dropped request's body.
        self.close_connection = True
        # django-stubs types ``connection`` as a WSGIRequest; it is the client's socket.
        self.connection.shutdown(socket.SHUT_RDWR)  # type: ignore[attr-defined]


def make_server(host: str, port: int) -> ThreadedWSGIServer:
    """Bind (port 0 picks a free one); Django must be set up already."""
    server = ThreadedWSGIServer((host, port), SandboxRequestHandler, ipv6=":" in host)
    server.set_app(FaultInjectionMiddleware(get_wsgi_application()))
    return server
