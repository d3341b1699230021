"""The API reference pages, served by the hub itself (drf-spectacular-sidecar), so they work on
a machine without internet: Swagger UI at /api/docs, ReDoc at /api/redoc."""

from __future__ import annotations

from django.http import HttpResponse
from django.utils.html import escape
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularRedocView

_REDOC_PAGE = """<!DOCTYPE html>
<html>
  <head>
    <title>{title}</title>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <style>body {{ margin: 0; padding: 0; }}</style>
  </head>
  <body>
    <redoc spec-url="{schema_url}"></redoc>
    <script src="{redoc_js}"></script>
  </body>
</html>
"""


class RedocView(SpectacularRedocView):
    """ReDoc as drf-spectacular serves it, less its template's Google Fonts stylesheet: the
    page loads nothing from outside the hub (the bundle's own "API docs by Redocly" logo is
    an image that hides itself when it cannot load)."""

    @extend_schema(exclude=True)
    def get(self, request, *args, **kwargs):
        html = _REDOC_PAGE.format(
            title=escape(self.title or "API"),
            schema_url=escape(self._get_schema_url(request)),
            redoc_js=escape(self._redoc_standalone()),
        )
        return HttpResponse(html, content_type="text/html; charset=utf-8")
