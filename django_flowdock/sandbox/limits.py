"""The size limit of a request, checked from its ``Content-Length`` before anything
reads the body.

Flowdock's docs name no limit for uploads; the sandbox keeps files in its database,
so it takes at most ``REQUEST_LIMIT`` bytes per request, JSON or multipart alike.
"""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

REQUEST_LIMIT = 10 * 1024 * 1024
# How much of a refused body is read at a time to be thrown away.
DISCARD_CHUNK = 64 * 1024


class RequestSizeLimitMiddleware:
    """Answers ``413`` with Flowdock's JSON error body to a request declaring more than
    ``REQUEST_LIMIT`` bytes.

    The refused body is still read, a chunk at a time and thrown away: a client sends
    its whole body before it reads the answer, and Django's development server would
    otherwise read the unread rest in one piece to keep the connection usable.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length <= REQUEST_LIMIT:
            return self.get_response(request)
        while request.read(DISCARD_CHUNK):
            pass
        response = JsonResponse(
            {
                "message": (
                    f"Request too large: {length} bytes. The sandbox accepts at most "
                    f"{REQUEST_LIMIT} bytes ({REQUEST_LIMIT // 2**20} MB) per request, "
                    "attachments included."
                )
            },
            status=413,
        )
        # With its length known the connection stays open for the client's next request.
        response["Content-Length"] = str(len(response.content))
        return response
