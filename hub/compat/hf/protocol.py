"""The Hugging Face Hub's wire conventions, as the unmodified ``huggingface_hub`` client (2.4.0)
reads them: error headers, dates, pagination links, and the raw request path.

Errors. The client turns a failed response into an exception by its ``X-Error-Code`` header
(``utils/_http.py: hf_raise_for_status``), not by its status, and appends the body's
``{"error": "<message>"}``. A HEAD carries no body, so the message also goes in
``X-Error-Message``. Without a code, a failed HEAD of ``/resolve`` reads as "offline": the
client falls back to its cache and then raises ``LocalEntryNotFoundError`` -- so every
not-found here says which thing was not found:

==================================  ==========================  =============================
hub error code                      X-Error-Code (status)       client exception
==================================  ==========================  =============================
repo_not_found, namespace_not_found RepoNotFound (404)          RepositoryNotFoundError
ref_not_found, commit_not_found,    RevisionNotFound (404)      RevisionNotFoundError
branch_not_found
path_not_found                      EntryNotFound (404), with   RemoteEntryNotFoundError
                                    X-Repo-Commit
authentication_failed               -- (401), X-Error-Message   HfHubHTTPError
                                    "Invalid credentials in
                                    Authorization header"
any other                           -- (its own status)         HfHubHTTPError /
                                                                BadRequestError (400)
==================================  ==========================  =============================

A private repo is a 404 ``RepoNotFound`` to anyone who may not read it, anonymous callers
included (the hub's own rule, :func:`hub.registry.selectors.repo_for`).
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from urllib.parse import unquote, urlencode

from django.http import JsonResponse
from rest_framework import exceptions as drf

from hub.common.errors import HubError, NotFound, ServiceUnavailable, store_error

log = logging.getLogger(__name__)

_HF_CODES = {
    "repo_not_found": "RepoNotFound",
    "namespace_not_found": "RepoNotFound",
    "ref_not_found": "RevisionNotFound",
    "commit_not_found": "RevisionNotFound",
    "branch_not_found": "RevisionNotFound",
    "path_not_found": "EntryNotFound",
}
INVALID_CREDENTIALS = "Invalid credentials in Authorization header"


class EntryNotFound(NotFound):
    """A path that the resolved commit does not hold; the client caches the miss under
    ``X-Repo-Commit`` (``.no_exist/<commit>/<path>``)."""

    code = "path_not_found"

    def __init__(self, message: str, *, commit: str):
        super().__init__(message, details={"commit": commit})
        self.commit = commit


def _header_text(message: str) -> str:
    """A message as an HTTP header value can carry it: one line of ASCII, bounded."""
    text = " ".join(message.split()).encode("ascii", "backslashreplace").decode("ascii")
    return text[:500]


def error_response(
    status: int, message: str, *, hf_code: str | None = None, headers=None, body=None
):
    resp = JsonResponse({"error": message, **(body or {})}, status=status)
    if hf_code:
        resp["X-Error-Code"] = hf_code
    resp["X-Error-Message"] = _header_text(message)
    for k, v in (headers or {}).items():
        resp[k] = v
    return resp


def exception_handler(exc: Exception, context: dict):
    """The DRF exception handler of the HF views: every failure in the client's shape."""
    mapped = exc if isinstance(exc, HubError) else store_error(exc)
    if mapped is not None:
        headers = {}
        if isinstance(mapped, ServiceUnavailable):
            headers["Retry-After"] = str(mapped.retry_after)
        if isinstance(mapped, EntryNotFound):
            headers["X-Repo-Commit"] = mapped.commit
        return error_response(
            mapped.status, mapped.message, hf_code=_HF_CODES.get(mapped.code), headers=headers
        )
    if isinstance(exc, drf.AuthenticationFailed):
        # The client reads a 401 with this message as a bad token, not as a missing repo.
        return error_response(401, INVALID_CREDENTIALS + f": {exc.detail}")
    if isinstance(exc, drf.APIException):
        return error_response(exc.status_code, str(exc.detail))
    log.exception("unhandled error in the Hugging Face API")
    return error_response(500, "The hub hit an unexpected error; it has been logged.")


def hf_date(t: datetime) -> str:
    """``2026-12-02T13:05:59.123Z``: the one format the client parses."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def next_link(request, **params) -> str:
    """A ``Link: <url>; rel="next"`` header value for the same path with ``params``."""
    query = {k: v for k, v in request.GET.items() if k not in params}
    query.update({k: str(v) for k, v in params.items()})
    return f'<{request.build_absolute_uri(request.path)}?{urlencode(query)}>; rel="next"'


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def byte_range(header: str | None, size: int) -> tuple[int, int] | None | bool:
    """``(start, end)`` (end exclusive) that a ``Range`` header asks of a file of ``size``
    bytes; None for no (or an unparsable) range: the whole file; False when it cannot be
    satisfied (416)."""
    m = _RANGE.match((header or "").strip())
    if not m or not (m.group(1) or m.group(2)):
        return None
    if m.group(1):
        start = int(m.group(1))
        end = min(size, int(m.group(2)) + 1) if m.group(2) else size
    else:
        start = max(0, size - int(m.group(2)))
        end = size
    if start >= size or start >= end:
        return False
    return start, end


def raw_segments(request, after: int) -> list[str] | None:
    """The request path's segments from index ``after`` on, decoded one by one from the raw
    URI, so that a ``%2F`` inside a segment (the client quotes revisions with ``safe=""``)
    stays inside it. None when the server does not pass the raw URI (Django decodes
    ``PATH_INFO`` whole): callers then split by the refs that exist."""
    raw = request.META.get("RAW_URI") or request.META.get("REQUEST_URI")
    if not raw:
        return None
    path = raw.split("?", 1)[0]
    if "://" in path:  # an absolute-form request target
        path = "/" + path.split("://", 1)[1].split("/", 1)[-1]
    script = request.META.get("SCRIPT_NAME", "").rstrip("/")
    if script and path.startswith(script):
        path = path[len(script) :]
    parts = path.split("/")[1:]
    return [unquote(p) for p in parts[after:]]
