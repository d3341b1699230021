"""Keep-alive connections survive a response sent before the request body was read.

A view may answer before it reads the body: a 401 from authentication, a 404 for a project
that does not exist, a 413 from a limit checked on ``Content-Length``. The body's bytes are
still on the socket. gunicorn's threaded worker drains at most 64 KiB of them before it reuses
a keep-alive connection; past that it closes the connection silently, after a response that
said ``Connection: keep-alive`` — and it ignores a ``Connection: close`` the application sets.
The client's next request on that connection then fails with "Server disconnected" (the SDK
saw it as the hub being down and went offline). So the hub reads and discards what the view
left unread, up to ``HUB_DRAIN_UNREAD_BODY_BYTES`` (default 64 MiB, the largest body an
endpoint accepts); a larger unread body still ends the connection, which a client sees only
on its next request.
"""

from __future__ import annotations

from django.conf import settings
from django.http.request import UnreadablePostError

_READ = 1 << 20


class DrainUnreadBodyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        drain_unread_body(request)
        return response


def drain_unread_body(request) -> int:
    """Read and discard the rest of ``request``'s body; the number of bytes discarded."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0
    limit = getattr(settings, "HUB_DRAIN_UNREAD_BODY_BYTES", 64 * 1024 * 1024)
    if length <= 0 or length > limit or hasattr(request, "_body"):
        return 0
    drained = 0
    try:
        # HttpRequest.read reads the body's stream, which Django bounds by Content-Length.
        while chunk := request.read(_READ):
            drained += len(chunk)
    except (OSError, UnreadablePostError, ValueError):
        pass  # the client went away: nothing left to keep alive
    return drained
