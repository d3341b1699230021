"""MLflow's error shape: ``{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "..."}``.

The hub's errors (``hub.common.errors``) and store failures are translated here, once, so a
service raising ``NotFound`` answers an MLflow client with ``RESOURCE_DOES_NOT_EXIST`` (404)
and a refused input with ``INVALID_PARAMETER_VALUE`` (400). The client retries 408, 429 and
5xx for minutes (urllib3, 7 tries), so only an outage answers 5xx, never a client mistake.
"""

from __future__ import annotations

import logging

from django.http import JsonResponse
from rest_framework import exceptions as drf

from hub.common.errors import (
    Conflict,
    Forbidden,
    HubError,
    InvalidInput,
    NotAuthenticated,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    store_error,
)

log = logging.getLogger(__name__)

INVALID_PARAMETER_VALUE = "INVALID_PARAMETER_VALUE"
RESOURCE_DOES_NOT_EXIST = "RESOURCE_DOES_NOT_EXIST"
RESOURCE_ALREADY_EXISTS = "RESOURCE_ALREADY_EXISTS"
ENDPOINT_NOT_FOUND = "ENDPOINT_NOT_FOUND"
PERMISSION_DENIED = "PERMISSION_DENIED"
UNAUTHENTICATED = "UNAUTHENTICATED"
BAD_REQUEST = "BAD_REQUEST"
TEMPORARILY_UNAVAILABLE = "TEMPORARILY_UNAVAILABLE"
INTERNAL_ERROR = "INTERNAL_ERROR"
NOT_IMPLEMENTED = "NOT_IMPLEMENTED"

STATUS = {
    INVALID_PARAMETER_VALUE: 400,
    BAD_REQUEST: 400,
    RESOURCE_ALREADY_EXISTS: 400,
    RESOURCE_DOES_NOT_EXIST: 404,
    ENDPOINT_NOT_FOUND: 404,
    UNAUTHENTICATED: 401,
    PERMISSION_DENIED: 403,
    NOT_IMPLEMENTED: 501,
    TEMPORARILY_UNAVAILABLE: 503,
    INTERNAL_ERROR: 500,
}


class MlflowError(Exception):
    """An answer in MLflow's terms, raised by this app's code."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def invalid(message: str) -> MlflowError:
    return MlflowError(INVALID_PARAMETER_VALUE, message)


def response(code: str, message: str, *, retry_after: int | None = None) -> JsonResponse:
    resp = JsonResponse({"error_code": code, "message": message}, status=STATUS[code])
    if retry_after is not None:
        resp["Retry-After"] = str(retry_after)
    return resp


def translate(exc: Exception) -> JsonResponse | None:
    """The MLflow answer to ``exc``, or None for an unexpected error (a logged 500)."""
    if isinstance(exc, MlflowError):
        return response(exc.code, exc.message)
    if not isinstance(exc, HubError):
        exc = store_error(exc) or exc
    if isinstance(exc, NotFound):
        return response(RESOURCE_DOES_NOT_EXIST, exc.message)
    if isinstance(exc, NotAuthenticated):
        return response(UNAUTHENTICATED, exc.message)
    if isinstance(exc, Forbidden):
        return response(PERMISSION_DENIED, exc.message)
    if isinstance(exc, Conflict):
        # Params are write-once (as in MLflow, which answers INVALID_PARAMETER_VALUE too).
        code = INVALID_PARAMETER_VALUE if exc.code == "param_conflict" else RESOURCE_ALREADY_EXISTS
        return response(code, exc.message)
    if isinstance(exc, InvalidInput | PayloadTooLarge):
        return response(INVALID_PARAMETER_VALUE, exc.message)
    if isinstance(exc, ServiceUnavailable):
        return response(TEMPORARILY_UNAVAILABLE, exc.message, retry_after=exc.retry_after)
    if isinstance(exc, drf.NotAuthenticated | drf.AuthenticationFailed):
        return response(UNAUTHENTICATED, str(exc.detail))
    if isinstance(exc, drf.PermissionDenied):
        return response(PERMISSION_DENIED, str(exc.detail))
    if isinstance(exc, drf.MethodNotAllowed):
        return response(ENDPOINT_NOT_FOUND, str(exc.detail))
    if isinstance(exc, drf.APIException) and exc.status_code < 500:
        return response(BAD_REQUEST, str(exc.detail))
    if isinstance(exc, HubError) and exc.status < 500:
        return response(BAD_REQUEST, exc.message)
    if isinstance(exc, HubError):
        log.error("mlflow api: %s", exc.message)
        return response(INTERNAL_ERROR, exc.message)
    return None
