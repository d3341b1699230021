"""Errors are values with codes.

A service raises a :class:`HubError` subclass; the one exception handler below turns it, and
every DRF or Django error, into a single JSON shape::

    {"error": {"code": "branch_conflict", "message": "...", "details": {...}}}

Nothing else formats errors, so clients (the SDK, the CLI, the dashboard) branch on ``code``.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response

log = logging.getLogger(__name__)


class HubError(Exception):
    """Base of every domain error. Subclasses set ``status`` and ``code``."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, details: Any = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.details = details
        if code:
            self.code = code

    def as_dict(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class InvalidInput(HubError):
    status = 400
    code = "invalid"


class NotAuthenticated(HubError):
    status = 401
    code = "not_authenticated"


class Forbidden(HubError):
    status = 403
    code = "forbidden"


class NotFound(HubError):
    status = 404
    code = "not_found"


class Conflict(HubError):
    status = 409
    code = "conflict"


class PayloadTooLarge(HubError):
    status = 413
    code = "payload_too_large"


class ServiceUnavailable(HubError):
    status = 503
    code = "service_unavailable"

    def __init__(self, message: str, *, retry_after: int = 5, **kw: Any):
        super().__init__(message, **kw)
        self.retry_after = retry_after


class StorageCorrupt(HubError):
    """Stored bytes failed verification: the hub's fault, not the client's."""

    status = 500
    code = "storage_corrupt"


def error_body(code: str, message: str, details: Any = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details}}


_DRF_CODES: dict[type, str] = {
    drf.NotAuthenticated: "not_authenticated",
    drf.AuthenticationFailed: "authentication_failed",
    drf.PermissionDenied: "forbidden",
    drf.NotFound: "not_found",
    drf.MethodNotAllowed: "method_not_allowed",
    drf.NotAcceptable: "not_acceptable",
    drf.UnsupportedMediaType: "unsupported_media_type",
    drf.Throttled: "throttled",
    drf.ParseError: "parse_error",
    drf.ValidationError: "validation_error",
}


def store_error(exc: Exception) -> HubError | None:
    """The one translation of a store adapter's failure (``hub.stores``) into an API error:
    one status, code and message per error class. Selectors and services let these
    propagate; nothing else catches a store error to answer HTTP."""
    from hub.stores.blobs import BlobError, BlobStoreUnavailable
    from hub.stores.metrics import MetricsStoreError, MetricsStoreUnavailable
    from hub.stores.redis import RedisUnavailable
    from hub.stores.search import SearchUnavailable

    if isinstance(exc, MetricsStoreUnavailable):
        log.warning("metrics store unavailable: %s", exc)
        return ServiceUnavailable(
            "The metrics store is unreachable; retry later.",
            code="metrics_store_unavailable",
            retry_after=exc.retry_after,
        )
    if isinstance(exc, MetricsStoreError):
        log.error("metrics store error: %s", exc)
        return ServiceUnavailable(
            f"The metrics store failed: {exc}; retry later.", code="metrics_store_error"
        )
    if isinstance(exc, SearchUnavailable):
        log.warning("search engine unavailable: %s", exc)
        return ServiceUnavailable(
            "The search engine is unreachable; retry later.", code="search_unavailable"
        )
    if isinstance(exc, RedisUnavailable):
        log.warning("redis unavailable: %s", exc)
        return ServiceUnavailable(
            "The hub's Redis is unreachable; retry later.",
            code="redis_unavailable",
            retry_after=exc.retry_after,
        )
    if isinstance(exc, BlobStoreUnavailable):
        log.warning("blob store unavailable: %s", exc)
        return ServiceUnavailable(
            "The blob store is unreachable; retry later.", code="blob_store_unavailable"
        )
    if isinstance(exc, BlobError):
        log.error("blob store error: %s", exc)
        return StorageCorrupt(
            f"Stored data failed verification: {exc}. An administrator should restore the blob store."
        )
    return None


def _hub_error_response(exc: HubError) -> Response:
    headers = {}
    if isinstance(exc, ServiceUnavailable):
        headers["Retry-After"] = str(exc.retry_after)
    return Response(exc.as_dict(), status=exc.status, headers=headers)


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF exception handler: every failure leaves in the one error shape."""
    if isinstance(exc, HubError):
        return _hub_error_response(exc)
    mapped = store_error(exc)
    if mapped is not None:
        return _hub_error_response(mapped)
    if isinstance(exc, Http404):
        return Response(error_body("not_found", str(exc) or "Not found."), status=404)
    if isinstance(exc, DjangoPermissionDenied):
        return Response(error_body("forbidden", str(exc) or "Forbidden."), status=403)
    if isinstance(exc, DjangoValidationError):
        return Response(
            error_body(
                "validation_error",
                "Invalid input.",
                exc.message_dict if hasattr(exc, "error_dict") else exc.messages,
            ),
            status=400,
        )
    if isinstance(exc, drf.APIException):
        code = next((c for t, c in _DRF_CODES.items() if isinstance(exc, t)), "error")
        if isinstance(exc, drf.ValidationError):
            message = "Invalid input."
            details = exc.detail
        else:
            message = str(exc.detail)
            details = None
        headers = {}
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
        return Response(error_body(code, message, details), status=exc.status_code, headers=headers)
    return None  # unexpected: the middleware below answers 500 in the same shape


class JsonErrorMiddleware:
    """Unexpected exceptions under /api/ become a JSON 500 with no traceback; unknown API
    URLs become a JSON 404 instead of Django's HTML page."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            request.path.startswith("/api/")
            and response.status_code == 404
            and "application/json" not in response.get("Content-Type", "")
        ):
            return JsonResponse(
                error_body("not_found", f"No such endpoint: {request.path}"), status=404
            )
        return response

    def process_exception(self, request, exception):
        if not request.path.startswith("/api/"):
            return None
        mapped = exception if isinstance(exception, HubError) else store_error(exception)
        if mapped is not None:
            response = JsonResponse(mapped.as_dict(), status=mapped.status)
            if isinstance(mapped, ServiceUnavailable):
                response["Retry-After"] = str(mapped.retry_after)
            return response
        log.exception("unhandled error on %s %s", request.method, request.path)
        return JsonResponse(
            error_body("internal_error", "The hub hit an unexpected error; it has been logged."),
            status=500,
        )
