"""The API contract's shared parts: the one error component, the error statuses every
operation can answer, paginated envelopes, component names and the Bearer-token scheme.

``manage.py spectacular --validate --fail-on-warn`` must pass (tests/integration/
test_openapi_contract.py), and schemathesis checks each answer against the schema, so every
view declares its request and response serializers and the error statuses it returns:
``responses={200: RepoOut, **errors(404, 409)}``. :class:`HubAutoSchema` adds the statuses the
shared layers answer on any operation (401 and 403 from authentication, 400/413/415 from body
parsing, 404 from path lookups), so a view lists only its own.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

# --- the error envelope (hub/common/errors.py) ---------------------------------------------------


class ErrorDetailOut(serializers.Serializer):
    code = serializers.CharField(
        help_text="machine-readable: clients branch on it (e.g. branch_conflict, not_found)"
    )
    message = serializers.CharField(help_text="for people")
    details = serializers.JSONField(
        allow_null=True, help_text="structured context (validation errors per field, ...)"
    )

    class Meta:
        ref_name = "ErrorDetail"


class ErrorOut(serializers.Serializer):
    """The one error shape of every /api/v1 answer with a 4xx or 5xx status."""

    error = ErrorDetailOut()

    class Meta:
        ref_name = "Error"


_MEANING = {
    400: "Invalid input (code says which rule)",
    401: "Not authenticated, or the token is invalid, revoked or expired",
    403: "Authenticated but not allowed (role, read-only token, credential scope)",
    404: "No such object, or one you may not see (private repos and projects are 404 to others)",
    405: "Method not allowed",
    409: "Conflict with the current state (code says which)",
    413: "Request body over the configured limit",
    415: "Unsupported request media type",
    416: "Range not satisfiable",
    429: "Too many requests: retry after the Retry-After header's seconds",
    500: "Stored data failed verification (storage_corrupt)",
    503: "A store (metrics, search, Redis, blobs) is unavailable: retry after Retry-After",
}


def error_response(status: int, description: str | None = None) -> OpenApiResponse:
    return OpenApiResponse(ErrorOut, description=description or _MEANING.get(status, "Error"))


def errors(*statuses: int) -> dict[int, OpenApiResponse]:
    """``{status: the error envelope}`` for ``@extend_schema(responses=...)``."""
    return {s: error_response(s) for s in statuses}


# --- paginated lists (hub/common/pagination.py) ---------------------------------------------------

_PAGES: dict[type, type] = {}


def page_of(item: type[serializers.Serializer]) -> type[serializers.Serializer]:
    """The ``{count, next, previous, results}`` envelope of :func:`hub.common.pagination.paginate`
    around ``item``; one class per item class, so its component name is unique."""
    if item not in _PAGES:
        name = _component_name(item)
        _PAGES[item] = type(
            f"Paginated{name}List",
            (serializers.Serializer,),
            {
                "count": serializers.IntegerField(),
                "next": serializers.URLField(allow_null=True),
                "previous": serializers.URLField(allow_null=True),
                "results": item(many=True),
                "Meta": type("Meta", (), {"ref_name": f"Paginated{name}List"}),
            },
        )
    return _PAGES[item]


# --- component names ------------------------------------------------------------------------------


def _component_name(cls: type) -> str:
    """``SessionLoginApi.InputSerializer`` → ``SessionLoginInput``; ``RepoOut`` → ``RepoOut``.

    Views keep their serializers nested (``InputSerializer``, ``OutputSerializer``); named by
    class alone they would collide, so a nested serializer is named after its view."""
    meta = getattr(cls, "Meta", None)
    if getattr(meta, "ref_name", None):
        return meta.ref_name
    parts = cls.__qualname__.split(".")
    parts = [p.removesuffix("Serializer") for p in parts if p != "<locals>"]
    parts = [p.removesuffix("Api") if i < len(parts) - 1 else p for i, p in enumerate(parts)]
    return "".join(parts)


# --- the schema generator -------------------------------------------------------------------------


class HubAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema with the hub's shared error answers and component names."""

    def get_serializer_name(self, serializer, direction):
        return _component_name(type(serializer))

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        responses = operation.setdefault("responses", {})
        shared = [401, 403]  # any bad token; a worker credential outside its scope
        if operation.get("requestBody"):
            shared += [400, 413, 415]
        if any(p.get("in") == "query" for p in operation.get("parameters", [])):
            shared.append(400)
        if any(p.get("in") == "path" for p in operation.get("parameters", [])):
            shared.append(404)
        for status in sorted(set(shared)):
            if str(status) not in responses:
                responses[str(status)] = self._get_response_for_code(
                    error_response(status), str(status)
                )
        for status, response in responses.items():
            # Errors are JSON whatever the view renders on success (SSE, CSV, tar, ...).
            content = response.get("content")
            if status[0] in "45" and content and "application/json" in content:
                response["content"] = {"application/json": content["application/json"]}
        operation["responses"] = dict(sorted(responses.items()))
        return operation


# --- authentication -------------------------------------------------------------------------------


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """``Authorization: Bearer hub_...`` (hub.accounts.authentication.TokenAuthentication):
    a user's API token (``hub tokens``, the dashboard's Tokens page), or a worker credential."""

    target_class = "hub.accounts.authentication.TokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema) -> dict[str, Any]:
        scheme = build_bearer_security_scheme_object(
            header_name="AUTHORIZATION", token_prefix="Bearer"
        )
        scheme["description"] = (
            "An API token (hub_...), from the dashboard's Tokens page or "
            "`hub admin create-token`; worker credentials use the same header."
        )
        return scheme


def only_api_v1(endpoints):
    """Preprocessing hook: the schema documents the hub's own API, /api/v1."""
    return [e for e in endpoints if e[0].startswith("/api/v1/")]
